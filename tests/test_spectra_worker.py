"""The spectra worker process (``fullspectrum.spectrum.worker``) and when a run uses it."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import fullspectrum.spectrum.worker as worker_module
from fullspectrum.errors import FullSpectrumError, MaskError
from fullspectrum.spectrum import layer_spectra, layer_spectrum
from fullspectrum.spectrum.worker import SpectraProcess, compute_layers
from fullspectrum.training.snapshots import (
    SnapshotWriter,
    compute_spectra,
)
from fullspectrum.training.spectra_worker import loop_threads, spectra_device, use_worker


def random_jobs(seed: int, layers: int = 3):
    rng = np.random.default_rng(seed)
    jobs = []
    for index in range(layers):
        shape = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
        mask = rng.random(shape) < rng.uniform(0.05, 0.5)
        jobs.append((f"l{index}.weight", f"l{index}", mask, rng.standard_normal(shape) * mask))
    return jobs


def same_fields(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


@pytest.fixture
def worker():
    process = SpectraProcess()
    yield process
    process.shutdown()


def test_answers_equal_inline_spectra_in_submission_order(worker):
    batches = [random_jobs(seed) for seed in range(5)]
    pending = [worker.submit(jobs) for jobs in batches]
    for jobs, answer in zip(batches, pending, strict=True):
        expected = compute_layers(jobs)
        got = answer.result()
        assert got.keys() == expected.keys()
        assert all(same_fields(got[key], expected[key]) for key in expected)


def test_a_bad_layer_raises_its_error_in_the_parent(worker):
    key, name, mask, weight = random_jobs(0, 1)[0]
    answer = worker.submit([(key, name, mask.astype(float) * 2, weight)])  # not binary
    with pytest.raises(MaskError, match="l0 mask"):
        answer.result()
    assert worker.submit(random_jobs(1)).result()  # the worker is still serving


def test_a_dead_worker_is_reported_not_waited_for(worker):
    worker._process.kill()
    worker._process.wait()
    with pytest.raises(FullSpectrumError, match="spectra worker process ended"):
        worker.submit(random_jobs(0)).result()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists /proc/PID/fd")
def test_the_worker_inherits_only_its_pipes(tmp_path):
    held = open(tmp_path / "lock", "wb")  # stands for the run's writer lock and database
    try:
        process = SpectraProcess()
        try:
            assert process.submit(random_jobs(0)).result()
            fds = sorted(int(fd) for fd in os.listdir(f"/proc/{process._process.pid}/fd"))
            targets = [os.readlink(f"/proc/{process._process.pid}/fd/{fd}") for fd in fds]
        finally:
            process.shutdown()
    finally:
        held.close()
    assert not any("lock" in target for target in targets)
    assert len([fd for fd in fds if fd > 2]) == 2  # its request and result pipes


def test_shutdown_reaps_the_worker(worker):
    worker.submit(random_jobs(0)).result()
    worker.shutdown()
    assert worker._process.returncode == 0  # reaped: it exited by itself at the end of its pipe
    worker.shutdown = lambda: None  # the fixture's second call has nothing to do


def test_which_runs_use_a_worker():
    dense = {"fc1.weight": torch.zeros(4, 3), "fc2.weight": torch.zeros(2, 4)}
    conv = {**dense, "conv.weight": torch.zeros(4, 3, 3, 3)}
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert use_worker(None, cpu, dense) and not use_worker(None, cpu, conv)
        assert use_worker(None, cuda, conv)
        assert not use_worker(False, cuda, dense) and use_worker(True, cpu, conv)
        assert (
            loop_threads(True, cpu) == 1 and loop_threads(False, cpu) == 2 and loop_threads(True, cuda) == 2
        )
        torch.set_num_threads(1)
        assert not use_worker(None, cpu, dense)  # one core: the worker would only take turns with the loop
        assert loop_threads(True, cpu) == 1
    finally:
        torch.set_num_threads(threads)


def close_to(a: dict, b: dict) -> bool:
    """Equal counts and flags, numbers equal to 1e-9 (the engine's batching and backends move the last bits)."""
    for k in b:
        x, y = a[k], b[k]
        if isinstance(y, float) and math.isnan(y):
            if not math.isnan(x):
                return False
        elif isinstance(y, float):
            if abs(x - y) > 1e-9 * max(1.0, abs(y)):
                return False
        elif x != y:
            return False
    return a.keys() == b.keys()


def test_a_snapshot_solved_at_once_gives_the_per_layer_spectra(monkeypatch):
    jobs = random_jobs(7, layers=6)
    masks = {key: mask for key, _, mask, _ in jobs}
    weights = {key: weight for key, _, _, weight in jobs}
    calls = []
    monkeypatch.setattr(
        worker_module,
        "layer_spectra",
        lambda layers, **kw: calls.append(len(layers)) or layer_spectra(layers, **kw),
    )
    spectra = compute_spectra(masks, weights)
    assert calls == [len(jobs)]  # one engine call for the whole snapshot
    assert list(spectra) == list(masks)  # keyed by parameter name, in layer order
    for key, name, mask, weight in jobs:
        assert close_to(spectra[key], layer_spectrum(mask, weight, name=name).as_dict()), key


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps")
def test_a_worker_solves_on_the_device_it_was_started_with():
    jobs = random_jobs(3)
    expected = compute_layers(jobs)
    plain = SpectraProcess()
    on_torch = SpectraProcess(device="torch")  # the torch backend on the CPU, as a CUDA run's worker uses it
    try:
        assert all(same_fields(a, expected[k]) for k, a in plain.submit(jobs).result().items())
        assert "libtorch" not in _maps(plain._process.pid)  # a CPU run's worker never imports torch
        answer = on_torch.submit(jobs).result()
        assert answer.keys() == expected.keys()
        assert all(close_to(answer[key], expected[key]) for key in expected)
        assert "libtorch" in _maps(on_torch._process.pid)  # imported there, for its first request
    finally:
        plain.shutdown()
        on_torch.shutdown()
    bogus = SpectraProcess(device="tpu")
    try:
        with pytest.raises(FullSpectrumError, match="tpu"):  # the device reached the worker's engine
            bogus.submit(jobs).result()
    finally:
        bogus.shutdown()


def test_a_cuda_run_solves_its_snapshot_spectra_on_its_gpu():
    assert spectra_device(torch.device("cpu")) is None
    assert spectra_device(torch.device("cuda:1")) == "cuda:1"
    writer = SnapshotWriter(None, worker=True, device="torch")
    try:
        assert writer._worker.device == "torch" and writer.device == "torch"
    finally:
        writer.close()
    assert SnapshotWriter(None, worker=False, device="cuda:0")._worker is None
