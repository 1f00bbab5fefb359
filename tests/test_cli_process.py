"""The command line as a process: one-line flag errors, checked numbers, Ctrl-C, unreadable run folders.

SPEC §8's exit codes: 2 and one line on stderr for bad input (a flag argparse refuses, a seed out
of range, a folder ``runs`` cannot read), 130 and one line for Ctrl-C at any moment, imports
included; an interrupted training run is left ``interrupted`` (resumable), never ``failed``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runs_cli import make_run

from fullspectrum.cli import main
from fullspectrum.cli._common import density, non_negative_int, positive_float, positive_int, seed
from fullspectrum.runs import RunError, list_runs

CONSOLE_SCRIPT = Path(sys.executable).parent / "fullspectrum"


def one_line(err: str) -> str:
    """The only line of ``err``; fails when there are none or several."""
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    return err.rstrip("\n")


# -- argparse's errors: one line that points to --help -------------------------------------------------


@pytest.mark.parametrize(
    "argv, prog, fragment",
    [
        (["bogus"], "fullspectrum", "invalid choice: 'bogus'"),
        (["--bogus"], "fullspectrum", "--bogus"),
        ([], "fullspectrum", "give a command"),
        (["runs", ".", "--bogus", "x"], "fullspectrum runs", "unrecognized arguments: --bogus x"),
        (["prune", "--model", "mlp"], "fullspectrum prune", "required: --data, --method/--generator, --out"),
        (["runs"], "fullspectrum runs", "required: ROOT"),
        (["runs", ".", "--format", "xml"], "fullspectrum runs", "argument --format: invalid choice: 'xml'"),
        (["analyze", "x.pt", "--convention"], "fullspectrum analyze", "argument --convention: expected"),
        (["export", "run", "--out"], "fullspectrum export", "argument --out: expected one argument"),
        (["train", "--epochs", "two"], "fullspectrum train", "argument --epochs"),
        (["app", "--port", "http"], "fullspectrum app", "argument --port"),
    ],
)
def test_a_flag_argparse_refuses_is_one_line_that_points_to_help(capsys, argv, prog, fragment):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    assert out == ""
    assert line.startswith(f"{prog}: error: ") and line.endswith(f"(see {prog} --help)"), line
    assert fragment in line


@pytest.mark.parametrize("argv", [["--help"], ["prune", "--help"], ["runs", "-h"]])
def test_help_still_prints_the_whole_help_and_exits_0(capsys, argv):
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("usage: fullspectrum") and out.count("\n") > 5 and err == ""


def test_version_exits_0(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("fullspectrum ")


# -- numbers: seeds, counts, finite positive floats, densities -------------------------------------------


@pytest.mark.parametrize("text, value", [("0", 0), ("42", 42), (str(2**63 - 1), 2**63 - 1)])
def test_seed_accepts_what_torch_and_numpy_both_take(text, value):
    assert seed(text) == value


@pytest.mark.parametrize("text", ["-1", str(2**63), str(2**70), "1.5", "abc", "", "nan"])
def test_seed_refuses_the_rest_naming_the_range(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"from 0 to 9223372036854775807"):
        seed(text)


def test_the_other_number_types():
    assert positive_int("3") == 3 and non_negative_int("0") == 0
    assert positive_float("0.1") == 0.1 and density("1") == 1.0 and density("1e-3") == 0.001
    for kind, bad in [
        (positive_int, ["0", "-3", "1.5", "x"]),
        (non_negative_int, ["-1", "2.0", "x"]),
        (positive_float, ["0", "-0.1", "nan", "inf", "-inf", "x"]),
        (density, ["0", "1.5", "nan", "inf", "-0.1", "x"]),
    ]:
        for text in bad:
            with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace("'", "")):
                kind(text)


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**70)], "--seed"),
        (["--split-seed", "-1"], "--split-seed"),
        (["--density", "nan"], "--density"),
        (["--density", "0"], "--density"),
        (["--batch-size", "0"], "--batch-size"),
        (["--examples", "0"], "--examples"),
        (["--rounds", "0"], "--rounds"),
    ],
)
def test_prune_refuses_bad_numbers_before_any_work(tmp_path, capsys, flags, named):
    out = tmp_path / "masks.pt"
    argv = ["prune", "--model", "mlp", "--data", "digits", "--method", "synflow", "--density", "0.1"]
    assert main([*argv, "--out", str(out), *flags]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("fullspectrum prune: error: argument " + named) and flags[1] in line
    assert not out.exists()


@pytest.mark.parametrize("make", ["folder", "under_a_file"])
def test_prune_refuses_an_out_it_cannot_write_before_any_work(tmp_path, capsys, make):
    (tmp_path / "file").write_text("mine")
    out = tmp_path / "folder" if make == "folder" else tmp_path / "file" / "masks.pt"
    if make == "folder":
        out.mkdir()
    argv = ["prune", "--model", "mlp", "--data", "digits", "--method", "random", "--density", "0.1"]
    assert main([*argv, "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--out {out}" in line
    assert (tmp_path / "file").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "file",
        "folder",
    ][: 2 if make == "folder" else 1]


# -- Ctrl-C: one line and 130 at any moment --------------------------------------------------------------


def _interrupt(command: list[str], delay: float, tmp_path: Path) -> subprocess.CompletedProcess:
    """Start ``command``, send it SIGINT after ``delay`` seconds (while it imports), collect it."""
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


# synflow with this many rounds runs for minutes: the signal always arrives before it ends
LONG_PRUNE = ["prune", "--model", "mlp", "--data", "digits", "--method", "synflow", "--density", "0.1",
              "--rounds", "1000000", "--out", "masks.pt"]  # fmt: skip


@pytest.mark.parametrize("delay", [0.2, 0.8])
@pytest.mark.slow  # a real process
def test_ctrl_c_while_python_m_fullspectrum_imports_is_one_line_and_130(tmp_path, delay):
    result = _interrupt([sys.executable, "-m", "fullspectrum", *LONG_PRUNE], delay, tmp_path)
    # 130, or (rarely, when the signal lands while the interpreter itself handles it) death by SIGINT,
    # which a shell reports as the same 130; the one line below is the promise either way
    assert result.returncode in (130, -signal.SIGINT), result.stderr
    assert one_line(result.stderr).endswith("fullspectrum: interrupted")
    assert not (tmp_path / "masks.pt").exists()


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="the console script is not installed here")
@pytest.mark.slow  # a real process
def test_ctrl_c_of_the_console_script_is_one_line_and_130(tmp_path):
    result = _interrupt([str(CONSOLE_SCRIPT), *LONG_PRUNE], 0.5, tmp_path)
    assert result.returncode == 130, result.stderr
    assert one_line(result.stderr).endswith("fullspectrum: interrupted")


def test_ctrl_c_in_a_handler_is_one_line_and_130(capsys, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fullspectrum.cli.runs.list_runs", interrupted)
    assert main(["runs", str(tmp_path)]) == 130
    assert one_line(capsys.readouterr().err) == "fullspectrum: interrupted"


def test_ctrl_c_while_the_subcommands_import_is_held_until_they_are_in(capsys, monkeypatch):
    """A SIGINT during the imports must not raise inside them (inside an extension module's import a
    KeyboardInterrupt aborts the process): the import phase finishes, then main says interrupted."""
    import fullspectrum.cli as cli

    real_build = cli.build_parser
    finished = []

    def build_with_a_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs at the next bytecode: a raising one would stop us here
        parser = real_build()
        finished.append(True)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_with_a_ctrl_c)
    assert main(["runs", "."]) == 130
    assert finished, "the interrupt was raised inside the import phase"
    assert one_line(capsys.readouterr().err) == "fullspectrum: interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_building_the_parser_is_one_line_and_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fullspectrum.cli.importlib.import_module", interrupted)
    assert main(["runs", "."]) == 130
    assert one_line(capsys.readouterr().err) == "fullspectrum: interrupted"


def test_a_second_ctrl_c_during_training_setup_leaves_an_interrupted_run(tmp_path, capsys, monkeypatch):
    """The first Ctrl-C asks for a graceful stop; a second one during setup stops at once."""

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr("fullspectrum.training.loop.Session.initialise", interrupted)
    out = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--data", "digits", "--method", "itop", "--epochs", "1"]
    assert main([*argv, "--out", str(out)]) == 130
    assert capsys.readouterr().err.rstrip("\n").endswith("fullspectrum: interrupted")
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


# -- runs ROOT: a folder it cannot read is bad input, not an empty listing -----------------------------


def _deny_scandir(monkeypatch, denied) -> None:
    """Make ``os.scandir`` raise PermissionError for the folders ``denied(path)`` picks (tests run as
    root, which reads a chmod-000 folder anyway)."""
    real = os.scandir

    def scandir(path="."):
        if denied(Path(path)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_list_runs_of_an_unreadable_folder_is_an_error(tmp_path, monkeypatch):
    _deny_scandir(monkeypatch, lambda path: path == tmp_path)
    with pytest.raises(RunError, match="cannot be read.*Permission denied"):
        list_runs(tmp_path)


def test_runs_command_on_an_unreadable_folder_exits_2_naming_it(tmp_path, monkeypatch, capsys):
    _deny_scandir(monkeypatch, lambda path: path == tmp_path)
    assert main(["runs", str(tmp_path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert str(tmp_path) in line and "cannot be read" in line


def test_an_unreadable_subfolder_is_listed_as_corrupt_and_hides_nothing(tmp_path, monkeypatch, capsys):
    make_run(tmp_path / "a_run")
    (tmp_path / "b_locked").mkdir()
    _deny_scandir(monkeypatch, lambda path: path.name == "b_locked")
    runs = {run.path.name: run for run in list_runs(tmp_path)}
    assert runs["a_run"].status == "finished"
    assert runs["b_locked"].status == "corrupt" and "cannot be read" in runs["b_locked"].error
    assert main(["runs", str(tmp_path)]) == 0
    assert "b_locked" in capsys.readouterr().err


@pytest.mark.parametrize("make, problem", [("file", "not a folder"), ("missing", "no such folder"),
                                           ("under_a_file", "not a folder")])  # fmt: skip
@pytest.mark.slow  # a real process
def test_runs_command_on_a_file_or_a_missing_folder_exits_2_in_one_line(tmp_path, make, problem):
    (tmp_path / "file").write_text("hello")
    root = {"file": tmp_path / "file", "missing": tmp_path / "missing",
            "under_a_file": tmp_path / "file" / "runs"}[make]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "fullspectrum", "runs", str(root)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stdout == ""
    line = one_line(result.stderr)
    assert str(root) in line and problem in line, line
