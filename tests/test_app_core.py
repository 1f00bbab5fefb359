"""App core: Runs, Trajectories and Live training pages under AppTest, their chart builders,
the job processes, the ``ingest`` and ``app`` commands."""

from __future__ import annotations

import base64
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from analysis.correlation import distance_accuracy_study
from app import cache
from app.charts.runs import evals_figure, overview_figure
from app.charts.trajectories import (
    AXIS_TITLES,
    HIGHLIGHT_NAME,
    NETWORK_NAME,
    correlation_figure,
    metrics_figure,
    nearest_step,
    trajectory_figure,
)
from fullspectrum.cli import main as cli_main
from fullspectrum.cli.app import app_script, server_script, streamlit_command
from fullspectrum.runs import RunStore, jobs
from fullspectrum.runs.ingest import ingest_checkpoint
from fullspectrum.spectrum.network import analyze
from tests.app_fixtures import make_corrupt_run, make_run, make_runs

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("app_runs") / "runs"
    make_runs(root)
    make_corrupt_run(root / "zz_broken")
    return root


@pytest.fixture
def app_env(run_root, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(run_root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    return run_root


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


def _decode(value):
    """Plotly >= 6 sends numeric arrays as ``{"dtype", "bdata"}`` (base64); turn them back into lists."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            return array.reshape(value["shape"]).tolist() if "shape" in value else array.tolist()
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _figure(at: AppTest, index: int) -> dict:
    return _decode(json.loads(at.get("plotly_chart")[index].proto.spec))


def _texts(elements) -> list[str]:
    return [str(element.value) for element in elements]


# -- Runs page -----------------------------------------------------------------------------------------


def test_runs_page_lists_every_run_and_filters(app_env):
    at = _app()
    table = at.dataframe[0].value
    assert len(table) == 7  # six runs and the corrupt one
    assert {"kind", "model", "data", "method", "density", "seed", "status", "final_accuracy", "steps"} <= set(
        table.columns
    )
    assert "7 of 7 runs" in _texts(at.caption)
    method = next(w for w in at.multiselect if w.label == "method")
    method.set_value(["rigl"]).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 3
    assert set(at.dataframe[0].value["method"]) == {"rigl"}
    assert "3 of 7 runs" in _texts(at.caption)


def test_runs_page_reports_a_corrupt_run_as_an_error(app_env):
    at = _app()
    errors = _texts(at.error)
    assert any("zz_broken" in text and "corrupt" in text for text in errors)
    statuses = at.dataframe[0].value["status"].tolist()
    assert statuses.count("corrupt") == 1 and statuses.count("finished") == 6


def test_runs_page_details_follow_the_selected_run_and_offer_csv(app_env):
    at = _app(selected_run=str(app_env / "run_3"))
    assert any("run_3" in str(h.value) for h in at.subheader)
    downloads = at.get("download_button")
    assert len(downloads) == 4  # layers, evals, events, population
    assert len(at.get("plotly_chart")) == 2  # overview + this run's evaluations
    at.sidebar.selectbox[0].set_value(str(app_env / "run_1")).run()
    assert any("run_1" in str(h.value) for h in at.subheader)


def test_corrupt_selected_run_shows_an_error_on_every_page(app_env):
    broken = str(app_env / "zz_broken")
    for page in (None, "trajectories"):
        at = _app(page, selected_run=broken)
        assert any("cannot be read" in text for text in _texts(at.error)), page


def _add_folder(at: AppTest, folder: str) -> AppTest:
    at.text_input(key="_add_root").set_value(folder)
    at.button(key="_add_root_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_add_a_folder_only_under_the_workspace_or_the_run_folders(app_env, tmp_path, monkeypatch):
    monkeypatch.delenv("FULLSPECTRUM_ANY_FOLDER", raising=False)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "workspace" / "mine").mkdir(parents=True)
    (tmp_path / "workspace" / "link").symlink_to("/etc")
    at = _app()
    for folder in (
        "/",
        "/etc",
        "/proc/self",
        str(tmp_path / "elsewhere"),
        str(tmp_path / "workspace" / "link"),
    ):
        _add_folder(at, folder)
        errors = [text for text in _texts(at.error) if not text.startswith("Corrupt run zz_broken")]
        assert len(errors) == 1 and errors[0].startswith(folder) and "--allow-any-folder" in errors[0], errors
        assert folder not in at.session_state["run_roots"]
    for folder in (str(app_env / "run_0"), str(tmp_path / "workspace" / "mine")):
        _add_folder(at, folder)
        assert folder in at.session_state["run_roots"]
        assert not [text for text in _texts(at.error) if not text.startswith("Corrupt run zz_broken")]
    monkeypatch.setenv("FULLSPECTRUM_ANY_FOLDER", "1")  # fullspectrum app --allow-any-folder
    at = _add_folder(_app(), str(tmp_path / "elsewhere"))
    assert str(tmp_path / "elsewhere") in at.session_state["run_roots"]


def test_empty_run_store_shows_the_empty_state(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(tmp_path / "empty"))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    expected = {
        None: "No runs yet",
        "trajectories": "No runs to show",
        "live_training": "No training job yet",
    }
    for page, text in expected.items():
        at = _app(page)
        assert any(text in info for info in _texts(at.info)), page
        assert not at.error


# -- Trajectories page ---------------------------------------------------------------------------------


def test_trajectories_widgets_change_the_chart(app_env):
    at = _app("trajectories", selected_run=str(app_env / "run_0"))
    figure = _figure(at, 0)
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["fc1", "fc2", "fc3", NETWORK_NAME, HIGHLIGHT_NAME]
    highlight = figure["data"][-1]
    assert set(highlight["customdata"]) == {30}  # the slider starts at the last step

    at.select_slider[0].set_value(10).run()
    highlight = _figure(at, 0)["data"][-1]
    assert set(highlight["customdata"]) == {10}
    assert "marker at step 10" in _figure(at, 0)["layout"]["title"]["text"]

    at.multiselect[0].set_value(["fc2"]).run()
    assert [trace["name"] for trace in _figure(at, 0)["data"]] == ["fc2", NETWORK_NAME, HIGHLIGHT_NAME]
    at.checkbox[0].uncheck().run()
    assert [trace["name"] for trace in _figure(at, 0)["data"]] == ["fc2", HIGHLIGHT_NAME]


def test_trajectories_correlation_across_runs(app_env):
    at = _app("trajectories", selected_run=str(app_env / "run_0"))
    correlation = _figure(at, 2)
    assert len(correlation["data"]) == 4  # two densities, in both panels
    assert "ρ" in correlation["layout"]["annotations"][0]["text"]
    within = at.dataframe[-1].value
    assert sorted(within["density"]) == [0.05, 0.2]
    runs = next(w for w in at.multiselect if w.label == "Runs")
    runs.set_value(runs.value[:2]).run()
    assert any("at least three" in text for text in _texts(at.info))


# -- Live training page --------------------------------------------------------------------------------


def test_live_training_start_watch_and_stop(app_env, tmp_path, monkeypatch):
    started = {}

    def fake_start(options, run_dir):  # a live run without training: created, heartbeat fresh, not finished
        started.update(options, run_dir=Path(run_dir))
        make_run(Path(run_dir), density=options["density"], seed=0, accuracy=None, finish=False)

    monkeypatch.setattr(jobs, "start_training", fake_start)
    at = _app("live_training")
    labels = {w.label for w in [*at.selectbox, *at.number_input]}
    assert {"Model", "Data", "Method", "Epochs", "Seed"} <= labels
    assert any(label.startswith("Density") for label in labels)
    assert any(label.startswith("ΔT") for label in labels)
    next(w for w in at.selectbox if w.label == "Method").set_value("rigl")
    next(w for w in at.number_input if w.label == "Epochs").set_value(3)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    assert started["method"] == "rigl" and started["epochs"] == 3 and started["delta_t"] is None
    assert started["run_dir"].parent == tmp_path / "workspace"
    assert len(at.get("plotly_chart")) == 2  # 3-D trajectories and the metrics, from the store
    assert at.get("progress")[0].proto.text == "running · step 30 of 30"
    stop = next(b for b in at.button if b.label == "Stop")
    stop.click().run()
    assert any("No live job" in text for text in _texts(at.warning))  # no process was started


def test_live_training_offers_resume_for_an_interrupted_run(app_env, tmp_path, monkeypatch):
    run_dir = tmp_path / "workspace" / "stopped"
    make_run(run_dir, density=0.1, seed=0, accuracy=None, finish=False)
    store = RunStore.open(run_dir, readonly=False)
    store.finish(status="interrupted")
    resumed = []
    monkeypatch.setattr(jobs, "resume_training", lambda path: resumed.append(path))
    at = _app("live_training", live_run=str(run_dir))
    assert at.get("progress")[0].proto.text.startswith("interrupted · step 30")
    assert not [b for b in at.button if b.label == "Stop"]
    next(b for b in at.button if b.label == "Resume").click().run()
    assert resumed == [str(run_dir)]


# -- chart builders ------------------------------------------------------------------------------------


def _layers_frame() -> pd.DataFrame:
    rows = []
    for layer in ("a", "b"):
        for step in (0, 5, 10):
            rows.append({"step": step, "layer": layer, "delta_r": step + 1.0, "lambda_w": 2.0 * step,
                         "delta_r_imdb": 1.0, "moving_distance": step / 10, "exploration_rate": 0.1})  # fmt: skip
    rows[4]["delta_r_imdb"] = math.nan  # layer b, step 5
    return pd.DataFrame(rows)


def test_trajectory_figure_traces_axes_highlight_and_left_out_points():
    layers = _layers_frame()
    network = layers.groupby("step", as_index=False)[["delta_r", "lambda_w", "delta_r_imdb"]].mean()
    figure = trajectory_figure(layers, step=7, network=network)
    assert [t.name for t in figure.data] == ["a", "b", NETWORK_NAME, HIGHLIGHT_NAME]
    assert figure.layout.scene.xaxis.title.text == AXIS_TITLES["delta_r"]
    assert figure.layout.scene.zaxis.title.text == AXIS_TITLES["delta_r_imdb"]
    assert len(figure.data[1].x) == 2  # b's NaN point is not drawn
    assert figure.layout.meta["left_out"] == 1 and "1 point with a NaN coordinate" in figure.layout.title.text
    highlight = figure.data[-1]
    assert list(highlight.customdata) == [5, 5]  # a and the network at step 5; b's point there is NaN
    assert list(highlight.text) == ["a", NETWORK_NAME]
    assert list(figure.data[0].marker.color) == [0, 5, 10]  # markers coloured by step
    assert trajectory_figure(layers, selected_layers=["a"]).data[-1].name == "a"  # no step: no highlight


def test_nearest_step():
    assert nearest_step([0, 5, 10], 7) == 5
    assert nearest_step([5, 10], 2) == 5
    assert nearest_step([0, 5], None) == 5
    assert nearest_step([], 3) is None


def test_metrics_figure_rows_and_step_line():
    layers = _layers_frame()
    evals = pd.DataFrame({"step": [0, 10, 10], "split": ["val", "val", "test"], "loss": [2.0, 1.0, 1.1],
                          "accuracy": [0.1, 0.8, 0.7], "exploration_rate": [0.1, 0.3, 0.3]})  # fmt: skip
    figure = metrics_figure(layers, evals, step=5)
    titles = [a.text for a in figure.layout.annotations]
    assert titles == ["ℓ2-moving distance", "exploration rate", "accuracy"]
    names = [t.name for t in figure.data]
    assert names == ["a", "b", "exploration rate", "val accuracy", "test accuracy"]
    assert len(figure.data[2].x) == 2  # exploration rate once per step
    assert [s.x0 for s in figure.layout.shapes] == [5, 5, 5]


def test_correlation_figure_reports_both_correlations():
    points = pd.DataFrame(
        {
            "label": list("abcdef"),
            "method": "itop",
            "density": [0.1] * 3 + [0.2] * 3,
            "final_distance": [1, 2, 3, 4, 5, 6],
            "final_accuracy": [0.1, 0.2, 0.3, 0.5, 0.6, 0.7],
        }
    )
    study = distance_accuracy_study(points.assign(final_accuracy=[*points["final_accuracy"][:5], math.nan]))
    figure = correlation_figure(study)
    assert len(figure.data) == 4
    assert figure.data[0].name == "density 0.1" and not figure.data[1].showlegend
    left, right = (a.text for a in figure.layout.annotations[:2])
    assert "ρ +0.9" in left and "n=5" in left and "density vs accuracy" in right
    assert figure.layout.xaxis.title.text.startswith("final ℓ2-moving distance")
    assert "1 run without a final accuracy left out" in figure.layout.title.text


def test_runs_charts():
    evals = pd.DataFrame({"step": [0, 5, 5], "split": ["val", "val", "test"], "loss": [2.0, 1.0, 1.2],
                          "accuracy": [0.1, 0.6, 0.5], "exploration_rate": [0.1, 0.2, 0.2]})  # fmt: skip
    figure = evals_figure(evals)
    assert [t.name for t in figure.data] == ["val", "val", "test", "test"]
    assert figure.layout.yaxis.title.text == "accuracy"
    runs = pd.DataFrame({"path": ["/r/x", "/r/y", "/r/z", "/r/w"], "method": ["itop", "rigl", "itop", "itop"],
                         "data": ["digits", "digits", "digits", "mnist1d"],
                         "density": [0.05, 0.1, 0.2, 0.1], "final_accuracy": [0.5, 0.6, None, 0.4]})  # fmt: skip
    overview = overview_figure(runs)
    assert [t.name for t in overview.data] == ["digits · itop", "digits · rigl", "mnist1d · itop"]
    assert "1 run without a final accuracy" in overview.layout.title.text


# -- jobs, ingest, app command -------------------------------------------------------------------------


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 10))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    for key in ("0.weight", "2.weight"):
        state[key] = state[key] * (torch.rand_like(state[key]) < 0.4)
    torch.save(state, path)
    return path


def test_ingest_writes_an_analysis_run_equal_to_analyze(tmp_path):
    source = _checkpoint(tmp_path / "model.pt")
    store = ingest_checkpoint(source, tmp_path / "run")
    reader = RunStore.open(tmp_path / "run")
    assert reader.status == "finished" and reader.info["kind"] == "analysis"
    layers = reader.layers()
    expected = analyze(source)
    assert list(layers["step"]) == [0, 0] and list(layers["layer"]) == list(expected["layer"])
    np.testing.assert_allclose(layers["delta_r"], expected["delta_r"])
    assert (layers["moving_distance"] == 0).all()
    masks = reader.load_masks(0)
    assert set(masks) == {"0.weight", "2.weight"}
    weights = torch.load(source, weights_only=True)
    assert torch.equal(masks["0.weight"], weights["0.weight"] != 0)
    assert (store.path / "source.pt").read_bytes() == source.read_bytes()
    assert reader.info["config"]["density"] == pytest.approx(expected["edges"].sum() / (20 * 16 + 16 * 10))


def test_ingest_cli_bad_file_is_exit_2_and_writes_no_run(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli_main(["ingest", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.slow
def test_ingest_job_runs_in_a_job_process_and_a_failed_one_reports_its_error(tmp_path):
    good = jobs.start_ingest(_checkpoint(tmp_path / "model.pt"), tmp_path / "good")
    assert good.pid is not None
    bad_file = tmp_path / "bad.pt"
    bad_file.write_bytes(b"garbage")
    jobs.start_ingest(bad_file, tmp_path / "bad")
    deadline = time.monotonic() + 60
    while any(jobs.job_state(tmp_path / n).active for n in ("good", "bad")) and time.monotonic() < deadline:
        time.sleep(0.2)
    good, bad = jobs.job_state(tmp_path / "good"), jobs.job_state(tmp_path / "bad")
    assert good.status == "finished" and good.kind == "analysis" and good.fraction == 1.0 and not good.alive
    assert bad.status == "failed" and "bad.pt" in bad.error
    assert jobs.stop(tmp_path / "good") is False  # nothing left to stop
    assert jobs.find_running(tmp_path) == []


def test_job_state_without_a_job_process_and_bad_commands(tmp_path):
    assert jobs.job_state(tmp_path).status == "unknown"
    assert jobs.stop(tmp_path) is False
    with pytest.raises(ValueError, match="unknown job command 'rm'"):
        jobs.job_command("rm", [])
    live = make_run(tmp_path / "live", density=0.1, seed=0, accuracy=None, finish=False)
    (live / jobs.JOB_FILE).write_text(json.dumps({"pid": 999_999_999}))  # no such process
    assert jobs.job_state(live).status == "interrupted"  # heartbeat fresh, but its job process is gone
    assert jobs.expected_steps({"kind": "train", "config": {"epochs": 3, "eval_every": 21}}) == 63
    assert jobs.expected_steps({"kind": "train", "config": {}, "final": {"steps": 40}}) == 40
    assert jobs.expected_steps({"kind": "train", "config": {"epochs": 3}, "total_steps": 50}) == 50


@pytest.mark.slow
def test_training_job_stops_resumable_and_resumes_to_the_end(tmp_path):
    run_dir = tmp_path / "train"
    # long enough (210 steps) that the stop lands mid-run, even with rows a job start behind the loop
    options = {"model": "mlp", "data": "digits", "epochs": 10, "snapshot_every": 4, "device": "cpu"}
    jobs.start_training(options, run_dir)
    deadline = time.monotonic() + 120
    while (jobs.job_state(run_dir).step or 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [s.run_dir for s in jobs.find_running(tmp_path)] == [run_dir]
    assert jobs.stop(run_dir)
    while jobs.job_state(run_dir).alive and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped = jobs.job_state(run_dir)
    assert stopped.status == "interrupted" and stopped.step < stopped.total_steps
    assert "--resume" in jobs.read_log(run_dir)
    jobs.resume_training(run_dir)
    while jobs.job_state(run_dir).active and time.monotonic() < deadline:
        time.sleep(0.3)
    done = jobs.job_state(run_dir)
    assert done.status == "finished" and done.step == done.total_steps
    steps = RunStore.open(run_dir).layers()["step"]
    assert not steps.duplicated().groupby(steps).any().any() or steps.is_monotonic_increasing


def test_app_command_line(tmp_path):
    script = app_script()
    assert script.name == "streamlit_app.py" and script.is_file()
    assert server_script() == script.parent / "server.py"
    command = streamlit_command(server_script(), "127.0.0.1", 8765, ("localhost", "lab.example"))
    assert command[command.index("run") + 1] == str(server_script())
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.headless") + 1] == "true"
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"
    assert command[command.index("--server.enableXsrfProtection") + 1] == "true"
    assert int(command[command.index("--server.maxUploadSize") + 1]) == 200
    assert command[command.index("--runner.postScriptGC") + 1] == "false"  # the slider's reaction
    assert command[command.index("--server.fileWatcherType") + 1] == "none"
    assert [command[i + 1] for i, part in enumerate(command) if part == "--server.allowedHosts"] == [
        "localhost",
        "lab.example",
    ]
    assert cli_main(["app", "--port", "0"]) == 2
    assert cli_main(["app", "--runs", str(tmp_path / "missing")]) == 2
    for bad in ("lab.example:8501", "http://lab.example", "a/b", ""):
        assert cli_main(["app", "--allow-host", bad]) == 2, bad


def test_a_run_folder_the_app_cannot_read_lists_like_a_missing_one(tmp_path, monkeypatch):
    readable, unreadable = tmp_path / "ok", tmp_path / "locked"
    make_run(readable / "r", density=0.1, seed=0, accuracy=0.9)
    unreadable.mkdir()
    real = cache.list_runs

    def list_runs(root):
        if Path(root) == unreadable:
            raise cache.RunError(f"{root}: cannot be read (Permission denied)")
        return real(root)

    monkeypatch.setattr(cache, "list_runs", list_runs)
    cache.run_table.clear()
    frame, missing = cache.run_table((str(readable), str(unreadable)))
    assert missing == (str(unreadable),)
    assert list(frame["root"]) == [str(readable)]
