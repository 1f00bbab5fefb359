"""A training run killed in a real process resumes to exactly the rows of an uninterrupted one (SPEC §8).

Each run is a fresh ``python -m fullspectrum train`` process on the CPU with one
thread, so the reference and the killed-then-resumed run compute alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fullspectrum.runs import RunStore

pytestmark = pytest.mark.slow

ARGS = [
    *("--model", "mlp", "--data", "digits", "--method", "itop", "--density", "0.1", "--epochs", "5"),
    *("--lr", "0.1", "--delta-t", "15", "--snapshot-every", "15", "--seed", "3", "--device", "cpu"),
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TABLES = ("layers", "evals", "events")


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "fullspectrum", "train", *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> RunStore:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    done = subprocess.run(command(*ARGS, "--out", str(run_dir)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return RunStore.open(run_dir)


def start_and_stop(run_dir: Path, sig: int, env=ENV, before_signal=None) -> subprocess.Popen:
    """Start a run and send ``sig`` once a checkpoint after step 0 exists (3 mask snapshots on disk)."""
    process = subprocess.Popen(
        command(*ARGS, "--out", str(run_dir)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        masks = run_dir / "masks"
        if masks.is_dir() and len([p for p in masks.iterdir() if not p.name.startswith(".")]) >= 3:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be stopped; make it longer"
    if before_signal is not None:
        before_signal(process)
    process.send_signal(sig)
    process.wait(timeout=120)
    return process


def assert_same_rows(run_dir: Path, reference: RunStore) -> None:
    store = RunStore.open(run_dir)
    assert store.info["status"] == "finished"
    assert store.info["final"]["test_accuracy"] == reference.info["final"]["test_accuracy"]
    for table in TABLES:
        mine, theirs = getattr(store, table)(), getattr(reference, table)()
        assert len(theirs) > 0
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    assert store.mask_steps() == reference.mask_steps()


def test_sigkill_then_resume_gives_the_uninterrupted_rows(tmp_path, reference):
    run_dir = tmp_path / "run"
    process = start_and_stop(run_dir, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert (run_dir / "checkpoint.pt").is_file()
    killed = RunStore.open(run_dir)
    assert killed.info["status"] == "running"  # it never got to say otherwise; the heartbeat ages
    assert killed.last_step() < reference.last_step()
    done = subprocess.run(command("--resume", str(run_dir)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_same_rows(run_dir, reference)
    again = subprocess.run(command("--resume", str(run_dir)), env=ENV, capture_output=True, text=True)
    assert again.returncode == 0 and "already finished" in again.stdout


def test_ctrl_c_exits_130_and_leaves_a_resumable_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    process = start_and_stop(run_dir, signal.SIGINT)
    assert process.returncode == 130, process.stderr.read().decode()
    assert RunStore.open(run_dir).info["status"] == "interrupted"
    done = subprocess.run(command("--resume", str(run_dir)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert_same_rows(run_dir, reference)


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc/*/stat)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker in /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_a_run_with_a_spectra_worker_stops_cleanly_and_resumes_to_the_same_rows(tmp_path, reference, sig):
    # Two torch threads: the MLP run computes spectra in a worker and trains on the other thread,
    # so its loop computes exactly like the one-thread, inline reference.
    env = {**ENV, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    run_dir = tmp_path / "run"
    workers: list[int] = []
    command_lines: list[bytes] = []

    def find_worker(process: subprocess.Popen) -> None:
        workers.extend(child_pids(process.pid))
        command_lines.extend(Path(f"/proc/{pid}/cmdline").read_bytes() for pid in workers)

    start_and_stop(run_dir, sig, env=env, before_signal=find_worker)
    assert len(workers) == 1 and b"fullspectrum.spectrum.worker" in command_lines[0]
    deadline = time.monotonic() + 30
    while Path(f"/proc/{workers[0]}").exists() and time.monotonic() < deadline:  # exits at its pipe's end
        time.sleep(0.01)
    assert not Path(f"/proc/{workers[0]}").exists() or " Z " in Path(f"/proc/{workers[0]}/stat").read_text()
    done = subprocess.run(command("--resume", str(run_dir)), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    info = RunStore.open(run_dir).info
    assert (info["spectra"], info["torch_threads"]) == ("worker process", 1)
    assert_same_rows(run_dir, reference)
