"""Sweeps that run: a grid of tiny trainings, run again, killed and resumed, with a failing point.

Every point is a real ``python -m fullspectrum train`` process (an MLP on digits for one
epoch), so these tests are slow. What they check: one run folder per point and one row per
point in ``points.csv`` with the run's final values; a second invocation runs nothing and
touches no run; a sweep killed with SIGKILL, run again, continues the point it was running
(``train --resume``: the same run, not a new one), starts the ones it had not reached and
leaves the finished ones alone; a failing point is reported (on stderr and in the table) while
the others finish, and the sweep exits 1.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fullspectrum.cli import main
from fullspectrum.runs import RunStore, list_runs

pytestmark = pytest.mark.slow

TINY_TRAIN = """
command = "train"
[fixed]
model = "mlp"
data = "digits"
method = "static"
epochs = 1
batch_size = 256
[grid]
density = [0.05, 0.1]
seed = [0, 1]
"""


def read_points(folder: Path) -> list[dict]:
    with open(folder / "points.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def run_infos(folder: Path) -> dict[str, bytes]:
    """Each point's ``run.json`` as bytes, by point folder name."""
    return {row["run"]: (folder / row["run"] / "run.json").read_bytes() for row in read_points(folder)}


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("grids") / "tiny.toml"
    path.write_text(TINY_TRAIN)
    return path


@pytest.fixture(scope="module")
def finished_sweep(grid_file, tmp_path_factory) -> Path:
    """The 4-point grid swept once, two points at a time."""
    out = tmp_path_factory.mktemp("sweeps") / "tiny"
    assert main(["sweep", str(grid_file), "--out", str(out), "--max-parallel", "2"]) == 0
    return out


def test_a_sweep_writes_one_run_per_point_and_a_row_each(finished_sweep):
    rows = read_points(finished_sweep)
    assert [(row["density"], row["seed"]) for row in rows] == [
        ("0.05", "0"),
        ("0.05", "1"),
        ("0.1", "0"),
        ("0.1", "1"),
    ]
    assert list(rows[0])[:10] == [
        *("model", "data", "method", "epochs", "batch_size", "density", "seed"),
        *("run", "status", "error"),
    ]
    for row in rows:
        assert row["status"] == "finished" and row["error"] == ""
        info = RunStore.open(finished_sweep / row["run"]).info
        assert info["kind"] == "train" and info["status"] == "finished"
        assert info["config"]["density"] == float(row["density"]) and info["seed"] == int(row["seed"])
        assert float(row["test_accuracy"]) == info["final"]["test_accuracy"]  # the run's own final values
        assert row["final_density"] and row["steps"] == str(info["final"]["steps"])
    sweep = RunStore.open(finished_sweep).info
    assert sweep["kind"] == "sweep" and sweep["status"] == "finished"
    assert sweep["final"] == {"points": 4, "finished": 4} and sweep["progress"] == {"done": 4, "total": 4}
    assert (finished_sweep / "grid.toml").read_text() == TINY_TRAIN
    listed = {run.path.name: run.kind for run in list_runs(finished_sweep)}
    assert listed[finished_sweep.name] == "sweep" and sorted(listed.values()).count("train") == 4


