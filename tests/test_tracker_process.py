"""``Tracker`` in real processes: the example loop of ``examples/`` end to end through the command
line, a script killed outright, and scripts that end without ``finish``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from fullspectrum.cli import main as cli_main
from fullspectrum.runs import RunStore, jobs, list_runs, run_file
from fullspectrum.runs.run_file import DB_FILE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "itop_loop.py"
pytestmark = pytest.mark.slow


def python(*args, **options) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=300, **options
    )


def test_the_example_loop_writes_a_run_that_runs_and_export_read(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "itop"
    done = python(EXAMPLE, "--steps", 120, "--every", 40, "--delta-t", 30, "--out", run_dir)
    assert done.returncode == 0, done.stderr
    assert f"{run_dir}: test accuracy" in done.stdout

    assert cli_main(["runs", str(tmp_path / "runs"), "--format", "json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["status"] == "finished" and listed["kind"] == "train" and listed["steps"] == 120
    assert listed["model"] == "mlp" and listed["method"] == "itop" and listed["density"] == 0.1
    assert 0.3 < listed["final_accuracy"] <= 1.0  # ten classes: well above chance after 120 steps

    assert cli_main(["export", str(run_dir), "--out", str(tmp_path / "export")]) == 0
    layers = pd.read_csv(tmp_path / "export" / "layers.csv")
    assert sorted(set(layers.step)) == [0, 40, 80, 120]  # step 0, every 40, and the last step
    assert set(layers.layer) == {"fc1", "fc2", "classifier"}
    assert (layers.query("step == 0").moving_distance == 0).all()
    assert (layers.query("step == 120").moving_distance > 0).all()  # random regrowth moved every layer
    rates = layers.groupby("step").exploration_rate.mean()
    assert rates.is_monotonic_increasing and rates[120] > rates[0]
    events = pd.read_csv(tmp_path / "export" / "events.csv")
    assert sorted(set(events.step)) == [30, 60, 90]  # every ΔT before the last step
    assert (events.pruned == events.grown).all() and (events.pruned > 0).all()
    evals = pd.read_csv(tmp_path / "export" / "evals.csv")
    assert list(evals.query("split == 'train'").step) == list(range(1, 121))
    assert list(evals.query("split == 'val'").step) == [40, 80, 120]
    info = json.loads((run_dir / "run.json").read_text())
    assert evals.query("split == 'test'").accuracy.tolist() == [info["final"]["test_accuracy"]]
    assert info["config"]["steps"] == 120 and info["config"]["out"] == str(run_dir)
    assert info["total_steps"] == 120 and info["spectra"] == "inline"  # a small MLP: milliseconds a snapshot
    store = RunStore.open(run_dir)
    assert store.mask_steps() == [0, 40, 80, 120]
    assert sorted(store.load_weights(120)) == ["classifier.weight", "fc1.weight", "fc2.weight"]


SCRIPT = """
import os, sys, torch
from torch import nn
import fullspectrum
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
tracker = fullspectrum.Tracker(model, sys.argv[1], every=2, spectra_worker=False)
for step in range(1, 4):
    tracker.step(step, loss=1.0 / step)
"""


def test_a_killed_script_leaves_a_readable_run_whose_heartbeat_goes_stale(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "killed"
    code = SCRIPT + "tracker._rows.flush()\nprint('ready', flush=True)\nimport time\ntime.sleep(120)\n"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        assert list_runs(tmp_path / "runs")[0].status == "running"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    store = RunStore.open(run_dir)
    assert store.info["status"] == "running"  # nobody marked it ...
    assert (run_dir / f"{DB_FILE}-wal").exists() and store.mask_steps() == [0, 2]
    assert list(store.evals().step) == [1, 2, 3] and sorted(set(store.layers().step)) == [0, 2]
    time.sleep(0.3)
    monkeypatch.setattr(run_file, "HEARTBEAT_TIMEOUT_S", 0.2)  # ... but its heartbeat has stopped
    assert list_runs(tmp_path / "runs")[0].status == "interrupted"
    assert jobs.job_state(run_dir).status == "interrupted" and not jobs.find_running(tmp_path / "runs")


@pytest.mark.parametrize(
    ("ending", "status", "error"),
    [
        ("", "interrupted", "the script ended without tracker.finish()"),
        ("raise RuntimeError('boom')", "failed", "RuntimeError: boom"),
    ],
    ids=["no-finish", "uncaught-error"],
)
def test_a_script_that_ends_without_finish_leaves_its_run_ended(tmp_path, ending, status, error):
    run_dir = tmp_path / "run"
    done = python("-c", SCRIPT + textwrap.dedent(ending), run_dir)
    assert done.returncode == (1 if ending else 0), done.stderr
    store = RunStore.open(run_dir)
    assert store.status == status and store.info["error"] == error
    assert store.mask_steps() == [0, 2] and list(store.evals().step) == [1, 2, 3]
    assert not (run_dir / f"{DB_FILE}-wal").exists()
