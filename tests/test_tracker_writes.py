"""``Tracker``'s writer thread: the loop hands rows and snapshots over and goes on, the writes keep
their order, a failed write ends the run failed, and a process killed with writes still queued
leaves a readable run holding a prefix of what the uninterrupted run holds (SPEC §8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fullspectrum.runs import RunStore
from fullspectrum.tracking import Tracker
from fullspectrum.tracking.background import BackgroundWrites

ROOT = Path(__file__).resolve().parents[1]

# A toy loop: a tracker on a small MLP (inline spectra), every step's rows handed over at once.
# With hold_from = k, the 4th commit of logged rows takes half a second (a slow disk: the loop's later
# rows and snapshots queue up behind it) and the k-th and every later one never returns (a disk that
# hangs), so the rows after it stay queued on the writer thread; "ready" once the loop is done.
SCRIPT = """
import sys, threading, time
import torch
from torch import nn
from fullspectrum.tracking import Tracker

run_dir, hold_from = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
tracker = Tracker(model, run_dir, every=5, spectra_worker=False)
tracker._rows.flush_s = 0.0
commit, calls = tracker.store.add_steps, []
def held(steps):
    calls.append(1)
    if hold_from and len(calls) == 4:
        time.sleep(0.5)
    if hold_from and len(calls) >= hold_from:
        threading.Event().wait()
    commit(steps)
tracker.store.add_steps = held
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
generator = torch.Generator().manual_seed(1)
for step in range(1, 31):
    inputs = torch.randn(8, 12, generator=generator)
    loss = nn.functional.cross_entropy(model(inputs), torch.randint(0, 3, (8,), generator=generator))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    tracker.step(step, loss=loss.item())
if hold_from:
    while len(calls) < hold_from:  # the writer thread has reached the commit that hangs
        time.sleep(0.01)
    print("ready", flush=True)
    time.sleep(120)
tracker.finish()
"""


def _run_script(run_dir: Path, hold_from: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", SCRIPT, str(run_dir), str(hold_from)]
    if not hold_from:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout.readline().strip() == "ready"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_kill_with_rows_still_queued_leaves_a_readable_prefix_of_the_whole_run(tmp_path):
    _run_script(tmp_path / "whole", hold_from=0)
    _run_script(tmp_path / "killed", hold_from=8)
    whole, killed = RunStore.open(tmp_path / "whole"), RunStore.open(tmp_path / "killed")
    assert whole.status == "finished" and killed.info["status"] == "running"  # killed: nobody marked it
    whole_evals, killed_evals = whole.evals(), killed.evals()
    assert list(killed_evals.step) == list(range(1, 8))  # seven commits made it, the eighth hung
    assert killed_evals.equals(whole_evals.iloc[: len(killed_evals)])
    steps = killed.mask_steps()
    assert steps == whole.mask_steps()[: len(steps)] and steps[:2] == [0, 5]
    layers = killed.layers()
    assert sorted(set(layers.step)) == steps
    assert layers.equals(whole.layers().iloc[: len(layers)])


def test_the_loop_goes_on_while_a_commit_waits_and_every_row_lands_in_order(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    release = threading.Event()
    with Tracker(model, tmp_path / "run", every=1000, spectra_worker=False) as tracker:
        tracker._rows.flush_s = 0.0
        commit = tracker.store.add_steps
        tracker.store.add_steps = lambda steps: (release.wait(timeout=3), commit(steps))
        start = time.monotonic()
        for step in range(1, 21):
            tracker.step(step, loss=1.0 / step)
        assert time.monotonic() - start < 2.5  # the loop never waited for the held commit
        assert len(RunStore.open(tmp_path / "run").evals()) == 0
        release.set()
        tracker.finish()
    evals = RunStore.open(tmp_path / "run").evals()
    assert list(evals.step) == list(range(1, 21))
    assert list(evals.loss) == pytest.approx([1.0 / step for step in range(1, 21)])


def test_a_write_that_fails_on_the_thread_fails_the_run_at_the_next_step(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    reached = 0

    def broken(steps):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with Tracker(model, tmp_path / "run", every=1000, spectra_worker=False) as tracker:
            tracker._rows.flush_s = 0.0
            tracker.store.add_steps = broken
            for step in range(1, 200):
                tracker.step(step, loss=0.5)
                reached = step
                time.sleep(0.005)
    store = RunStore.open(tmp_path / "run")
    assert reached < 199  # raised inside the loop, not only at the end
    assert store.status == "failed" and store.info["error"] == "OSError: disk full"
    assert store.mask_steps() == [0] and len(store.evals()) == 0


def test_background_writes_run_in_order_and_stop_at_the_first_error():
    writes, seen = BackgroundWrites(), []
    for index in range(50):
        writes.put(lambda index=index: (time.sleep(0.001 * (index % 3)), seen.append(index)))
    writes.wait()
    assert seen == list(range(50))
    writes.put(lambda: (_ for _ in ()).throw(ValueError("bad row")))
    writes.put(lambda: seen.append("after"))  # queued behind the failing job: never runs
    with pytest.raises(ValueError, match="bad row"):
        writes.wait()
    with pytest.raises(ValueError, match="bad row"):
        writes.put(lambda: None)
    writes.close()
    assert seen[-1] == 49
