"""Uploaded checkpoints in the app: kept by content, one folder per browser session, removed when
refused or failed and when a dead session left them a day ago (Compare masks, the Runs page's
"Analyse a checkpoint"), and the content-addressed store behind them (``fullspectrum.runs.uploads``)."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis.compare import compare_masks
from analysis.mask_sources import upload_masks
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import RunStore, jobs, uploads
from fullspectrum.runs.ingest import ingest_checkpoint
from tests.app_fixtures import make_run

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
PAGES = ROOT / "app" / "app_pages"
SHAPES = {"fc1.weight": (16, 20), "fc2.weight": (10, 16)}


def _checkpoint_bytes(seed: int, density: float) -> bytes:
    """A bare state dict whose zeros are its masks: a different seed gives a different mask."""
    g = torch.Generator().manual_seed(seed)
    state = {name: torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) < density)
             for name, shape in SHAPES.items()}  # fmt: skip
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _true_iou(tmp_path: Path, a: bytes, b: bytes) -> list[float]:
    paths = []
    for name, data in (("a.pt", a), ("b.pt", b)):
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    masks = [upload_masks(path).masks for path in paths]
    return compare_masks(*masks).table["iou"].tolist()


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    runs = tmp_path / "runs"
    make_run(runs / "run_0", density=0.3, seed=0, accuracy=0.5)
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(runs))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.delenv("FULLSPECTRUM_ANY_FOLDER", raising=False)
    return tmp_path / "workspace"


def _compare_page() -> AppTest:
    at = AppTest.from_file(str(PAGES / "compare_masks.py"), default_timeout=60)
    at.session_state["cmp_kind_a"] = "Upload"
    at.session_state["cmp_kind_b"] = "Upload"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(at: AppTest, side: str, name: str, data: bytes | None) -> AppTest:
    widget = at.file_uploader(key=f"cmp_upload_{side}")
    widget.set_value(None if data is None else (name, data, "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _page_iou(at: AppTest) -> list[float]:
    return next(frame.value for frame in at.dataframe if "iou" in frame.value.columns)["iou"].tolist()


def _stored(workspace: Path) -> list[Path]:
    return sorted(path for path in (workspace / uploads.UPLOADS_DIR).rglob("*") if path.is_file())


def _errors(at: AppTest) -> list[str]:
    return [str(error.value) for error in at.error]


# -- Compare masks ------------------------------------------------------------------------------------


def test_compare_masks_a_new_upload_under_the_same_name_is_compared_afresh(workspace, tmp_path):
    x, y, z = _checkpoint_bytes(1, 0.3), _checkpoint_bytes(2, 0.6), _checkpoint_bytes(3, 0.3)
    at = _compare_page()
    _upload(at, "a", "model.pt", x)
    _upload(at, "b", "other.pt", z)
    assert _page_iou(at) == pytest.approx(_true_iou(tmp_path, x, z))
    _upload(at, "a", "model.pt", y)  # another file, the same name
    assert _page_iou(at) == pytest.approx(_true_iou(tmp_path, y, z))
    labels = [m.value for m in at.markdown if m.value.startswith("**A**")]
    assert labels == ["**A** = model.pt · **B** = other.pt"]  # the user's names, not the stored ones


def test_two_sessions_uploading_the_same_name_keep_their_own_files(workspace, tmp_path):
    x, y, z = _checkpoint_bytes(1, 0.3), _checkpoint_bytes(2, 0.6), _checkpoint_bytes(3, 0.3)
    first, second = _compare_page(), _compare_page()
    _upload(first, "a", "model.pt", x)
    _upload(first, "b", "other.pt", z)
    _upload(second, "a", "model.pt", y)
    _upload(second, "b", "other.pt", z)
    first.run()  # the first user's page again, after the second uploaded a model.pt of their own
    assert _page_iou(first) == pytest.approx(_true_iou(tmp_path, x, z))
    assert _page_iou(second) == pytest.approx(_true_iou(tmp_path, y, z))
    stored = {path.read_bytes() for path in _stored(workspace) if path.name == "model.pt"}
    assert stored == {x, y}  # neither overwrote the other
    sessions = {path.relative_to(workspace / uploads.UPLOADS_DIR).parts[0] for path in _stored(workspace)}
    assert len(sessions) == 2


def test_a_bad_upload_is_one_line_naming_the_file_and_leaves_nothing(workspace):
    at = _compare_page()
    _upload(at, "a", "bad.pt", b"not a checkpoint at all")
    errors = _errors(at)
    assert len(errors) == 1 and "bad.pt" in errors[0] and "\n" not in errors[0]
    assert str(workspace) not in errors[0]  # the user's file name, never the server's path
    assert _stored(workspace) == []
    at.run()  # still refused on the next run, and still nothing saved
    assert len(_errors(at)) == 1 and _stored(workspace) == []


def test_a_replaced_upload_is_removed(workspace):
    x, y = _checkpoint_bytes(1, 0.3), _checkpoint_bytes(2, 0.6)
    at = _compare_page()
    _upload(at, "a", "model.pt", x)
    _upload(at, "a", "model.pt", y)
    assert [path.read_bytes() for path in _stored(workspace)] == [y]
    _upload(at, "a", "model.pt", None)  # cleared
    assert _stored(workspace) == []


# -- Runs page: analyse a checkpoint ---------------------------------------------------------------------


def _fake_ingest(source, run_dir):
    """``jobs.start_ingest`` done at once: the job's files as a finished (or failed) job leaves them."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / jobs.JOB_FILE).write_text(json.dumps({"pid": 999_999_999, "command": ["ingest"]}))
    try:
        ingest_checkpoint(source, run_dir)
    except FullSpectrumError as error:
        (run_dir / jobs.JOB_LOG).write_text(f"fullspectrum: error: {error}\n")
    return jobs.job_state(run_dir)


