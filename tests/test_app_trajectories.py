"""Trajectories: the camera survives the step slider (uirevision), the step markers take their layer's
colour, a Play control (off by default: the browser then re-receives no animation frames per step)
moves them in the browser, and a single-snapshot run says why there is no trajectory instead of drawing
empty charts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from app.charts.trajectories import (
    HIGHLIGHT_NAME,
    metrics_base,
    place_marker,
    trajectory_base,
    trajectory_figure,
    with_step_line,
)
from fullspectrum.runs import RunStore
from fullspectrum.spectrum import layer_spectrum
from tests.app_fixtures import make_run

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


def _page(root: Path, run: Path, monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["selected_run"] = str(run)
    at.run()
    at.switch_page("app_pages/trajectories.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _assert_markers_by_layer_and_camera_kept(before: dict, after: dict, run: Path) -> None:
    assert before["layout"]["uirevision"] == after["layout"]["uirevision"] == str(run)
    assert after["layout"]["scene"]["uirevision"] == str(run)
    markers = next(trace for trace in after["data"] if trace["name"] == HIGHLIGHT_NAME)
    lines = {
        trace["name"]: trace["line"]["color"] for trace in after["data"] if trace["name"] != HIGHLIGHT_NAME
    }
    assert markers["marker"]["color"] == [lines[name] for name in markers["text"]]
    assert len(set(markers["marker"]["color"])) == len(markers["text"])  # one colour per layer


def test_by_default_a_step_sends_the_traces_and_markers_without_animation(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs" / "r", density=0.2, seed=0, accuracy=0.9)
    at = _page(tmp_path / "runs", run, monkeypatch, tmp_path)
    assert at.toggle[0].value is False
    before = json.loads(at.get("plotly_chart")[0].proto.spec)
    at.select_slider[0].set_value(10).run()
    after = json.loads(at.get("plotly_chart")[0].proto.spec)
    _assert_markers_by_layer_and_camera_kept(before, after, run)
    assert "marker at step 10" in after["layout"]["title"]["text"]
    for figure in (before, after):
        assert not figure.get("frames")
        assert "updatemenus" not in figure["layout"] and "sliders" not in figure["layout"]


def test_markers_by_layer_play_control_and_a_camera_that_stays(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs" / "r", density=0.2, seed=0, accuracy=0.9)
    at = _page(tmp_path / "runs", run, monkeypatch, tmp_path)
    at.toggle[0].set_value(True).run()
    before = json.loads(at.get("plotly_chart")[0].proto.spec)
    at.select_slider[0].set_value(10).run()
    after = json.loads(at.get("plotly_chart")[0].proto.spec)
    _assert_markers_by_layer_and_camera_kept(before, after, run)
    buttons = after["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["▶ Play", "❚❚ Pause"]
    assert [frame["name"] for frame in after["frames"]] == ["0", "10", "20", "30"]
    assert after["layout"]["sliders"][0]["active"] == 1  # the slider's step


def test_a_single_snapshot_run_explains_itself(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs" / "one", density=0.2, seed=0, accuracy=0.9, steps=(0,))
    at = _page(tmp_path / "runs", run, monkeypatch, tmp_path)
    assert any("single snapshot" in str(info.value) for info in at.info)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert not any(
        "Full-spectrum trajectories" in c["layout"].get("title", {}).get("text", "") for c in charts
    )
    assert len(at.dataframe[0].value) == len(RunStore.open(run).layers())


def test_without_animation_the_figure_has_no_frames():
    frame = pd.DataFrame({"step": [0, 1, 0, 1], "layer": ["a", "a", "b", "b"], "delta_r": [1.0, 2, 3, 4],
                          "lambda_w": [0.0, 1, 0, 1], "delta_r_imdb": [1.0, 1, 1, 1]})  # fmt: skip
    assert not trajectory_figure(frame, step=1).frames
    assert len(trajectory_figure(frame, step=1, animate=True).frames) == 2
    still = place_marker(trajectory_base(frame, animate=True), 1, play=False)
    assert not still.frames and not still.layout.updatemenus and not still.layout.sliders
    assert still.data[-1].name == HIGHLIGHT_NAME


def test_the_metrics_datarevision_follows_the_data_not_the_step():
    """Plotly.react recomputes the traces only when ``datarevision`` changes: the step line leaves it,
    another choice of layers changes it."""
    frame = pd.DataFrame(
        {"step": [0, 1, 0, 1], "layer": ["a", "a", "b", "b"], "moving_distance": [0.0, 1, 0, 2]}
    )
    evals = pd.DataFrame({"step": [0, 1], "split": ["val", "val"], "accuracy": [0.1, 0.5],
                          "exploration_rate": [0.1, 0.2]})  # fmt: skip
    both = metrics_base(frame, evals)
    revisions = {with_step_line(both, step).layout.datarevision for step in (0, 1)}
    assert len(revisions) == 1 and None not in revisions
    assert metrics_base(frame, evals, selected_layers=["a"])["layout"]["datarevision"] not in revisions
    assert metrics_base(frame, evals)["layout"]["datarevision"] in revisions  # same data, same revision


def _transformer_run(path: Path) -> Path:
    """Two steps of a 3-block model with attention and MLP projections (LLaMA's parameter names)."""
    rng = np.random.default_rng(3)
    store = RunStore.create(path, kind="train", config={"model": "tiny-llama", "data": "digits"}, seed=0,
                            device="cpu")  # fmt: skip
    names = [f"model.layers.{block}.{projection}" for block in range(3)
             for projection in ("self_attn.q_proj", "mlp.down_proj")]  # fmt: skip
    for step in (0, 10):
        rows = []
        for name in names:
            mask = rng.random((12, 16)) < 0.5
            rows.append({"layer": name, **layer_spectrum(mask, None, name=name).as_dict(),
                         "moving_distance": float(step), "exploration_rate": 0.5})  # fmt: skip
        store.add_snapshot(
            step, rows, [{"split": "val", "loss": 1.0, "accuracy": 0.5, "exploration_rate": 0.5}]
        )
    store.finish(final={"steps": 10})
    return path


def test_a_run_of_many_blocks_filters_its_layers_by_block_and_projection(tmp_path, monkeypatch):
    run = _transformer_run(tmp_path / "runs" / "llm")
    at = _page(tmp_path / "runs", run, monkeypatch, tmp_path)
    labels = [widget.label for widget in at.multiselect]
    assert labels[:3] == ["Blocks", "Projections", "Layers"]
    assert at.multiselect[1].options == ["q_proj", "down_proj"]
    assert len(at.multiselect[2].options) == 6
    at.multiselect[1].set_value(["down_proj"]).run()
    assert not at.exception, [e.value for e in at.exception]
    down = [f"model.layers.{block}.mlp.down_proj" for block in range(3)]
    assert at.multiselect[2].options == down and at.multiselect[2].value == down
    assert any("3 of 6 layers (3 blocks × 2 projections)" in c.value for c in at.caption)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    drawn = {trace["name"] for trace in figure["data"]} - {HIGHLIGHT_NAME}
    assert set(down) <= drawn and not any("q_proj" in name for name in drawn)
