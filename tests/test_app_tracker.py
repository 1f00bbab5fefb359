"""Tracker habits: one metric across runs with smoothing, log axes and mean ± std per configuration,
parallel coordinates, and tag/rename/delete for the app's own runs only (``analysis.run_curves``,
``analysis.run_admin``, the Compare runs and Runs pages)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from analysis import run_admin
from analysis.run_curves import group_curves, smooth
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import RunStore
from tests.app_fixtures import make_run, make_runs

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


def test_smooth_is_tensorboards_debiased_ema():
    values = np.array([1.0, 3.0, np.nan, 2.0])
    weight = 0.6
    expected, last, seen = [], 0.0, 0
    for value in values:  # TensorBoard's loop, written out
        if np.isnan(value):
            expected.append(np.nan)
            continue
        last, seen = last * weight + (1 - weight) * value, seen + 1
        expected.append(last / (1 - weight**seen))
    np.testing.assert_allclose(smooth(values, weight), expected)
    np.testing.assert_allclose(smooth(values, 0.0), values)
    with pytest.raises(ValueError, match="must be in"):
        smooth(values, 1.0)


def test_group_curves_mean_and_spread_per_step():
    curves = pd.DataFrame({"run": ["a", "a", "b", "b", "c"], "group": ["g", "g", "g", "g", "h"],
                           "step": [0, 1, 0, 1, 0], "value": [1.0, 2.0, 3.0, 6.0, 5.0]})  # fmt: skip
    grouped = group_curves(curves).set_index(["group", "step"])
    assert grouped.loc[("g", 1), "mean"] == 4.0 and grouped.loc[("g", 1), "std"] == pytest.approx(np.sqrt(8))
    assert grouped.loc[("h", 0), "std"] == 0.0 and grouped.loc[("h", 0), "n"] == 1


@pytest.fixture
def tracker_env(tmp_path, monkeypatch) -> tuple[Path, Path]:
    root = tmp_path / "runs"
    make_runs(root)
    workspace = tmp_path / "workspace"
    make_run(workspace / "mine", density=0.1, seed=0, accuracy=0.7)
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(workspace))
    return root, workspace


def _page(page: str, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _spec(at: AppTest, index: int) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def test_compare_runs_overlays_smooths_groups_and_draws_parallel_coordinates(tracker_env):
    root, _ = tracker_env
    at = _page("compare_runs", selected_run=str(root / "run_0"))
    overlay = _spec(at, 0)
    assert len(overlay["data"]) == 7  # six runs and the workspace's own, one line each
    at.slider(key="cr_smooth").set_value(0.5).run()
    assert len(_spec(at, 0)["data"]) == 14  # the raw curve stays, faint, under each smoothed one
    at.checkbox(key="cr_logy").check().run()
    assert _spec(at, 0)["layout"]["yaxis"]["type"] == "log"
    at.multiselect(key="cr_group").set_value(["method"]).run()
    names = [t.get("name") for t in _spec(at, 0)["data"] if t.get("showlegend") is not False]
    assert names == ["method=itop (n=4)", "method=rigl (n=3)"]
    parallel = _spec(at, 1)
    assert parallel["data"][0]["type"] == "parcoords" and parallel["data"][0]["line"]["showscale"]
    labels = [d["label"] for d in parallel["data"][0]["dimensions"]]
    assert labels == ["density", "method", "final ℓ2-moving distance", "final test accuracy"]


def test_only_the_apps_own_runs_can_be_tagged_renamed_and_deleted(tracker_env):
    root, workspace = tracker_env
    mine = workspace / "mine"
    assert "read-only" in run_admin.refusal(root / "run_0", workspace)
    with pytest.raises(FullSpectrumError, match="read-only"):
        run_admin.delete(root / "run_0", workspace=workspace)
    assert run_admin.set_tags(mine, "best, sweep,best", workspace=workspace) == ["best", "sweep"]
    assert run_admin.rename(mine, "  my  favourite ", workspace=workspace) == "my favourite"
    info = RunStore.open(mine).info
    assert info["tags"] == ["best", "sweep"] and info["title"] == "my favourite"

    at = _page("runs", selected_run=str(root / "run_0"))
    assert any("read-only" in str(c.value) for c in at.caption)
    assert not [b for b in at.button if b.label == "Delete run"]
    at = _page("runs", selected_run=str(mine))
    assert any("Tags: `best` `sweep`" in str(m.value) for m in at.markdown)
    at.text_input(key=f"run_tags_{mine}").set_value("final").run()
    at.button(key="run_save").click().run()
    assert RunStore.open(mine).info["tags"] == ["final"]
    assert next(b for b in at.button if b.label == "Delete run").disabled
    at.checkbox(key=f"run_delete_sure_{mine}").check().run()
    at.button(key="run_delete").click().run()
    assert not mine.exists() and (root / "run_0").exists()