def _analyse(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="runs_upload").set_value((name, data, "application/octet-stream"))
    at.run()
    next(b for b in at.button if b.label == "Analyse checkpoint").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_runs_page_a_failed_analysis_names_the_file_and_removes_the_upload(workspace, monkeypatch):
    monkeypatch.setattr(jobs, "start_ingest", _fake_ingest)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    _analyse(at, "broken.pt", b"garbage")
    errors = _errors(at)
    assert any("broken.pt" in text for text in errors), errors
    assert not any(str(workspace) in text for text in errors), errors
    assert _stored(workspace) == []  # the saved upload is gone
    assert not [p for p in workspace.iterdir() if p.name.startswith("upload_")]  # and the job's folder


def test_runs_page_uploads_with_one_name_get_their_own_runs(workspace, monkeypatch):
    monkeypatch.setattr(jobs, "start_ingest", _fake_ingest)
    x, y = _checkpoint_bytes(1, 0.3), _checkpoint_bytes(2, 0.6)
    first = AppTest.from_file(APP, default_timeout=60)
    first.run()
    second = AppTest.from_file(APP, default_timeout=60)
    second.run()
    _analyse(first, "model.pt", x)
    _analyse(second, "model.pt", y)  # within the same second: the run folders' names collide
    runs = sorted(p for p in workspace.iterdir() if p.name.startswith("upload_model"))
    assert len(runs) == 2
    assert {(run / "source.pt").read_bytes() for run in runs} == {x, y}
    assert {RunStore.open(run).status for run in runs} == {"finished"}
    assert _stored(workspace) == []  # each run keeps its own copy; the upload itself is gone


