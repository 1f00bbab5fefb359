"""Bad input to ``fullspectrum lottery`` and ``earlybird``: exit 2, one line naming it, nothing written."""

from __future__ import annotations

import json

import pytest

from fullspectrum.cli import main

BASE = ["--epochs", "1", "--batch-size", "512", "--device", "cpu"]


def refused(capsys, args: list[str], *needles: str) -> str:
    code = main([str(arg) for arg in args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["lottery", "earlybird"])
@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan", "half"])
def test_a_density_outside_zero_one_is_refused(tmp_path, capsys, command, value):
    refused(capsys, [command, "--density", value, *BASE, "--out", tmp_path / "out"], "--density", "(0, 1)")
    assert not (tmp_path / "out").exists()


def test_a_negative_rewind_is_refused(tmp_path, capsys):
    args = ["lottery", "--density", "0.5", "--rewind-iters", "-1", *BASE, "--out", tmp_path / "out"]
    refused(capsys, args, "--rewind-iters", "at least 0")
    assert not (tmp_path / "out").exists()


def test_a_rewind_beyond_the_training_is_refused(tmp_path, capsys):
    args = ["lottery", "--density", "0.5", "--rewind-iters", "4", *BASE, "--out", tmp_path / "out"]
    refused(capsys, args, "rewind_iters 4 is beyond the training (3 iterations", "at most 3")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["lottery", "earlybird"])
def test_a_foreign_non_empty_folder_is_refused_and_left_alone(tmp_path, capsys, command):
    (tmp_path / "notes.txt").write_text("mine")
    refused(
        capsys,
        [command, "--density", "0.5", *BASE, "--out", tmp_path],
        "not empty and not a run",
        "notes.txt",
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("command", ["lottery", "earlybird"])
def test_a_folder_holding_another_kind_of_run_is_refused(tmp_path, capsys, command):
    other = "earlybird" if command == "lottery" else "lottery"
    (tmp_path / "run.json").write_text(json.dumps({"status": "finished", "kind": other, "config": {}}))
    refused(capsys, [command, "--density", "0.5", *BASE, "--out", tmp_path], f"holds a {other}")


@pytest.mark.parametrize("command", ["lottery", "earlybird"])
@pytest.mark.parametrize(
    "flag", [["--method", "rigl"], ["--mask", "m.pt"], ["--init", "er"], ["--sparse-init"]]
)
def test_options_the_method_fixes_are_refused(tmp_path, capsys, command, flag):
    args = [command, "--density", "0.5", *flag, *BASE, "--out", tmp_path / "out"]
    refused(capsys, args, "unrecognized arguments")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--density", "0.5"], ("give --out DIR",)),
        (["--out", "somewhere"], ("give --density",)),
        (["--resume", "somewhere", "--density", "0.5"], ("--resume continues", "--density")),
        (["--resume", "somewhere", "--epochs", "3"], ("drop --epochs",)),
        (["--density", "0.000009", *BASE, "--out", "new"], ("keeps round(9e-06 · 50432) = 0",)),
        (["--density", "0.5", *BASE, "--model", "nope", "--out", "new"], ("unknown model 'nope'",)),
    ],
)
def test_missing_or_conflicting_options_are_one_line(tmp_path, capsys, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    refused(capsys, ["lottery", *args], *needles)
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_resuming_a_folder_that_is_not_a_lineage_is_refused(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"status": "finished", "kind": "train", "config": {}}))
    refused(capsys, ["lottery", "--resume", tmp_path], "not a lottery")
    refused(capsys, ["earlybird", "--resume", tmp_path], "not an Early-Bird search")
    refused(capsys, ["lottery", "--resume", tmp_path / "missing"], "missing")
