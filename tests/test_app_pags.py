"""PAGS lab flows: the evidence for base vs assembled beside the score, the sampling that just finished
is selected, "Train both" says when it reuses runs and shows their progress and accuracies, and a
population without a stored map gets a PCA map at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fullspectrum.runs import RunStore
from fullspectrum.runs.mask_files import mask_file, save_mask_file
from fullspectrum.sampling import ASSEMBLED, BASE, STORED_STEPS, regenerate_candidate
from fullspectrum.sampling.embedding import EMBEDDING_FILE
from tests.app_fixtures import make_static_run

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


@pytest.fixture(scope="module")
def pags_root(tmp_path_factory, tiny_pags_run) -> Path:
    """Two copies of a tiny PAGS run, and static runs that trained its base (better) and assembled masks."""
    root = tmp_path_factory.mktemp("pags_lab") / "runs"
    shutil.copytree(tiny_pags_run, root / "a_pags")
    shutil.copytree(tiny_pags_run, root / "b_pags")
    (root / "b_pags" / EMBEDDING_FILE).unlink()  # as if sampled before maps were stored
    # the tiny run replaced no layer; give its assembled snapshot candidate 0's masks so the two differ
    assembled = regenerate_candidate(root / "a_pags", 0).masks
    save_mask_file(mask_file(root / "a_pags", STORED_STEPS[ASSEMBLED]), assembled)
    store = RunStore.open(root / "a_pags")
    for seed in range(3):
        make_static_run(root / f"base_{seed}", store.load_masks(STORED_STEPS[BASE]), seed=seed,
                        accuracy=0.95 + 0.002 * seed)  # fmt: skip
        make_static_run(root / f"assembled_{seed}", store.load_masks(STORED_STEPS[ASSEMBLED]), seed=seed,
                        accuracy=0.90 + 0.002 * seed)  # fmt: skip
    return root


@pytest.fixture
def lab_env(pags_root, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(pags_root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    return pags_root


def _lab(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("app_pages/pags_lab.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _boxes(at: AppTest) -> str:
    return " ".join(str(box.value) for box in [*at.info, *at.warning, *at.caption])


def test_evidence_for_base_vs_assembled_sits_beside_the_score(lab_env):
    at = _lab(pags_run=str(lab_env / "a_pags"))
    boxes = _boxes(at)
    assert "A = assembled mask, B = base mask." in boxes
    assert "Measured A: 0.9020 (seeds 0, 1, 2" in boxes and "Measured B: 0.9520 (seeds 0, 1, 2" in boxes
    table = next(frame.value for frame in at.dataframe if "predictor" in frame.value.columns)
    assert table.iloc[-1]["favours"] == "B"  # the base mask trained better
    assert "full-spectrum score" in list(table["predictor"])


def test_a_population_without_a_stored_map_gets_pca_at_once(lab_env):
    at = _lab(pags_run=str(lab_env / "b_pags"))
    titles = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("PCA of the per-layer vectors" in spec and "PCA drawn by the app" in spec for spec in titles)


def test_the_sampling_that_just_finished_is_selected(lab_env):
    """The job of this session ended since the last script run: its run replaces the one picked before."""
    at = _lab(pags_run=str(lab_env / "a_pags"), pags_job=str(lab_env / "b_pags"), _pags_job_active=True)
    assert at.selectbox(key="pags_run").value == str(lab_env / "b_pags")
    assert any("finished" in str(m.value) for m in at.markdown)


def test_train_both_says_it_reuses_existing_runs(lab_env, monkeypatch):
    from fullspectrum.runs import jobs

    started = []
    monkeypatch.setattr(
        jobs, "start_training", lambda options, run_dir: started.append((options, Path(run_dir)))
    )
    at = _lab(pags_run=str(lab_env / "a_pags"))
    at.button(key="pags_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(started) == 2 and all(options["epochs"] is None for options, _ in started)  # the preset
    # one of the two folders now holds a finished run: the page says so, and trains only the other
    done = started[0][1]
    make_static_run(done, RunStore.open(lab_env / "a_pags").load_masks(1), seed=0, accuracy=0.93)
    started.clear()
    at.run()
    assert "reuses that run" in _boxes(at)
    table = next(frame.value for frame in at.dataframe if "test accuracy" in frame.value.columns)
    assert table["test accuracy"].dropna().tolist() == [0.93]
    at.button(key="pags_train").click().run()
    assert len(started) == 1 and started[0][1] != done


def test_progress_covers_the_map_phase(lab_env, monkeypatch):
    """After the last candidate the job maps the population: the bar says so instead of a finished-looking
    "20 of 20", and the saved population already shows (PCA at once)."""
    from fullspectrum.runs import jobs

    run = str(lab_env / "b_pags")  # population saved, no map yet
    state = jobs.JobState(Path(run), "running", 1, True, 1, None, "pags", None)
    monkeypatch.setattr(jobs, "job_state", lambda run_dir: state if str(run_dir) == run else jobs.JobState(
        Path(run_dir), "unknown", None, False, None, None, None, None))  # fmt: skip
    monkeypatch.setattr(
        jobs, "read_log", lambda run_dir, max_chars=4000: "candidates: 100%|####| 4/4 [00:01]"
    )
    at = _lab(pags_job=run, _pags_job_active=True)
    bars = [bar.proto.text for bar in at.get("progress")]
    assert any("candidates: 4 of 4 · mapping the population in 2-D" in text for text in bars)
    assert at.selectbox(key="pags_run").value in (run, str(lab_env / "a_pags"))
    assert any("PCA" in chart.proto.spec for chart in at.get("plotly_chart"))
