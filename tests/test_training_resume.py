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


def start_and_stop(run_dir: Path, sig: int) -> subprocess.Popen:
    """Start a run and send ``sig`` once a checkpoint after step 0 exists (3 mask snapshots on disk)."""
    process = subprocess.Popen(
        command(*ARGS, "--out", str(run_dir)), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        masks = run_dir / "masks"
        if masks.is_dir() and len([p for p in masks.iterdir() if not p.name.startswith(".")]) >= 3:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be stopped; make it longer"
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
