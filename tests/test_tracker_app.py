"""A ``Tracker`` run in the app while its loop is still running: the *Live training* page watches
it, and the other pages open it (Streamlit's ``AppTest``; no app file knows about the tracker)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from fullspectrum.tracking import Tracker

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
pytestmark = pytest.mark.slow  # several script runs of the whole app


def _app(page: str | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(elements) -> list[str]:
    return [str(element.value) for element in elements]


@pytest.fixture
def live_tracker(tmp_path, monkeypatch):
    """A tracker mid-loop (heartbeat fresh, not finished) in the app's run folder."""
    root = tmp_path / "runs"
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(20, 16), act=nn.ReLU(), out=nn.Linear(16, 4)))
    masks = {
        name: torch.rand(p.shape) < 0.5 for name, p in model.named_parameters() if name.endswith("weight")
    }
    tracker = Tracker(
        model,
        root / "my_loop",
        masks=masks,
        every=5,
        config={"lr": 0.1},
        total_steps=40,
        spectra_worker=False,
    )
    for step in range(1, 11):
        with torch.no_grad():
            model.fc1.weight.mul_(0.9)
        tracker.step(step, loss=1.0 / step)
    tracker._rows.flush()
    yield tracker
    if not tracker._ended:
        tracker.finish()


def test_live_training_watches_a_running_tracker_run(live_tracker):
    at = _app("live_training")
    job = next(w for w in at.selectbox if w.label == "Job")
    assert job.value == str(live_tracker.path) and job.options == ["my_loop"]
    assert at.get("progress")[0].proto.text == "running · step 10 of 40"
    assert len(at.get("plotly_chart")) == 2  # 3-D trajectories and metrics of the snapshots so far
    assert not at.error
    live_tracker.finish(test_accuracy=0.5)
    at = _app("live_training", live_run=str(live_tracker.path))
    assert at.get("progress")[0].proto.text.startswith("finished")


@pytest.mark.parametrize("page", [None, "trajectories", "graph_inspector", "compare_masks"])
def test_every_run_page_opens_a_running_tracker_run(live_tracker, page):
    at = _app(page, selected_run=str(live_tracker.path))
    assert not at.error, _texts(at.error)
    if page is None:  # the Runs page lists it as running
        table = at.dataframe[0].value
        assert table["status"].tolist() == ["running"] and table["steps"].tolist() == [10]
    else:
        assert at.get("plotly_chart"), page