def test_a_second_invocation_runs_nothing_and_touches_no_run(finished_sweep, grid_file, capsys):
    before = run_infos(finished_sweep)
    table = (finished_sweep / "points.csv").read_bytes()
    assert main(["sweep", str(grid_file), "--out", str(finished_sweep)]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 points finished (0 run now, 4 had finished before)" in out
    assert run_infos(finished_sweep) == before and (finished_sweep / "points.csv").read_bytes() == table


def test_a_different_grid_into_the_same_folder_is_refused(finished_sweep, grid_file, tmp_path, capsys):
    other = tmp_path / "other.toml"
    other.write_text(TINY_TRAIN.replace("seed = [0, 1]", "seed = [0, 1, 2]"))
    assert main(["sweep", str(other), "--out", str(finished_sweep)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a sweep of a different grid" in err
    assert len(read_points(finished_sweep)) == 4


def test_a_killed_sweep_resumes_its_point_and_runs_only_the_missing_ones(grid_file, tmp_path):
    out = tmp_path / "killed"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fullspectrum",
            "sweep",
            str(grid_file),
            "--out",
            str(out),
            "--max-parallel",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait for one finished point and the next one's run
            rows = read_points(out) if (out / "points.csv").is_file() else []
            done = [row for row in rows if row["status"] == "finished"]
            running = [row for row in rows if row["status"] == "running"]
            if done and running and (out / running[0]["run"] / "run.json").is_file():
                break
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the sweep did not get to its second point in time")
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    finished = {row["run"]: (out / row["run"] / "run.json").read_bytes() for row in done}
    resumed = running[0]["run"]
    created = json.loads((out / resumed / "run.json").read_text())["created"]
    _wait_for_writer_to_die(out / resumed)
    assert RunStore.open(out / resumed).info["status"] == "running"  # killed mid-run: its heartbeat stopped
    assert RunStore.open(out).status == "running" or RunStore.open(out).status == "interrupted"

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "fullspectrum",
            "sweep",
            str(grid_file),
            "--out",
            str(out),
            "--max-parallel",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    missing = 4 - len(finished)
    assert f"4 of 4 points finished ({missing} run now, {len(finished)} had finished before)" in again.stdout
    rows = read_points(out)
    assert all(row["status"] == "finished" for row in rows)
    for name, info in finished.items():  # finished points were left alone
        assert (out / name / "run.json").read_bytes() == info
    resumed_info = RunStore.open(out / resumed).info
    assert (
        resumed_info["created"] == created and resumed_info["status"] == "finished"
    )  # continued, not re-made
    first, then = _commands_logged(out, resumed)
    assert "--out" in first and then == f"$ fullspectrum train --resume {out / resumed}"
    assert all(len(_commands_logged(out, name)) == 1 for name in finished)
    assert RunStore.open(out).info["status"] == "finished"


def _wait_for_writer_to_die(run_dir: Path) -> None:
    """The point's process dies with the killed sweep (PR_SET_PDEATHSIG); wait until it has let go."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            RunStore.open(run_dir, readonly=False).close()
            return
        except Exception:
            time.sleep(0.1)
    pytest.fail(f"{run_dir} is still being written after the sweep was killed")


def _commands_logged(out: Path, name: str) -> list[str]:
    """The command lines the sweep ran for point ``name`` (its log has one ``$ ...`` line each)."""
    return [line for line in (out / "logs" / f"{name}.log").read_text().splitlines() if line.startswith("$ ")]


FAILING = """
command = "train"
[fixed]
data = "digits"
method = "static"
epochs = 1
batch_size = 256
[grid]
model = ["mlp", "no_such_model"]
"""


def test_a_failing_point_is_reported_and_the_others_finish(tmp_path, capsys):
    grid = tmp_path / "failing.toml"
    grid.write_text(FAILING)
    out = tmp_path / "failing"
    assert main(["sweep", str(grid), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    rows = {row["model"]: row for row in read_points(out)}
    assert rows["mlp"]["status"] == "finished" and rows["mlp"]["test_accuracy"]
    failed = rows["no_such_model"]
    assert failed["status"] == "failed" and "unknown model 'no_such_model'" in failed["error"]
    assert f"point {failed['run']} failed: {failed['error']}" in err
    last = err.rstrip("\n").replace("\r", "\n").splitlines()[-1]
    assert last.startswith("fullspectrum sweep: 1 of 2 points did not finish (1 failed, 0 skipped")
    assert RunStore.open(out).info["status"] == "failed"
    assert RunStore.open(out).info["final"] == {"points": 2, "finished": 1, "failed": 1}
    assert os.path.isfile(out / "logs" / f"{failed['run']}.log")


CHAIN = """
[stage.sample]
command = "pags"
fixed = { model = "mlp", data = "digits", density = 0.1, population = 3, seed = 0 }
grid = { generator = ["random", "no_such_generator"] }

[stage.train]
command = "train"
from = "sample"
fixed = { model = "mlp", data = "digits", method = "static", mask = "{sample}/pags_mask.pt", seed = "{sample.seed}", epochs = 1, batch_size = 256 }
"""


def test_a_chain_trains_each_mask_its_upstream_wrote_and_skips_those_of_failed_ones(tmp_path, capsys):
    grid = tmp_path / "chain.toml"
    grid.write_text(CHAIN)
    out = tmp_path / "chain"
    assert main(["sweep", str(grid), "--out", str(out), "--max-parallel", "2"]) == 1
    rows = read_points(out)
    assert [(row["stage"], row["generator"], row["status"]) for row in rows] == [
        ("sample", "random", "finished"),
        ("sample", "no_such_generator", "failed"),
        ("train", "", "finished"),
        ("train", "", "skipped"),
    ]
    sample, bad, train, skipped = rows
    assert train["mask"] == str(out / sample["run"] / "pags_mask.pt") and train["seed"] == "0"
    info = RunStore.open(out / train["run"]).info
    assert info["config"]["mask"] == train["mask"] and info["status"] == "finished"
    assert skipped["error"] == f"needs {bad['run']}, which failed" and not (out / skipped["run"]).exists()
    assert "unknown mask generator 'no_such_generator'" in bad["error"]
    assert RunStore.open(out).info["final"] == {"points": 4, "finished": 2, "failed": 1, "skipped": 1}


def test_ctrl_c_stops_the_running_points_resumably_and_exits_130(tmp_path):
    grid_file = tmp_path / "long.toml"
    grid_file.write_text(TINY_TRAIN.replace("epochs = 1", "epochs = 200"))  # long enough to be stopped
    out = tmp_path / "stopped"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fullspectrum",
            "sweep",
            str(grid_file),
            "--out",
            str(out),
            "--max-parallel",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait until the first point's run exists
            rows = read_points(out) if (out / "points.csv").is_file() else []
            running = [row for row in rows if row["status"] == "running"]
            if running and (out / running[0]["run"] / "checkpoint.pt").is_file():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the sweep did not start its first point in time")
        driver.send_signal(signal.SIGINT)
        err = driver.communicate(timeout=120)[1]
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130
    assert err.rstrip().endswith(
        f"fullspectrum: interrupted; continue with: fullspectrum sweep {grid_file} --out {out}"
    )
    rows = read_points(out)
    stopped = [row for row in rows if row["run"] == running[0]["run"]][0]
    assert stopped["status"] == "interrupted"
    assert RunStore.open(out / stopped["run"]).info["status"] == "interrupted"  # saved, resumable
    assert [row["status"] for row in rows if row is not stopped] == ["pending"] * 3
    assert RunStore.open(out).info["status"] == "interrupted"
