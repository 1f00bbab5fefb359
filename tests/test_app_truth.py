"""The app tells the truth by default: cross-run views per dataset and model, by requested density,
without runs that ended at chance (counted), and flags a run at chance where it is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_fixtures import make_run

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory) -> Path:
    """Two datasets, densities 0.05 and 0.0500079 (a static run's exact density), one run at chance."""
    root = tmp_path_factory.mktemp("truth") / "runs"
    for index in range(4):
        make_run(root / f"digits_{index}", density=0.05 if index % 2 else 0.0500079, seed=index,
                 accuracy=0.9 + 0.01 * index)  # fmt: skip
        make_run(root / f"mnist1d_{index}", density=0.1, seed=10 + index, accuracy=0.4 + 0.05 * index,
                 data="mnist1d")  # fmt: skip
    make_run(root / "digits_chance", density=0.05, seed=20, accuracy=0.1)
    return root


@pytest.fixture
def truth_env(mixed_root, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(mixed_root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    return mixed_root


def _app(page: str, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _titles(at: AppTest) -> list[str]:
    return [
        json.loads(chart.proto.spec)["layout"].get("title", {}).get("text", "")
        for chart in at.get("plotly_chart")
    ]


def test_correlation_is_per_dataset_by_requested_density_without_chance(truth_env):
    at = _app("trajectories", selected_run=str(truth_env / "digits_0"))
    titles = _titles(at)
    assert any(t.startswith("digits · mlp") for t in titles) and any(
        t.startswith("mnist1d · mlp") for t in titles
    )
    assert [tab.label for tab in at.tabs] == ["digits · mlp", "mnist1d · mlp"]
    warning = " ".join(str(w.value) for w in at.warning)
    assert "1 run that ended at chance left out (digits_chance)" in warning
    within = [frame.value for frame in at.dataframe if "requested density" in frame.value.columns
              or "density" in frame.value.columns]  # fmt: skip
    digits = next(
        frame for frame in within if "runs" in frame.columns and len(frame) and frame["runs"].sum() == 4
    )
    assert list(digits["density"]) == [0.05]  # 0.0500079 merged with 0.05
    readings = [str(m.value) for m in at.markdown if "final distance vs accuracy" in str(m.value)]
    assert readings and all("density alone" in text for text in readings)

    next(box for box in at.checkbox if "chance" in box.label).check().run()
    assert not any("at chance left out" in str(w.value) for w in at.warning)


def test_live_training_defaults_are_the_command_lines(truth_env, monkeypatch):
    """The form's first submit asks for exactly what `fullspectrum train` does without options: the
    dataset's preset epochs (left to the command, which writes them into the run's config)."""
    from fullspectrum.runs import jobs
    from fullspectrum.training import TrainConfig

    started = {}
    monkeypatch.setattr(jobs, "start_training", lambda options, run_dir: started.update(options))
    at = _app("live_training")
    at.button[0].click().run()  # the form's submit button, nothing changed
    assert not at.exception
    default = TrainConfig()
    assert (started["model"], started["data"], started["method"], started["density"]) == (
        default.model, default.data, default.method, default.density,
    )  # fmt: skip
    assert started["epochs"] is None and started["delta_t"] is None and started["snapshot_every"] is None
    assert started["seed"] == default.seed


def test_a_run_that_ended_at_chance_says_so(truth_env):
    at = _app("live_training", live_run=str(truth_env / "digits_chance"))
    assert any("ended at chance" in str(e.value) and "0.100" in str(e.value) for e in at.error)
    at = _app("live_training", live_run=str(truth_env / "digits_0"))
    assert not any("ended at chance" in str(e.value) for e in at.error)
    assert any("test accuracy 0.9000" in str(s.value) for s in at.success)
    at = _app("runs", selected_run=str(truth_env / "digits_chance"))
    assert any("ended at chance" in str(e.value) for e in at.error)
    assert any("1 run ended at chance" in str(w.value) for w in at.warning)
    table = at.dataframe[0].value
    assert table.loc[table["at_chance"], "run"].tolist() == ["digits_chance"]
