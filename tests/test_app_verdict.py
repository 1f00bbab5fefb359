"""Compare masks opens with a verdict: the predictors' answer, the accuracies of the runs that trained
these very masks (seeds and an interval), and a plain word when the two disagree."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_fixtures import make_run

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory) -> Path:
    """Mask 7 trained by three static runs (better), mask 8 by three (worse)."""
    root = tmp_path_factory.mktemp("verdict") / "runs"
    for seed in range(3):
        make_run(root / f"good_{seed}", density=0.3, seed=seed, accuracy=0.95 + 0.005 * seed, method="static",
                 mask_seed=7)  # fmt: skip
        make_run(root / f"poor_{seed}", density=0.3, seed=seed, accuracy=0.90 + 0.005 * seed, method="static",
                 mask_seed=8)  # fmt: skip
    return root


def test_verdict_cites_the_runs_that_trained_both_masks(trained_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(trained_root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["compare_a"] = {"kind": "run", "run": str(trained_root / "good_0"), "step": 0}
    at.session_state["compare_b"] = {"kind": "run", "run": str(trained_root / "poor_1"), "step": 0}
    at.run()
    at.switch_page("app_pages/compare_masks.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    boxes = " ".join(str(box.value) for box in [*at.info, *at.warning])
    assert "Measured A: 0.9550 (seeds 0, 1, 2: 0.9500, 0.9550, 0.9600; 95% CI" in boxes
    assert "3 runs that trained this very mask" in boxes and "Measured B: 0.9050" in boxes
    assert "Predicted:" in boxes
    table = next(frame.value for frame in at.dataframe if "predictor" in frame.value.columns)
    assert list(table["predictor"])[:3] == ["full-spectrum score", "Δr_imdb", "dead paths"]
    measured = table.iloc[-1]
    assert measured["favours"] == "A" and measured["A"] == pytest.approx(0.955)
    predicted = next(s for s in boxes.split("- ") if s.startswith("Predicted:"))
    if "A should train better" in predicted:
        assert "agrees" in boxes
    elif "B should train better" in predicted:
        assert "disagrees with the prediction: A trained better" in boxes
        assert at.warning  # a disagreement is a warning, not an info
    assert any("mean IoU is" in str(m.value) for m in at.markdown)
    assert any("What do these symbols mean?" in e.label for e in at.expander)
