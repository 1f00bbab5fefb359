"""The run store (SPEC §8): atomic run.json, heartbeat, WAL snapshots, read-only finished runs, masks."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import fullspectrum
from fullspectrum.errors import FullSpectrumError, UnknownNameError
from fullspectrum.runs import (
    EVAL_COLUMNS,
    EVENT_COLUMNS,
    LAYER_COLUMNS,
    POPULATION_COLUMNS,
    RunError,
    RunStore,
    effective_status,
    run_file,
)
from fullspectrum.runs import store as store_module
from fullspectrum.runs.database import DTYPES
from fullspectrum.spectrum import SPECTRUM_FIELDS
from tests.run_rows import CONFIG, folder_files, layer_row, new_store, real_layer_row

# -- run.json -------------------------------------------------------------------------------------------


def test_create_records_config_seed_versions_and_wal(tmp_path):
    store = new_store(tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "running" and info["kind"] == "train"
    assert info["config"] == CONFIG and info["seed"] == 7 and info["device"] == "cpu" and info["final"] == {}
    for key in ("created", "updated", "heartbeat"):
        assert info[key]  # ISO time stamps
    versions = info["versions"]
    assert versions["fullspectrum"] == fullspectrum.__version__
    assert versions["torch"] == torch.__version__ and versions["numpy"] == np.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["scipy"] and versions["platform"]
    assert (tmp_path / "run" / "masks").is_dir()
    header = (tmp_path / "run" / "metrics.sqlite").read_bytes()[:20]
    assert header[18] == 2, "metrics.sqlite is in WAL mode while the job runs"
    assert store.info == info and store.status == "running"
    store.close()


def test_create_refuses_an_existing_run_and_unknown_kind(tmp_path):
    new_store(tmp_path / "run").close()
    with pytest.raises(RunError, match="already holds a run"):
        new_store(tmp_path / "run")
    with pytest.raises(
        UnknownNameError, match="choose from analysis, earlybird, lottery, pags, reproduction, sweep, train"
    ):
        RunStore.create(tmp_path / "other", kind="fit", config={}, seed=0, device="cpu")


def test_update_info_merges_and_keeps_non_finite_numbers_valid_json(tmp_path):
    store = new_store(tmp_path / "run")
    store.update_info(final={"test_accuracy": float("nan"), "best": np.float32(0.5)}, note=Path("a/b"))
    text = (tmp_path / "run" / "run.json").read_text()
    info = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert info["final"] == {"test_accuracy": None, "best": 0.5} and info["note"] == "a/b"
    assert info["config"] == CONFIG and info["seed"] == 7
    store.close()


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_run_json_write_leaves_the_old_file(tmp_path, monkeypatch, failing):
    store = new_store(tmp_path / "run")
    before = (tmp_path / "run" / "run.json").read_bytes()

    def crash(*args, **kwargs):
        raise OSError(f"simulated crash in {failing}")

    monkeypatch.setattr(f"fullspectrum.checkpoints.atomic.os.{failing}", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.update_info(status="finished", final={"test_accuracy": 0.9})
    monkeypatch.undo()
    assert (tmp_path / "run" / "run.json").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(
        ["run.json", "metrics.sqlite", "metrics.sqlite-wal", "metrics.sqlite-shm", "masks", ".writer.lock"]
    ), "no temporary file left behind"
    store.close()


def test_process_killed_between_write_and_rename_leaves_a_readable_run(tmp_path):
    run = tmp_path / "run"
    new_store(run).close()
    before = (run / "run.json").read_bytes()
    script = textwrap.dedent(
        f"""
        import os
        from fullspectrum.runs import RunStore
        store = RunStore.open({str(run)!r}, readonly=False)
        os.replace = lambda *args: os._exit(9)  # the job dies after writing the temp file
        store.update_info(status="finished")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    assert (run / "run.json").read_bytes() == before
    assert any(name.endswith(".tmp") for name in os.listdir(run)), "the killed write left its temp file"
    reopened = RunStore.open(run)
    assert reopened.info["status"] == "running"
    assert fullspectrum.list_runs(tmp_path)[0].error is None


# -- heartbeat --------------------------------------------------------------------------------------------


