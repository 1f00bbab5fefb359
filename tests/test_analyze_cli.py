"""``fullspectrum analyze`` (SPEC §8): formats, network means, notes on stderr, exit code 2 on bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from fullspectrum import analyze, network_summary
from fullspectrum.cli import main
from fullspectrum.spectrum.network import TABLE_COLUMNS

LAYERS = ["0", "3", "6"]


def write_checkpoint(path, *, collapse: str | None = None) -> None:
    """A pruned conv-conv-linear net saved the ``torch.nn.utils.prune`` way, nested like a training script."""
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(2, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    for name in LAYERS:
        prune.random_unstructured(net.get_submodule(name), "weight", amount=0.5)
    state = net.state_dict()
    if collapse is not None:
        state[f"{collapse}.weight_mask"] = torch.zeros_like(state[f"{collapse}.weight_mask"])
    torch.save({"epoch": 1, "state_dict": state}, path)


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "sparse.pt"
    write_checkpoint(path)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["layer"] = frame["layer"].astype(str)
    frame["in_regime"] = frame["in_regime"].astype(bool)
    for column in ("block", "projection", "nm_pattern"):  # CSV reads an empty string back as NaN
        frame[column] = frame[column].astype(object).fillna("").astype(str)
    return frame


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_machine_formats_on_stdout_are_one_row_per_layer(fmt, checkpoint, capsys):
    code, out, err = run_cli(capsys, checkpoint, "--format", fmt)
    assert code == 0
    frame = (
        pd.read_csv(io.StringIO(out), dtype={"layer": str}) if fmt == "csv" else pd.DataFrame(json.loads(out))
    )
    if fmt == "json":
        assert isinstance(json.loads(out), list)
    assert list(frame.columns) == list(TABLE_COLUMNS)
    assert list(frame["layer"].astype(str)) == LAYERS
    expected = analyze(checkpoint)
    pd.testing.assert_frame_equal(_numbers(frame), _numbers(expected), check_dtype=False, rtol=1e-9)
    assert "note:" in err and "note:" not in out  # notes go to stderr only


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_machine_formats_to_file(fmt, checkpoint, tmp_path, capsys):
    out_file = tmp_path / f"table.{fmt}"
    code, out, _ = run_cli(capsys, checkpoint, "--format", fmt, "--out", out_file)
    assert code == 0 and out == ""
    reader = {
        "csv": lambda p: pd.read_csv(p, dtype={"layer": str}),
        "json": pd.read_json,
        "parquet": pd.read_parquet,
    }
    frame = reader[fmt](out_file)
    assert list(frame.columns) == list(TABLE_COLUMNS)
    assert len(frame) == len(LAYERS)
    expected = analyze(checkpoint)
    pd.testing.assert_frame_equal(_numbers(frame), _numbers(expected), check_dtype=False, rtol=1e-9)


def test_table_shows_layers_and_network_means(checkpoint, capsys):
    code, out, err = run_cli(capsys, checkpoint)
    assert code == 0
    table = analyze(checkpoint)
    means = network_summary(table.drop(columns=["layer", "kind", "shape"]))
    assert "Network (3 layers" in out
    means_block = out.split("Network (")[1]
    for column in ("delta_r", "lambda_w", "delta_r_imdb", "density"):
        assert f"{means[column]:.6g}" in means_block
    assert f"{int(table['edges'].sum())}" in means_block
    for shape in table["shape"]:
        assert shape in out.split("Network (")[0]
    assert "note:" in err


def test_convention_r23_blanks_gaps_outside_the_regime(checkpoint, capsys):
    _, fs23, _ = run_cli(capsys, checkpoint, "--format", "json")
    _, r23, _ = run_cli(capsys, checkpoint, "--format", "json", "--convention", "r23")
    fs23_rows, r23_rows = json.loads(fs23), json.loads(r23)
    for a, b in zip(fs23_rows, r23_rows, strict=True):
        assert a["sigma2"] == pytest.approx(b["sigma2"])
        if not a["in_regime"]:
            assert b["delta_r"] is None and a["delta_r"] is not None
    assert any(not row["in_regime"] for row in fs23_rows)  # the case above was exercised


def test_collapsed_layer_warns_and_exits_zero(tmp_path, capsys):
    write_checkpoint(tmp_path / "collapsed.pt", collapse="6")
    code, out, err = run_cli(capsys, tmp_path / "collapsed.pt", "--format", "csv")
    assert code == 0
    frame = pd.read_csv(io.StringIO(out), dtype={"layer": str}).set_index("layer")
    assert frame.loc["6", "edges"] == 0 and np.isnan(frame.loc["6", "delta_r"])
    assert "warning: layer 6 is collapsed" in err


def _truncate(path):
    write_checkpoint(path)
    path.write_bytes(path.read_bytes()[:700])


def _state(**changes):
    def write(path):
        write_checkpoint(path)
        obj = torch.load(path, weights_only=True)
        for key, change in changes.items():
            obj["state_dict"][key] = change(obj["state_dict"][key])
        torch.save(obj, path)

    return write


def _nan(weight):
    weight = weight.clone()
    weight.view(-1)[0] = float("nan")
    return weight


def _half(mask):
    mask = mask.clone()
    mask.view(-1)[0] = 0.5
    return mask


class Custom:
    pass


BAD = {
    "missing file": (None, [], "no such file"),
    "truncated file": (_truncate, [], "corrupt, truncated"),
    "corrupt file": (lambda p: p.write_bytes(b"\x80\x02garbage" * 20), [], "corrupt, truncated"),
    "no layers": (lambda p: torch.save({"bias": torch.zeros(3)}, p), [], "no layers"),
    "shape mismatch": (_state(**{"6.weight_mask": lambda m: torch.ones(5, 7)}), [], "layer 6"),
    "non-binary mask": (_state(**{"3.weight_mask": _half}), [], "not binary"),
    "nan weight": (_state(**{"0.weight_orig": _nan}), [], "NaN"),
    "unsafe global": (lambda p: torch.save({"x": Custom()}, p), [], "unsafe pickled globals"),
    "parquet without --out": (write_checkpoint, ["--format", "parquet"], "--out"),
    "--out in a missing folder": (
        write_checkpoint,
        ["--format", "csv", "--out", "nowhere/t.csv"],
        "does not exist",
    ),
    "--device cuda without one": (write_checkpoint, ["--device", "cuda"], "no CUDA device"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write, extra, fragment = BAD[case]
    if case == "--device cuda without one" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    path = tmp_path / "input.pt"
    if write is not None:
        write(path)
    code, out, err = run_cli(capsys, path, *extra)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fullspectrum: error:"), err
    assert fragment in lines[0] and "Traceback" not in err and out == ""
    if case not in ("parquet without --out", "--out in a missing folder", "--device cuda without one"):
        assert str(path) in lines[0]


@pytest.mark.slow
def test_real_subprocess(checkpoint, tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "fullspectrum", "analyze", str(checkpoint), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(pd.read_csv(io.StringIO(ok.stdout))) == len(LAYERS)
    bad = subprocess.run(
        [sys.executable, "-m", "fullspectrum", "analyze", str(tmp_path / "absent.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"fullspectrum: error: {tmp_path / 'absent.pt'}: no such file"]