def _pruned_checkpoint() -> bytes:
    """A ``torch.nn.utils.prune`` state dict (``weight_orig`` and ``weight_mask``) with its weights."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    for layer in (model[0], model[2]):
        torch.nn.utils.prune.random_unstructured(layer, "weight", amount=0.7)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def test_an_analysed_upload_keeps_its_weights_is_selected_and_shows_what_was_read(workspace, monkeypatch):
    monkeypatch.setattr(jobs, "start_ingest", _fake_ingest)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    _analyse(at, "pruned.pt", _pruned_checkpoint())
    at.run()
    run = next(p for p in workspace.iterdir() if p.name.startswith("upload_pruned"))
    assert at.session_state["selected_run"] == str(run)  # selected after analysis
    assert RunStore.open(run).load_weights(0)  # the snapshot keeps values_i
    markdown = " ".join(str(m.value) for m in at.markdown)
    assert "Analysed checkpoint **pruned.pt** · detected format **" in markdown
    assert any("Sparse: 30.00% of the weights" in str(c.value) for c in at.caption)
    layers = next(frame.value for frame in at.dataframe if "lambda_w" in frame.value.columns)
    assert list(layers["layer"]) == ["0", "2"] and layers["lambda_w"].notna().all()
    at.switch_page("app_pages/graph_inspector.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("stores no weights" in str(c.value) for c in at.caption)
    classes = at.dataframe[0].value
    assert classes.loc[classes.qualifies, "lambda_c"].notna().all()


def test_a_dense_upload_says_it_is_not_sparse(workspace, monkeypatch):
    monkeypatch.setattr(jobs, "start_ingest", _fake_ingest)
    buffer = io.BytesIO()
    torch.save({name: torch.randn(shape) for name, shape in SHAPES.items()}, buffer)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    _analyse(at, "dense.pt", buffer.getvalue())
    at.run()
    assert any("dense, not sparse" in str(w.value) for w in at.warning)


# -- left by dead sessions -------------------------------------------------------------------------------


def test_uploads_a_day_old_are_removed_when_the_app_starts(workspace):
    old = uploads.store_upload(workspace / uploads.UPLOADS_DIR, uploads.new_session_id(), "old.pt", b"o")
    fresh = uploads.store_upload(workspace / uploads.UPLOADS_DIR, uploads.new_session_id(), "new.pt", b"n")
    day_ago = time.time() - uploads.MAX_AGE_S - 60
    os.utime(old.path, (day_ago, day_ago))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert _stored(workspace) == [fresh.path]
    assert not old.path.parent.exists()


# -- the store -------------------------------------------------------------------------------------------


def test_store_upload_is_content_addressed_per_session(tmp_path):
    root, session = tmp_path / "uploads", uploads.new_session_id()
    a = uploads.store_upload(root, session, "../../model.pt", b"one")
    again = uploads.store_upload(root, session, "model.pt", b"one")
    b = uploads.store_upload(root, session, "model.pt", b"two")
    assert a == again and a.path.read_bytes() == b"one" and b.path.read_bytes() == b"two"
    assert a.path != b.path and a.name == b.name == "model.pt" and a.digest != b.digest
    assert a.digest[:16] in str(a.path) and a.path.parent.parent == root / session
    other = uploads.store_upload(root, uploads.new_session_id(), "model.pt", b"one")
    assert other.path != a.path and a.path.read_bytes() == b"one"
    assert a.message(FullSpectrumError(f"{a.path}: not a checkpoint\nmore")) == "model.pt: not a checkpoint"
    a.remove()
    assert not a.path.exists() and not a.path.parent.exists() and b.path.exists()
    with pytest.raises(FullSpectrumError, match="session"):
        uploads.store_upload(root, "../x", "model.pt", b"one")


def test_clean_uploads_removes_only_old_files_and_empty_folders(tmp_path):
    root = tmp_path / "uploads"
    old = uploads.store_upload(root, uploads.new_session_id(), "old.pt", b"o")
    kept = uploads.store_upload(root, uploads.new_session_id(), "new.pt", b"n")
    os.utime(old.path, (1, 1))
    assert uploads.clean_uploads(root) == [old.path]
    assert kept.path.exists() and not old.path.parent.parent.exists()
    assert uploads.clean_uploads(tmp_path / "missing") == []


def test_claim_folder_never_reuses_a_folder(tmp_path):
    first = uploads.claim_folder(tmp_path, "upload_model")
    second = uploads.claim_folder(tmp_path, "upload_model")
    assert first == tmp_path / "upload_model" and second == tmp_path / "upload_model_2"
    assert first.is_dir() and second.is_dir()