def test_stale_heartbeat_reads_as_interrupted(tmp_path):
    store = new_store(tmp_path / "run")
    info = store.info
    beat = pd.Timestamp(info["heartbeat"]).timestamp()
    assert effective_status(info, timeout_s=60, now=beat + 59) == "running"
    assert effective_status(info, timeout_s=60, now=beat + 61) == "interrupted"
    assert effective_status({**info, "status": "finished"}, timeout_s=60, now=beat + 1e6) == "finished"
    assert effective_status({k: v for k, v in info.items() if k != "heartbeat"}) == "interrupted"

    reader = RunStore.open(tmp_path / "run")
    reader.heartbeat_timeout_s = 0.05
    time.sleep(0.2)
    assert reader.status == "interrupted"  # the job stopped beating
    store.heartbeat()
    reader.heartbeat_timeout_s = 30.0
    assert reader.status == "running"
    assert reader.info["status"] == "running", "the file itself is not rewritten by a reader"
    store.close()


def test_heartbeat_thread_refreshes_run_json(tmp_path):
    store = new_store(tmp_path / "run")
    first = store.info["heartbeat"]
    with store.heartbeat_thread(interval_s=0.02):
        deadline = time.monotonic() + 30
        while store.info["heartbeat"] == first and time.monotonic() < deadline:
            time.sleep(0.01)
        store.update_info(final={"test_accuracy": 0.5})  # concurrent writes lose nothing
        later = store.info["heartbeat"]
        assert later != first
        deadline = time.monotonic() + 30
        while store.info["heartbeat"] == later and time.monotonic() < deadline:
            time.sleep(0.01)
    info = store.info
    assert info["heartbeat"] != later and info["final"] == {"test_accuracy": 0.5}
    store.close()


