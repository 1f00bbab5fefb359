"""Small real runs for the app tests (spectra of random masks through the run store, no training) and a
real ``fullspectrum app`` server on a free localhost port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

from fullspectrum.runs import RunStore, jobs
from fullspectrum.sampling import SamplingConfig, embedding_table, run_pags
from fullspectrum.spectrum import full_spectrum_vector, layer_spectrum, moving_distance

SHAPES = {"fc1": (12, 16), "fc2": (10, 12), "fc3": (4, 10)}
"""Layer -> (out, in): three Linear layers."""


def make_run(
    path: Path,
    *,
    density: float,
    seed: int,
    accuracy: float | None,
    method: str = "itop",
    steps: tuple[int, ...] = (0, 10, 20, 30),
    finish: bool = True,
    data: str = "digits",
    mask_seed: int | None = None,
) -> Path:
    """A ``train`` run whose layers' masks are re-drawn at every step; its metrics are real spectra.
    ``mask_seed`` (default ``seed``) draws the masks: two runs with one ``mask_seed`` share their masks."""
    rng = np.random.default_rng(seed if mask_seed is None else mask_seed)
    config = {"model": "mlp", "data": data, "method": method, "density": density, "epochs": 3,
              "eval_every": 10}  # fmt: skip
    store = RunStore.create(path, kind="train", config=config, seed=seed, device="cpu")
    start = {}
    explored = {name: np.zeros(shape, dtype=bool) for name, shape in SHAPES.items()}
    for step in steps:
        rows, masks, weights = [], {}, {}
        for name, shape in SHAPES.items():
            mask = rng.random(shape) < max(density, 0.3)
            explored[name] |= mask
            masks[f"{name}.weight"] = torch.from_numpy(mask)
            weight = (rng.standard_normal(shape) * mask).astype(np.float32)  # float32, as the trainer keeps
            weights[f"{name}.weight"] = torch.from_numpy(weight)
            spectrum = layer_spectrum(mask, weight, name=name)
            vector = full_spectrum_vector(spectrum)
            start.setdefault(name, vector)
            rows.append({"layer": name, **spectrum.as_dict(),
                         "moving_distance": moving_distance(vector, start[name]),
                         "exploration_rate": float(explored[name].mean())})  # fmt: skip
        evals = [
            {"split": "val", "loss": 1.0 / (step + 1), "accuracy": 0.1 + step / 100, "exploration_rate": 0.3}
        ]
        store.add_snapshot(step, rows, evals)
        store.save_masks(
            step, masks, weights if step in (steps[0], steps[-1]) else None
        )  # as the trainer does
    if finish:
        store.add_evals(
            steps[-1], [{"split": "test", "loss": 0.5, "accuracy": accuracy, "exploration_rate": 0.4}]
        )
        store.finish(final={"test_accuracy": accuracy, "steps": steps[-1]})
    else:
        store.close()
    return path


def make_runs(root: Path) -> list[Path]:
    """Six finished runs at two densities with accuracies rising with their index."""
    runs = []
    for index, (density, seed) in enumerate([(0.05, 0), (0.05, 1), (0.05, 2), (0.2, 0), (0.2, 1), (0.2, 2)]):
        method = "itop" if index % 2 == 0 else "rigl"
        runs.append(make_run(root / f"run_{index}", density=density, seed=seed, accuracy=0.5 + 0.05 * index,
                             method=method))  # fmt: skip
    return runs


def make_static_run(path: Path, masks: dict, *, seed: int, accuracy: float, data: str = "digits") -> Path:
    """A finished ``static`` run that trained exactly ``masks`` (parameter name -> bool tensor): its step-0
    snapshot holds them; no training happens."""
    config = {"model": "mlp", "data": data, "method": "static", "density": 0.2, "epochs": 1}
    store = RunStore.create(path, kind="train", config=config, seed=seed, device="cpu")
    rows = [{"layer": name.removesuffix(".weight"), **layer_spectrum(mask, None, name=name).as_dict(),
             "moving_distance": 0.0, "exploration_rate": float(mask.float().mean())}
            for name, mask in masks.items()]  # fmt: skip
    store.add_snapshot(
        0, rows, [{"split": "val", "loss": 1.0, "accuracy": accuracy, "exploration_rate": 0.2}]
    )
    store.save_masks(0, masks, None)
    store.add_evals(0, [{"split": "test", "loss": 0.5, "accuracy": accuracy, "exploration_rate": 0.2}])
    store.finish(final={"test_accuracy": accuracy, "steps": 0})
    return path


def make_corrupt_run(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "run.json").write_text("{ not json")
    return path


def make_pags_run(path: Path) -> Path:
    """A real, tiny PAGS run (MLP on digits, four random candidates) with its stored embedding."""
    torch.set_num_threads(1)
    config = SamplingConfig(
        model="mlp", data="digits", generator="random", density=0.2, population=4, device="cpu"
    )
    run_pags(config, path, embed=embedding_table)
    return path


# -- a real `fullspectrum app` server ---------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    """Wait until ``url/_stcore/health`` answers 200 (Host ``127.0.0.1``), or fail if the app exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise TimeoutError(f"{url} not healthy after {timeout_s} s")


@contextlib.contextmanager
def app_server(runs: Path, workspace: Path, *flags: str, log_path: Path | None = None):
    """``fullspectrum app --port <free> --runs runs ...flags`` with ``workspace``; yields ``(url, port)``.

    Stops the server (SIGTERM, then SIGKILL) and any job it started when the block ends.
    """
    port = free_port()
    env = {**os.environ, "FULLSPECTRUM_WORKSPACE": str(workspace)}
    command = [sys.executable, "-m", "fullspectrum", "app", "--port", str(port), "--runs", str(runs), *flags]
    log = open(log_path or workspace.parent / f"app_{port}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, port
    finally:
        for job in jobs.find_running(workspace):  # leave no job behind
            jobs.stop(job.run_dir)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        deadline = time.monotonic() + 20
        while jobs.find_running(workspace) and time.monotonic() < deadline:
            time.sleep(0.5)
