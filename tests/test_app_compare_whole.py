"""Compare masks shows both masks' unrolled view (effective paths, topometrics) and NTK summaries."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.compare_views import layers_side_by_side
from analysis.mask_sources import snapshot_masks
from analysis.unrolled_view import unrolled_view

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
TRAIN = ROOT / "cached_runs" / "train"
A, B = TRAIN / "digits-mlp-itop-d0.05-s0", TRAIN / "digits-mlp-itop-d0.2-s0"


@pytest.mark.slow
def test_both_masks_effective_paths_topometrics_and_ntk_side_by_side(tmp_path, monkeypatch):
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(TRAIN))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["compare_a"] = {"kind": "run", "run": str(A), "step": 840}
    at.session_state["compare_b"] = {"kind": "run", "run": str(B), "step": 840}
    at.session_state["cmp_ntk"] = True
    at.run()
    at.switch_page("app_pages/compare_masks.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    frames = [frame.value for frame in at.dataframe]
    paths = next(f for f in frames if "effective A" in f.columns)
    views = [unrolled_view(snapshot_masks(run, 840).masks, snapshot_masks(run, 840).weights, "mlp", "digits")
             for run in (A, B)]  # fmt: skip
    expected = layers_side_by_side(views[0].layers, views[1].layers)
    assert paths["effective A"].tolist() == expected["effective A"].tolist()
    assert paths["effective B"].tolist() == expected["effective B"].tolist()
    topo = next(f for f in frames if "B − A" in f.columns).set_index("metric")
    assert topo.loc["edges", "A"] == views[0].topometrics["edges"]
    ntk = next(f for f in frames if "effective_rank" in f.columns)
    assert ntk["mask"].tolist() == ["A", "B"] and (ntk["lambda_max"] > 0).all()