def test_killed_job_lists_as_interrupted(tmp_path, monkeypatch):
    run = tmp_path / "run"
    script = f"""
import os
from fullspectrum.runs import RunStore
store = RunStore.create({str(run)!r}, kind="train", config={{}}, seed=1, device="cpu")
store.add_evals(0, [{{"split": "val", "loss": 1.0, "accuracy": 0.5}}])
os._exit(0)  # killed: no finish, no close
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    monkeypatch.setattr(run_file, "HEARTBEAT_TIMEOUT_S", 0.0)
    time.sleep(0.01)
    (summary,) = fullspectrum.list_runs(tmp_path)
    assert summary.status == "interrupted" and summary.steps == 0 and summary.error is None
    resumed = RunStore.open(run, readonly=False)  # the dead writer's lock died with it
    assert list(resumed.evals()["accuracy"]) == [0.5]
    resumed.finish("interrupted")


# -- the database -----------------------------------------------------------------------------------------


def test_readers_have_pinned_columns_and_dtypes_even_when_empty(tmp_path):
    store = new_store(tmp_path / "run")
    for table, columns in [
        ("layers", LAYER_COLUMNS),
        ("evals", EVAL_COLUMNS),
        ("events", EVENT_COLUMNS),
        ("population", POPULATION_COLUMNS),
    ]:
        frame = getattr(store, table)()
        assert tuple(frame.columns) == columns and len(frame) == 0
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            c: str(pd.Series([], dtype=t).dtype) for c, t in DTYPES[table].items()
        }
    assert LAYER_COLUMNS == (
        "step",
        "layer",
        *SPECTRUM_FIELDS,
        "moving_distance",
        "exploration_rate",
        "effective_weights",
        "network_effective_density",
    )
    store.close()


def test_snapshot_round_trip_keeps_values_nan_and_types(tmp_path):
    store = new_store(tmp_path / "run")
    rows = {
        step: [real_layer_row("conv1", step), real_layer_row("fc", step + 10, weighted=False)]
        for step in (0, 5)
    }
    for step in (5, 0):  # written out of order, read in step order
        store.add_snapshot(
            step,
            rows[step],
            [{"split": "val", "loss": 1.0 / (step + 1), "accuracy": 0.1 * step, "exploration_rate": 0.2}],
            [{"layer": "conv1", "pruned": step, "grown": step}],
        )
    layers = RunStore.open(tmp_path / "run").layers()
    assert list(layers["step"]) == [0, 0, 5, 5] and list(layers["layer"]) == ["conv1", "fc"] * 2
    for index, row in enumerate(rows[0] + rows[5]):
        got = layers.iloc[index]
        for column, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(got[column]), column
            else:
                assert got[column] == value, column
    assert layers["omega1"].isna().sum() == 2  # unweighted layer: NaN survives the database
    evals = store.evals()
    assert list(evals["step"]) == [0, 5] and evals["accuracy"].tolist() == pytest.approx([0.0, 0.5])
    assert store.events()[["step", "pruned", "grown"]].values.tolist() == [[0, 0, 0], [5, 5, 5]]
    store.add_population(
        [
            {"candidate": -1, "layer": "fc", "delta_r": 1.0, "score": 2.0, "won": False},
            {"candidate": 3, "layer": "fc", "delta_r": 1.5, "lambda_w": 2, "score": 3.0, "won": True},
        ]
    )
    population = store.population()
    assert population["candidate"].tolist() == [-1, 3] and population["won"].tolist() == [False, True]
    assert population["lambda_w"].isna().tolist() == [True, False]
    assert store.last_step() == 5
    store.close()


@pytest.mark.parametrize(
    ("evals", "message"),
    [
        ([{"split": "dev", "loss": 1.0, "accuracy": 0.5}], "split 'dev'"),
        ([{"split": "val", "acc": 0.5}], "unknown column"),
        ([{"loss": 1.0}], "missing column"),
        ([{"split": "val", "loss": "high"}], "'loss' has bad value"),
    ],
)
def test_a_bad_row_rolls_back_the_whole_snapshot(tmp_path, evals, message):
    store = new_store(tmp_path / "run")
    with pytest.raises(FullSpectrumError, match=message):
        store.add_snapshot(3, [layer_row("a", 3), layer_row("b", 3)], evals)
    assert len(store.layers()) == 0 and len(store.evals()) == 0
    store.add_snapshot(3, [layer_row("a", 3)])  # the store still works
    assert store.layers()["step"].tolist() == [3]
    store.close()


READER = textwrap.dedent(
    """
    import json, pathlib, sys
    from fullspectrum.runs import RunStore
    run, n_layers, ready, done, report = sys.argv[1:]
    store = RunStore.open(run)
    pathlib.Path(ready).touch()
    reads, torn, counts = 0, [], set()
    while True:
        finished = pathlib.Path(done).exists()
        layers = store.layers()
        per_step = layers.groupby("step")["layer"].apply(list)
        torn += [int(s) for s, names in per_step.items() if names != [f"layer{i}" for i in range(int(n_layers))]]
        counts.add(len(per_step))
        reads += 1
        pathlib.Path(report + ".progress").write_text(str(reads))
        if finished:
            break
    json.dump({"reads": reads, "torn": torn, "distinct": len(counts), "last": len(per_step)}, open(report, "w"))
    """
)


def _progress(report: Path) -> int:
    try:
        return int((report.parent / (report.name + ".progress")).read_text())
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_a_reader_process_sees_only_whole_snapshots(tmp_path):
    run, n_layers = tmp_path / "run", 8
    store = new_store(run)
    flags = {name: tmp_path / name for name in ("ready", "done", "report.json")}
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(run), str(n_layers), *map(str, flags.values())],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not flags["ready"].exists():
            assert reader.poll() is None, reader.stderr.read()
            assert time.monotonic() < deadline, "reader never started"
            time.sleep(0.05)
        step = 0
        # write until the reader has read many times while snapshots were landing
        while step < 40 or (_progress(flags["report.json"]) < 25 and step < 5000):
            rows = [layer_row(f"layer{i}", step) for i in range(n_layers)]
            store.add_snapshot(step, rows, [{"split": "val", "loss": 1.0, "accuracy": 0.5}])
            step += 1
        store.finish(final={"test_accuracy": 0.5})  # while the reader still polls
        flags["done"].touch()
        assert reader.wait(timeout=120) == 0, reader.stderr.read()
    finally:
        if reader.poll() is None:
            reader.kill()
    result = json.loads(flags["report.json"].read_text())
    assert result["torn"] == [], "a reader saw part of a snapshot"
    assert result["distinct"] >= 2, "the reader read while snapshots were being written"
    assert result["last"] == step
    assert not list(run.glob("metrics.sqlite-*")), "finish left -wal/-shm files despite the reader"


def test_writer_lock_stops_a_second_writer(tmp_path):
    store = new_store(tmp_path / "run")
    with pytest.raises(RunError, match="another process is writing"):
        RunStore.open(tmp_path / "run", readonly=False)
    store.close()
    RunStore.open(tmp_path / "run", readonly=False).close()


def test_readonly_store_refuses_writes(tmp_path):
    new_store(tmp_path / "run").close()
    reader = RunStore.open(tmp_path / "run")
    with pytest.raises(RunError, match="read-only"):
        reader.add_evals(1, [{"split": "val"}])
    with pytest.raises(RunError, match="read-only"):
        reader.update_info(status="finished")
    with pytest.raises(RunError, match="read-only"):
        reader.save_masks(0, {"a.weight": torch.ones(2, 2, dtype=torch.bool)})


# -- finishing and read-only folders ------------------------------------------------------------------------


def _make_read_only(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _make_writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)


@pytest.mark.parametrize("folder_writable", [None, False], ids=["as-is", "unwritable(immutable)"])
def test_finished_run_leaves_no_wal_and_opens_from_a_read_only_folder(tmp_path, monkeypatch, folder_writable):
    run = tmp_path / "run"
    store = new_store(run)
    masks = {"fc.weight": torch.rand(7, 9) < 0.5}
    for step in range(3):
        store.add_snapshot(step, [layer_row("fc", step)], [{"split": "val", "accuracy": step / 10}])
    store.save_masks(2, masks)
    store.finish(final={"test_accuracy": 0.75})
    assert sorted(p.name for p in run.iterdir()) == ["masks", "metrics.sqlite", "run.json"]
    assert (run / "metrics.sqlite").read_bytes()[18] == 1, "rollback journal after finish"
    assert store.info["status"] == "finished" and store.info["final"] == {"test_accuracy": 0.75}
    with pytest.raises(RunError, match="finished or closed"):
        store.add_evals(3, [{"split": "val"}])

    _make_read_only(run)
    if folder_writable is not None:  # as root chmod does not stop writes: force the immutable route
        monkeypatch.setattr(store_module, "_folder_writable", lambda folder: folder_writable)
    try:
        before = folder_files(run)
        reader = RunStore.open(run)
        assert reader.status == "finished"
        assert reader.layers()["step"].tolist() == [0, 1, 2]
        assert reader.evals()["accuracy"].tolist() == pytest.approx([0.0, 0.1, 0.2])
        assert torch.equal(reader.load_masks(2)["fc.weight"], masks["fc.weight"])
        assert [s.status for s in fullspectrum.list_runs(tmp_path)] == ["finished"]
        assert folder_files(run) == before, "reading changed or created files"
    finally:
        _make_writable(run)


def test_finish_validates_status_and_merges_final(tmp_path):
    store = new_store(tmp_path / "run")
    store.update_info(final={"best_val_accuracy": 0.8})
    with pytest.raises(UnknownNameError, match="choose from failed, finished, interrupted"):
        store.finish("done")
    store.finish("failed", final={"error": "boom"})
    assert store.info["final"] == {"best_val_accuracy": 0.8, "error": "boom"}
    assert store.status == "failed"


def test_resume_after_finish_switches_back_to_wal(tmp_path):
    store = new_store(tmp_path / "run")
    store.add_evals(0, [{"split": "val", "accuracy": 0.1}])
    store.finish("interrupted")
    resumed = RunStore.open(tmp_path / "run", readonly=False)
    assert (tmp_path / "run" / "metrics.sqlite").read_bytes()[18] == 2
    resumed.add_evals(1, [{"split": "val", "accuracy": 0.2}])
    resumed.finish()
    assert RunStore.open(tmp_path / "run").evals()["step"].tolist() == [0, 1]


@pytest.mark.parametrize(("error", "status"), [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")])
def test_a_run_ended_by_an_error_says_how(tmp_path, error, status):
    store = new_store(tmp_path / "run")
    with pytest.raises(error), store.ended_on_error():
        raise error
    assert RunStore.open(tmp_path / "run").info["status"] == status
