"""Tests for analysis.width_limit: the G25 width-convergence study, its statistics and its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.width_limit import (
    CURVE_COLUMNS,
    VERDICT_COLUMNS,
    WidthLimitConfig,
    _verdicts,
    read_width_estimates,
    read_width_study,
    run_width_limit,
    t_interval,
    write_width_study,
)
from fullspectrum.errors import FullSpectrumError
from fullspectrum.fingerprints import width_convergence

T_975_DF2 = 0.95 / np.sqrt(2 * 0.975 * 0.025)  # Student t, 2 dof: t_p = (2p - 1)/sqrt(2p(1 - p)); 4.3027


def test_t_interval_against_hand_computed_values():
    mean, low, high = t_interval([1.0, 2.0, 3.0])  # sd 1, n 3
    half = T_975_DF2 / np.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-12)
    assert np.isnan(t_interval([5.0])[1])


def _curves(first: float, last: float) -> pd.DataFrame:
    rows = []
    for width, other, d in ((8, 16, first), (16, 32, (first + last) / 2), (32, 64, last)):
        rows.append(dict(generator="g", layer="w", kind="successive", width=width, other=other, distance=d,
                         density=0.1, other_density=0.1))  # fmt: skip
    return pd.DataFrame(rows)


def test_verdicts_say_plainly_when_a_curve_does_not_fall():
    config = WidthLimitConfig(generators=("random",), widths=(8, 16, 32, 64), K=4)
    rising = _verdicts(_curves(0.1, 0.2), config, {("g", "w"): [-0.1, -0.12, -0.08]})
    assert list(rising.columns) == list(VERDICT_COLUMNS)
    row = rising.iloc[0]
    assert not row.falls and not row.monotone
    assert row.verdict.startswith(
        "does NOT fall: successive distance 0.1000 at 8->16, 0.2000 at 32->64 (last/first 2.00)"
    )
    falling = _verdicts(_curves(0.2, 0.1), config, {("g", "w"): [0.1, 0.12, 0.08]}).iloc[0]
    assert falling.falls and falling.monotone
    assert falling.drop_mean == pytest.approx(0.1)
    assert falling.drop_low == pytest.approx(0.1 - T_975_DF2 * 0.02 / np.sqrt(3))
    assert "CI excludes 0" in falling.verdict and falling.ratio == 0.5 and not falling.flat
    unsure = _verdicts(_curves(0.2, 0.1), config, {("g", "w"): [0.1, -0.2, 0.3]}).iloc[0]
    assert "CI includes 0" in unsure.verdict
    flat = _verdicts(_curves(0.2, 0.18), config, {("g", "w"): [0.02, 0.02, 0.02]}).iloc[0]
    assert flat.falls and flat.flat and flat.verdict.startswith("is flat, does NOT fall appreciably")
    moving = _verdicts(
        _curves(0.2, 0.1).assign(other_density=[0.1, 0.1, 0.3]), config, {("g", "w"): [0.1] * 3}
    )
    assert "the layer density moves with width (0.100 at 8, 0.300 at 64)" in moving.iloc[0].verdict


def test_a_collapsed_layer_is_not_called_converged():
    config = WidthLimitConfig(generators=("random",), widths=(8, 16, 32, 64), K=4)
    curves = _curves(0.2, 0.0).assign(density=[0.1, 0.0, 0.0], other_density=[0.0, 0.0, 0.0])
    row = _verdicts(curves, config, {("g", "w"): [0.2, 0.2, 0.2]}).iloc[0]
    assert row.verdict.startswith("collapsed (no kept weight) at width 16, 32, 64")


def test_bad_configs_are_refused():
    with pytest.raises(FullSpectrumError, match="narrowest width 8"):
        WidthLimitConfig(widths=(8, 16), K=16)
    with pytest.raises(FullSpectrumError, match="ascending"):
        WidthLimitConfig(widths=(16, 8), K=4)
    with pytest.raises(FullSpectrumError, match="unknown|choose"):
        WidthLimitConfig(generators=("nope",), widths=(8, 16), K=4)


def test_the_study_runs_end_to_end_on_a_tiny_setting(tmp_path):
    config = WidthLimitConfig(
        generators=("random", "snip"), widths=(8, 16, 32), seeds=(0, 1), K=4, examples=20
    )
    calls = []
    result = run_width_limit(config, progress=lambda done, total, label: calls.append((done, total)))
    assert calls[-1] == (12, 12)  # 2 generators x 3 widths x 2 seeds
    curves = result.curves
    assert list(curves.columns) == list(CURVE_COLUMNS)
    layers = ("features.1.weight", "features.3.weight", "classifier.weight")
    assert len(curves) == 2 * len(layers) * 2 * 2  # generators x layers x kinds x (widths - 1)
    # the fingerprint distances are those of the fingerprints the result carries
    for generator in config.generators:
        wc = width_convergence(
            {n: {k: result.fingerprints[generator, n, k] for k in layers} for n in config.widths}
        )
        got = curves[(curves.generator == generator) & (curves.kind == "successive")]
        for layer in layers:
            rows = got[got.layer == layer].sort_values("width")
            np.testing.assert_allclose(rows.distance, wc.successive[layer], rtol=1e-12)
    # random keeps the density in every layer at every width
    random = curves[curves.generator == "random"]
    np.testing.assert_allclose(random.density, 0.05, atol=0.01)
    assert (curves.seed_low <= curves.seed_mean).all() and (curves.seed_mean <= curves.seed_high).all()
    assert len(result.verdicts) == 2 * len(layers)
    assert all(line.split(": ", 1)[1] for line in result.summary())
    paths = write_width_study(result, tmp_path, extra={"note": "tiny"})
    back = pd.read_csv(paths[0])
    assert list(back.columns) == list(CURVE_COLUMNS) and len(back) == len(curves)
    estimates = read_width_estimates(paths[2])
    assert set(estimates) == set(result.fingerprints)
    key = ("snip", 16, "features.3.weight")
    np.testing.assert_allclose(estimates[key], result.fingerprints[key], rtol=1e-6)
    record = json.loads(paths[3].read_text())
    assert record["config"]["seeds"] == [0, 1] and record["versions"]["torch"]
    assert record["extra"] == {"note": "tiny"} and record["seconds"]["total"] > 0


def test_fingerprints_kept_at_a_coarser_resolution_leave_the_distances_alone():
    base = dict(generators=("random",), widths=(8, 16), seeds=(0,), K=4, examples=20)
    fine = run_width_limit(WidthLimitConfig(**base))
    coarse = run_width_limit(WidthLimitConfig(**base, store_K=2))
    pd.testing.assert_frame_equal(fine.curves, coarse.curves)
    assert coarse.fingerprints["random", 16, "features.3.weight"].shape == (2, 2)
    assert fine.fingerprints["random", 16, "features.3.weight"].shape == (4, 4)
    with pytest.raises(FullSpectrumError, match="store_K"):
        WidthLimitConfig(**base, store_K=9)


def test_the_cached_study_is_whole_and_consistent():
    study = read_width_study(Path(__file__).resolve().parents[1] / "cached_runs" / "graphon" / "width")
    curves, verdicts, record = study["curves"], study["verdicts"], study["record"]
    config = record["config"]
    assert len(config["widths"]) >= 5 and config["widths"][0] == 64 and config["widths"][-1] == 2048
    assert len(config["generators"]) == 8 and len(config["seeds"]) >= 3
    assert list(curves.columns) == list(CURVE_COLUMNS) and list(verdicts.columns) == list(VERDICT_COLUMNS)
    assert len(curves) == 8 * 3 * 2 * (len(config["widths"]) - 1)
    assert (curves.distance >= 0).all()
    # the widest successive pair and the last to-widest pair are one and the same distance
    last = curves[curves.width == config["widths"][-2]].pivot_table(
        index=["generator", "layer"], columns="kind", values="distance"
    )
    np.testing.assert_allclose(last.successive, last.to_widest, rtol=1e-5)
    np.testing.assert_allclose(curves[curves.generator == "random"].density, config["density"], atol=1e-3)
    assert record["verdicts"] == [f"{r.generator} {r.layer}: {r.verdict}" for r in verdicts.itertuples()]
    keys = {
        (g, n, layer) for g in config["generators"] for n in config["widths"] for layer in set(curves.layer)
    }
    assert set(study["estimates"]) == keys
