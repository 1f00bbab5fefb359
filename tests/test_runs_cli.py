"""Run listing, export files and the ``runs``/``export`` commands (SPEC §8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fullspectrum.cli import main
from fullspectrum.errors import UnknownNameError
from fullspectrum.runs import (
    EVAL_COLUMNS,
    EVENT_COLUMNS,
    LAYER_COLUMNS,
    POPULATION_COLUMNS,
    RunError,
    RunStore,
    RunSummary,
    export_run,
    list_runs,
)
from fullspectrum.runs.database import DTYPES

TABLES = {
    "layers": LAYER_COLUMNS,
    "evals": EVAL_COLUMNS,
    "events": EVENT_COLUMNS,
    "population": POPULATION_COLUMNS,
}


def layer_row(name: str, step: int) -> dict:
    row = {"layer": name}
    for column, dtype in DTYPES["layers"].items():
        if column not in ("step", "layer"):
            row[column] = {"int64": step + 1, "float64": step + 0.25, "bool": True}[dtype]
    return row


def make_run(folder: Path, kind: str = "train", *, rows: bool = True, finish: bool = True, **config) -> Path:
    config = {"model": "mlp", "data": "digits", "method": "itop", "density": 0.05, **config}
    store = RunStore.create(folder, kind=kind, config=config, seed=3, device="cpu")
    if rows:
        for step in (0, 10, 20):
            store.add_snapshot(
                step,
                [layer_row("fc1", step), layer_row("fc2", step)],
                [{"split": "val", "loss": 1.0, "accuracy": 0.5 + step / 100}],
                [{"layer": "fc1", "pruned": 4, "grown": 4}],
            )
        if kind == "pags":
            store.add_population(
                [{"candidate": c, "layer": "fc1", "score": float(c), "won": c == 1} for c in (-1, 0, 1)]
            )
        store.save_masks(20, {"fc1.weight": torch.eye(4, dtype=torch.bool)})
    if finish:
        store.finish(final={"test_accuracy": 0.875} if rows else None)
    else:
        store.close()
    return folder


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "runs"
    make_run(root / "a_train")
    make_run(root / "b_pags", kind="pags", method=None, generator="snip")
    make_run(root / "nested" / "c_live", finish=False)
    garbage = make_run(root / "d_garbage_json")
    (garbage / "run.json").write_text("{ not json")
    no_db = make_run(root / "e_no_db")
    (no_db / "metrics.sqlite").unlink()
    bad_db = make_run(root / "f_bad_db")
    (bad_db / "metrics.sqlite").write_bytes(b"\x00garbage" * 64)
    half = root / "g_half"
    half.mkdir()
    (half / "metrics.sqlite").write_bytes(b"")
    (root / "not_a_run").mkdir()
    (root / "not_a_run" / "notes.txt").write_text("hello")
    return root


# -- list_runs ----------------------------------------------------------------------------------------------


def test_list_runs_reports_corrupt_runs_and_still_lists_the_others(runs_root):
    runs = {run.path.relative_to(runs_root).as_posix(): run for run in list_runs(runs_root)}
    assert list(runs) == [
        "a_train",
        "b_pags",
        "d_garbage_json",
        "e_no_db",
        "f_bad_db",
        "g_half",
        "nested/c_live",
    ]
    good = runs["a_train"]
    assert (good.kind, good.status, good.model, good.data, good.method) == (
        "train",
        "finished",
        "mlp",
        "digits",
        "itop",
    )
    assert (good.density, good.seed, good.final_accuracy, good.steps, good.error) == (
        0.05,
        3,
        0.875,
        20,
        None,
    )
    assert runs["b_pags"].method == "snip" and runs["b_pags"].kind == "pags"
    assert runs["nested/c_live"].status == "running" and runs["nested/c_live"].final_accuracy is None
    assert not list((runs_root / "nested" / "c_live").glob("metrics.sqlite-*")), "listing creates no files"
    expected_errors = {
        "d_garbage_json": "run.json: corrupt",
        "e_no_db": "metrics.sqlite missing",
        "f_bad_db": "metrics.sqlite: unreadable",
        "g_half": "half-written run",
    }
    for name, fragment in expected_errors.items():
        assert runs[name].status == "corrupt" and fragment in runs[name].error, (name, runs[name].error)
        assert "\n" not in runs[name].error
    assert runs["e_no_db"].kind == "train" and runs["e_no_db"].model == "mlp"  # what could be read is shown


def test_list_runs_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(RunError, match="no such folder"):
        list_runs(tmp_path / "nothing")
    assert list_runs(tmp_path) == []


# -- export ---------------------------------------------------------------------------------------------------


def _read(file: Path) -> pd.DataFrame:
    return pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("kind", ["train", "pags"])
def test_export_files_have_exactly_the_pinned_columns_even_when_empty(tmp_path, fmt, kind):
    run = make_run(tmp_path / "run", kind=kind, rows=False)
    files = export_run(run, tmp_path / "out", fmt)
    expected = ["layers", "evals", "events"] + (["population"] if kind == "pags" else [])
    assert [file.name for file in files] == [f"{name}.{fmt}" for name in expected]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f.name for f in files)
    for file in files:
        frame = _read(file)
        assert tuple(frame.columns) == TABLES[file.stem] and len(frame) == 0
    if fmt == "parquet":  # typed even when empty
        layers = pd.read_parquet(tmp_path / "out" / "layers.parquet")
        assert layers["step"].dtype == "int64" and layers["in_regime"].dtype == bool


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trips_the_tables(tmp_path, fmt):
    run = make_run(tmp_path / "run", kind="pags")
    store = RunStore.open(run)
    files = {file.stem: file for file in export_run(run, tmp_path / "out", fmt)}
    assert list(files) == ["layers", "evals", "events", "population"]
    for name, file in files.items():
        exported, stored = _read(file), getattr(store, name)()
        assert tuple(exported.columns) == TABLES[name] and len(exported) == len(stored) > 0
        pd.testing.assert_frame_equal(exported, stored, check_dtype=False)
    with pytest.raises(UnknownNameError, match="choose from csv, parquet"):
        export_run(run, tmp_path / "out", "xlsx")


# -- the commands ----------------------------------------------------------------------------------------


def test_runs_command_table_csv_json(runs_root, capsys):
    assert main(["runs", str(runs_root)]) == 0
    out, err = capsys.readouterr()
    header, *lines = out.splitlines()
    assert header.split() == "kind model data method density seed status final accuracy steps path".split()
    assert len(lines) == 7
    a_train = next(line for line in lines if line.endswith("a_train"))
    assert a_train.split()[:9] == ["train", "mlp", "digits", "itop", "0.05", "3", "finished", "0.8750", "20"]
    assert err.count("corrupt run") == 4 and "run.json: corrupt" in err

    assert main(["runs", str(runs_root), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["status"] for row in rows].count("corrupt") == 4
    assert set(rows[0]) == set(RunSummary.__dataclass_fields__)

    assert main(["runs", str(runs_root), "--format", "csv"]) == 0
    frame = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(frame.columns) == list(RunSummary.__dataclass_fields__) and len(frame) == 7


def test_runs_command_exit_codes(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0  # a folder without runs is an empty listing
    assert "no runs under" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err


def test_export_command(tmp_path, capsys):
    run = make_run(tmp_path / "run", kind="pags")
    assert main(["export", str(run), "--format", "parquet", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [f"{n}.parquet" for n in TABLES]
    assert main(["export", str(run), "--out", str(tmp_path / "csv")]) == 0  # csv by default
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == sorted(f"{n}.csv" for n in TABLES)


@pytest.mark.slow  # a real process
def test_export_command_on_a_non_run_folder_exits_2_with_one_line(tmp_path):
    (tmp_path / "plain").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fullspectrum",
            "export",
            str(tmp_path / "plain"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "not a run directory" in result.stderr
    assert not (tmp_path / "out").exists()
