"""The spectra worker process (``fullspectrum.spectrum.worker``) and when a run uses it."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fullspectrum.errors import FullSpectrumError, MaskError
from fullspectrum.spectrum.worker import SpectraProcess, compute_layers
from fullspectrum.training.spectra_worker import loop_threads, use_worker


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
