"""MGE24's predictor study: cross-validated R² and ρ per feature set, against the density baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import predictors
from analysis.predictors import feature_columns, predictor_studies, predictor_study
from fullspectrum.errors import FullSpectrumError


def _table(n: int = 30, seed: int = 0, *, driver: str = "density") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.01, 0.2, n)
    noise_feature = rng.normal(size=n)
    topo = rng.uniform(0, 1, n)
    accuracy = 0.5 + 2 * density if driver == "density" else 0.5 + 0.4 * topo
    return pd.DataFrame(
        {
            "model": "mlp",
            "data": "digits",
            "accuracy": accuracy + rng.normal(scale=0.005, size=n),
            "density:fc1": density,
            "density:fc2": density * 1.5,
            "delta_r:fc1": noise_feature,
            "lambda_w:fc1": rng.normal(size=n),
            "topo:coreness": topo,
            "constant_feature": 1.0,
        }
    )


def test_density_driven_accuracy_is_not_beaten_and_the_verdict_says_so():
    study = predictor_study(_table(), bootstrap=500, trees=50)
    assert study.baseline.r2 > 0.9
    assert not any(s.beats_density for s in study.scores)
    assert "No feature set beats density" in study.verdict
    assert study.score("ramanujan").r2 < study.baseline.r2


def test_a_feature_that_carries_the_signal_beats_density():
    study = predictor_study(_table(driver="topo"), bootstrap=500, trees=50)
    topo = study.score("topometrics")
    assert topo.beats_density and topo.difference_ci[0] > 0
    assert "Beats density: topometrics" in study.verdict
    top = study.importances[study.importances.feature_set == "all"].sort_values("importance").iloc[-1]
    assert top.feature == "topo:coreness"


def test_feature_sets_take_their_prefixes_and_drop_constant_or_missing_columns():
    table = _table(n=8)
    table["density:dead"] = 0.3  # constant: carries nothing
    table.loc[0, "delta_r:fc1"] = np.nan  # missing in one run: dropped
    assert feature_columns(table, "density") == ["density:fc1", "density:fc2"]
    assert feature_columns(table, "ramanujan") == ["lambda_w:fc1"]
    assert feature_columns(table, "all") == ["density:fc1", "density:fc2", "lambda_w:fc1", "topo:coreness"]


def test_missing_feature_sets_are_reported_as_skipped():
    study = predictor_study(_table(n=12).drop(columns=["topo:coreness"]), bootstrap=100, trees=20)
    assert set(study.skipped) == {"topometrics", "full_spectrum", "effective_density"}
    assert {s.feature_set for s in study.scores} == {"density", "ramanujan", "all"}


def test_the_same_seed_gives_the_same_study_and_another_seed_other_folds():
    a = predictor_study(_table(n=12), bootstrap=200, trees=20, seed=3).table()
    b = predictor_study(_table(n=12), bootstrap=200, trees=20, seed=3).table()
    c = predictor_study(_table(n=12), bootstrap=200, trees=20, seed=4).table()
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_models_and_datasets_are_never_pooled():
    table = pd.concat(
        [_table(n=10), _table(n=10, seed=1).assign(data="mnist1d"), _table(n=3).assign(model="lenet5")]
    )
    with pytest.raises(FullSpectrumError, match="not pooled"):
        predictor_study(table)
    studies = predictor_studies(table, bootstrap=100, trees=20)
    assert set(studies) == {("mlp", "digits"), ("mlp", "mnist1d")}  # lenet5 has too few runs
    with pytest.raises(FullSpectrumError, match="at least"):
        predictor_study(_table(n=5))


def test_bootstrap_statistics_equal_their_one_resample_definitions():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=15), rng.normal(size=15)
    rows = rng.integers(0, 15, size=(40, 15))
    r2 = predictors._r2_rows(y, p, rows)
    rho = predictors._spearman_rows(y, p, rows)
    for k, row in enumerate(rows):
        ys, ps = y[row], p[row]
        expected = 1 - ((ys - ps) ** 2).sum() / ((ys - ys.mean()) ** 2).sum()
        assert r2[k] == pytest.approx(expected, rel=1e-12)
        assert rho[k] == pytest.approx(stats.spearmanr(ys, ps).statistic, rel=1e-12)


def test_one_density_only_the_baseline_predicts_the_training_mean():
    table = _table(n=10)
    table["density:fc1"] = table["density:fc2"] = 0.05
    study = predictor_study(table, bootstrap=100, trees=20)
    assert study.baseline.features == 0
    assert study.baseline.r2 < 0  # the fold means predict worse than the overall mean
