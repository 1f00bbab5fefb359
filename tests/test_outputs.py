"""Where commands write (SPEC §8): nothing of the user's is replaced, and a bad place is bad input.

Every command that creates a run (``train``, ``ingest``, ``pags``) goes through
``RunStore.create`` and its one policy (``fullspectrum.runs.outputs``): a new or empty folder, or a
non-empty one only with ``--allow-nonempty`` (and even then no file is replaced); a folder holding
``run.json`` is a run (of a multi-run kind too), and so is every folder inside a single run.
``analyze --out`` never replaces its input; ``export --out`` and ``analyze --out`` refuse a file,
a path under a file or an unwritable folder. Each refusal: exit 2, one line naming the path, and
nothing created or changed.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from fullspectrum.cli import main
from fullspectrum.runs import RunError, RunStore
from fullspectrum.runs import jobs as jobs_module
from fullspectrum.runs.outputs import JOB_FILES, MULTI_RUN_KINDS, check_new_run_folder
from tests.run_rows import CONFIG, folder_files, new_store

TRAIN = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--device", "cpu"]
PAGS = ["pags", "--model", "mlp", "--data", "digits", "--generator", "random", "--population", "2"]


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    return err.rsplit("\r", 1)[-1].rstrip("\n")


def refused(capsys, argv, *fragments) -> str:
    """Run ``argv``; it must exit 2 with one ``error:`` line holding every fragment."""
    assert main([str(arg) for arg in argv]) == 2
    out, err = capsys.readouterr()
    line = one_line(err)
    assert line.startswith("fullspectrum: error: ") and "Traceback" not in err, line
    for fragment in fragments:
        assert str(fragment) in line, line
    return line


@pytest.fixture
def checkpoint(tmp_path) -> pathlib.Path:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    for index in (0, 2):
        prune.random_unstructured(net[index], "weight", amount=0.5)
    path = tmp_path / "sparse.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def finished_run(tmp_path) -> pathlib.Path:
    store = new_store(tmp_path / "done")
    store.add_evals(0, [{"split": "val", "loss": 1.0, "accuracy": 0.5}])
    store.finish()
    return tmp_path / "done"


def command(name: str, out, checkpoint, finished_run) -> list:
    """``name`` writing to ``out``: the run commands make a run there, analyze a file, export files."""
    return {
        "train": [*TRAIN, "--out", out],
        "ingest": ["ingest", checkpoint, "--out", out],
        "pags": [*PAGS, "--out", out],
        "analyze": ["analyze", checkpoint, "--format", "csv", "--out", out],
        "export": ["export", finished_run, "--out", out],
    }[name]


COMMANDS = ("train", "ingest", "pags", "analyze", "export")


# -- a bad place: exit 2, one line, nothing made ----------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_out_that_is_a_file_or_under_a_file_is_bad_input(name, tmp_path, capsys, checkpoint, finished_run):
    file = tmp_path / "file.txt"
    file.write_text("mine")
    places = [file / "sub"] if name == "analyze" else [file, file / "sub"]
    for out in places:
        refused(capsys, command(name, out, checkpoint, finished_run), out)
    assert file.read_text() == "mine"


def _deny_writes(monkeypatch, folder: pathlib.Path) -> None:
    """Make ``folder`` unwritable: chmod, and for root (whom chmod does not stop) ``os.access`` says so."""
    folder.chmod(0o555)
    real = os.access

    def access(path, mode, *args, **kwargs):
        if pathlib.Path(path).absolute() == folder.absolute() and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("name", COMMANDS)
def test_out_in_an_unwritable_folder_is_bad_input(
    name, tmp_path, capsys, monkeypatch, checkpoint, finished_run
):
    locked = tmp_path / "locked"
    locked.mkdir()
    _deny_writes(monkeypatch, locked)
    try:
        out = locked / ("table.csv" if name == "analyze" else "out")
        refused(capsys, command(name, out, checkpoint, finished_run), out, "permission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("name", ("train", "ingest", "pags"))
def test_a_folder_that_cannot_be_made_is_bad_input_and_leaves_nothing(
    name, tmp_path, capsys, monkeypatch, checkpoint, finished_run
):
    """The access check passes but the file system refuses (a read-only mount, an ACL)."""
    real = pathlib.Path.mkdir
    target = tmp_path / "a" / "b"

    def mkdir(self, *args, **kwargs):
        if self.absolute() == target.absolute():
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    refused(capsys, command(name, target, checkpoint, finished_run), target, "cannot create the run here")
    assert not (tmp_path / "a").exists()  # the parent it made is gone too


# -- nothing of the user's is replaced ---------------------------------------------------------------------


def test_a_non_empty_folder_that_is_not_a_run_is_refused(tmp_path, capsys, checkpoint, finished_run):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "checkpoint.pt").write_text("mine")
    (folder / "source.pt").write_text("mine too")
    before = folder_files(folder)
    for name in ("train", "ingest", "pags"):
        refused(capsys, command(name, folder, checkpoint, finished_run), folder, "not empty", "checkpoint.pt")
        assert folder_files(folder) == before
    line = refused(capsys, [*TRAIN, "--out", folder, "--allow-nonempty"], folder / "checkpoint.pt")
    assert "already exists" in line
    line = refused(capsys, ["ingest", checkpoint, "--out", folder, "--allow-nonempty"], folder / "source.pt")
    assert folder_files(folder) == before


def test_allow_nonempty_puts_the_run_beside_the_users_files(tmp_path, capsys, checkpoint):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "data").mkdir()
    (folder / "data" / "x.csv").write_text("1,2")
    before = folder_files(folder)
    assert main([*map(str, TRAIN), "--out", str(folder), "--allow-nonempty"]) == 0
    capsys.readouterr()
    assert RunStore.open(folder).info["status"] == "finished"
    after = folder_files(folder)
    assert {name: after[name] for name in before} == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["ingest", str(checkpoint), "--out", str(other), "--allow-nonempty"]) == 0
    capsys.readouterr()
    assert (other / "notes.txt").read_text() == "mine" and (other / "source.pt").is_file()


def test_resume_takes_no_allow_nonempty(tmp_path, capsys, finished_run):
    refused(capsys, ["train", "--resume", finished_run, "--allow-nonempty"], "--allow-nonempty")


def test_artifact_path_refuses_a_name_the_user_had(tmp_path):
    (tmp_path / "pags_mask.pt").write_text("mine")
    store = RunStore.create(
        tmp_path, kind="pags", config=dict(CONFIG), seed=0, device="cpu", allow_nonempty=True
    )
    with pytest.raises(RunError, match="pags_mask.pt: a file of yours"):
        store.artifact_path("pags_mask.pt")
    assert store.artifact_path("base_mask.pt") == tmp_path / "base_mask.pt"
    store.close()
    assert (tmp_path / "pags_mask.pt").read_text() == "mine"


def test_a_folder_with_users_files_in_masks_is_refused_even_with_allow_nonempty(tmp_path):
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "mine.npz").write_text("mine")
    with pytest.raises(RunError, match="masks"):
        RunStore.create(
            tmp_path, kind="train", config=dict(CONFIG), seed=0, device="cpu", allow_nonempty=True
        )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["masks", "mine.npz"]


def test_the_apps_job_files_and_an_upload_in_the_folder_are_not_the_users(tmp_path, capsys, checkpoint):
    """The app writes job.json and job.log (and an upload as source.pt) before its job makes the run."""
    assert set(JOB_FILES) == {jobs_module.JOB_FILE, jobs_module.JOB_LOG}
    folder = tmp_path / "upload"
    folder.mkdir()
    for name in JOB_FILES:
        (folder / name).write_text("{}")
    upload = folder / "source.pt"
    upload.write_bytes(checkpoint.read_bytes())
    assert main(["ingest", str(upload), "--out", str(folder)]) == 0
    capsys.readouterr()
    assert RunStore.open(folder).info["kind"] == "analysis"
    assert upload.read_bytes() == checkpoint.read_bytes()
    assert check_new_run_folder(tmp_path / "job", inputs=()) == tmp_path / "job"


def test_analyze_never_replaces_its_input(tmp_path, capsys, checkpoint):
    original = checkpoint.read_bytes()
    (tmp_path / "link.pt").symlink_to(checkpoint)
    os.link(checkpoint, tmp_path / "hard.pt")
    for out in (checkpoint, tmp_path / "link.pt", tmp_path / "hard.pt"):
        refused(
            capsys, ["analyze", checkpoint, "--format", "csv", "--out", out], out, "never replaces an input"
        )
    assert checkpoint.read_bytes() == original
    assert main(["analyze", str(checkpoint), "--format", "csv", "--out", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").read_text().startswith("layer,")


def test_export_into_the_run_itself_leaves_the_runs_files_alone(tmp_path, capsys, finished_run):
    before = folder_files(finished_run)
    assert main(["export", str(finished_run), "--out", str(finished_run)]) == 0
    capsys.readouterr()
    after = folder_files(finished_run)
    assert {name: after[name] for name in before} == before
    assert RunStore.open(finished_run).info["status"] == "finished"


def test_export_never_replaces_a_file(tmp_path, capsys, finished_run):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "layers.csv").write_text("my own layers.csv")
    (folder / "notes.txt").write_text("mine")
    before = folder_files(folder)
    refused(capsys, ["export", finished_run, "--out", folder], folder / "layers.csv", "not replaced")
    assert folder_files(folder) == before
    (folder / "layers.csv").unlink()
    assert main(["export", str(finished_run), "--out", str(folder)]) == 0  # beside the user's notes
    capsys.readouterr()
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "evals.csv").is_file()
    refused(capsys, ["export", finished_run, "--out", folder], "already exists")  # not over an export either


# -- runs are runs: existing ones, multi-run folders, folders inside a run ----------------------------------


@pytest.mark.parametrize("kind", MULTI_RUN_KINDS)
def test_a_multi_run_folder_counts_as_a_run_of_its_kind(kind, tmp_path, capsys, checkpoint):
    folder = tmp_path / kind
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"status": "finished", "kind": kind, "config": {}}))
    before = folder_files(folder)
    refused(capsys, ["ingest", checkpoint, "--out", folder, "--allow-nonempty"], folder, f"holds a {kind}")
    assert folder_files(folder) == before
    assert check_new_run_folder(folder / "run_1") == folder / "run_1"  # its runs live in subfolders


def test_an_existing_run_or_a_folder_inside_one_is_refused(tmp_path, capsys, checkpoint, finished_run):
    before = folder_files(finished_run)
    refused(capsys, ["ingest", checkpoint, "--out", finished_run], "already holds a finished train run")
    refused(capsys, ["ingest", checkpoint, "--out", finished_run / "sub"], "inside the train run")
    unfinished = new_store(tmp_path / "unfinished")
    unfinished.close()
    refused(capsys, [*TRAIN, "--out", tmp_path / "unfinished"], "fullspectrum train --resume")
    assert folder_files(finished_run) == before


def test_an_unreadable_or_half_made_run_is_refused(tmp_path):
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="unreadable run.json"):
        check_new_run_folder(tmp_path / "garbage", allow_nonempty=True)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "metrics.sqlite").write_bytes(b"")
    with pytest.raises(RunError, match="half-created"):
        check_new_run_folder(tmp_path / "half", allow_nonempty=True)


def test_a_folder_that_cannot_be_read_is_bad_input(tmp_path, monkeypatch):
    folder = tmp_path / "closed"
    folder.mkdir()
    real = os.scandir

    def scandir(path="."):
        if pathlib.Path(path) == folder:  # root reads a chmod-000 folder anyway
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(RunError, match="closed: cannot be read .Permission denied"):
        RunStore.create(folder, kind="train", config=dict(CONFIG), seed=0, device="cpu")


def test_a_run_whose_creation_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    from fullspectrum.runs import store as store_module

    def full_disk(path, value):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "write_json_atomic", full_disk)
    with pytest.raises(RunError, match="new/run: cannot create the run here .No space left on device"):
        RunStore.create(tmp_path / "new" / "run", kind="train", config=dict(CONFIG), seed=0, device="cpu")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="No space left"):
        RunStore.create(
            tmp_path / "mine", kind="train", config=dict(CONFIG), seed=0, device="cpu", allow_nonempty=True
        )
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
