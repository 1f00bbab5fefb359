"""analysis.correlation: FS23 Fig. 3's distance–accuracy correlation with MGE24's density controls."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analysis.correlation import (
    POINT_COLUMNS,
    correlate,
    cross_run_study,
    distance_accuracy_study,
    requested_density,
    run_points,
    study_reading,
)
from fullspectrum.errors import FullSpectrumError
from tests.app_fixtures import make_corrupt_run, make_run


def _ranks(values) -> np.ndarray:
    return pd.Series(values).rank().to_numpy()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=3, max_size=30))
@example(pairs=[(0.0, 0.0), (0.0, 1.0), (2.3638414499092714e-198, 0.0)])  # r = -0.5; corrcoef says -1
def test_correlate_matches_numpy_oracles(pairs):
    x, y = np.array(pairs).T
    result = correlate(x, y)
    assert result.n == len(pairs)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(result.pearson) and math.isnan(result.spearman)
        return
    assert result.pearson == pytest.approx(_exact_pearson(x, y), abs=1e-9)
    rank_x, rank_y = _ranks(x), _ranks(y)
    if np.ptp(rank_x) and np.ptp(rank_y):
        assert result.spearman == pytest.approx(_exact_pearson(rank_x, rank_y), abs=1e-9)


def _exact_pearson(x, y) -> float:
    """Pearson's r in exact rational arithmetic: right even where floats underflow (values near 1e-198,
    whose squares numpy's corrcoef flushes to zero)."""
    fx, fy = [Fraction(float(v)) for v in x], [Fraction(float(v)) for v in y]
    mx, my = sum(fx) / len(fx), sum(fy) / len(fy)
    cov = sum((a - mx) * (b - my) for a, b in zip(fx, fy))
    var_x, var_y = sum((a - mx) ** 2 for a in fx), sum((b - my) ** 2 for b in fy)
    return math.copysign(math.sqrt(cov * cov / (var_x * var_y)), cov)


def test_correlate_closed_forms_and_degenerate_inputs():
    x = np.arange(1.0, 8.0)
    assert correlate(x, 2 * x + 1).pearson == pytest.approx(1.0)
    cubic = correlate(x, x**3)
    assert cubic.spearman == pytest.approx(1.0) and cubic.pearson < 1.0
    assert correlate(x, -x).spearman == pytest.approx(-1.0)
    assert math.isnan(correlate([1, 2], [3, 4]).pearson)  # two points always lie on a line
    assert math.isnan(correlate(x, np.ones_like(x)).pearson)  # constant accuracy
    with_nan = correlate([1, 2, np.nan, 4, 5], [1, 2, 3, np.inf, 5])
    assert with_nan.n == 3 and with_nan.pearson == pytest.approx(1.0)


def test_study_separates_density_from_distance():
    """Simpson's setting: within each density, more distance = less accuracy; across densities
    both rise with density. The pooled correlation is positive; the controls show it is density."""
    rows = []
    for density, offset in ((0.05, 0.0), (0.1, 10.0), (0.2, 20.0)):
        for k in range(4):
            rows.append(
                {"density": density, "final_distance": offset + k, "final_accuracy": offset / 10 - 0.1 * k}
            )
    study = distance_accuracy_study(pd.DataFrame(rows))
    assert study.distance.pearson > 0.9 and study.density.pearson > 0.9
    assert list(study.within_density["pearson"]) == pytest.approx([-1.0, -1.0, -1.0])
    assert list(study.within_density["n"]) == [4, 4, 4]
    assert study.pooled_within.pearson == pytest.approx(-1.0)
    assert study.left_out == 0 and list(study.points.columns) == list(POINT_COLUMNS)


def test_study_leaves_out_runs_without_accuracy():
    points = pd.DataFrame({"density": [0.1, 0.1, 0.1, 0.1, None], "final_distance": [1, 2, 3, np.nan, 5],
                           "final_accuracy": [0.1, 0.2, 0.25, 0.4, 0.5]})  # fmt: skip
    study = distance_accuracy_study(points)
    assert study.left_out == 2 and len(study.points) == 3
    assert study.distance.n == 3
    assert study.density.n == 3 and math.isnan(study.density.pearson)  # one density: no baseline


def test_run_points_reads_final_distance_and_accuracy(tmp_path):
    good = make_run(tmp_path / "a", density=0.1, seed=3, accuracy=0.75, method="rigl")
    unfinished = make_run(tmp_path / "b", density=0.2, seed=4, accuracy=None, finish=False)
    broken = make_corrupt_run(tmp_path / "c")
    points = run_points([good, unfinished, broken])
    assert list(points.columns) == list(POINT_COLUMNS)
    from fullspectrum.runs import RunStore

    layers = RunStore.open(good).layers()
    last = layers[layers["step"] == layers["step"].max()]
    first = points.iloc[0]
    assert first["final_distance"] == pytest.approx(last["moving_distance"].mean())
    assert first["final_distance"] > 0
    assert (first["final_accuracy"], first["density"], first["method"], first["seed"]) == (
        0.75,
        0.1,
        "rigl",
        3,
    )
    assert math.isnan(points.iloc[1]["final_accuracy"]) and points.iloc[1]["final_distance"] > 0
    assert math.isnan(points.iloc[2]["final_distance"]) and points.iloc[2]["label"] == "c"
    assert distance_accuracy_study(points).left_out == 2


# -- truth by default: per dataset and model, requested density, chance, intervals --------------------


def _points(rows) -> pd.DataFrame:
    return pd.DataFrame(rows).assign(label=lambda f: [f"r{i}" for i in range(len(f))], method="itop")


def test_cross_run_study_never_pools_datasets():
    """Simpson's setting across datasets: within each the distance tracks accuracy (+1), pooled the
    high-accuracy dataset has the small distances, so one pooled correlation would be negative."""
    rows = [
        {
            "data": "digits",
            "model": "mlp",
            "density": 0.1,
            "final_distance": d,
            "final_accuracy": 0.9 + d / 100,
        }
        for d in (1, 2, 3, 4)
    ]
    rows += [{"data": "mnist1d", "model": "mlp", "density": 0.1, "final_distance": 10 + d,
              "final_accuracy": 0.4 + d / 100} for d in (1, 2, 3, 4)]  # fmt: skip
    points = _points(rows)
    assert distance_accuracy_study(points).distance.pearson < 0  # what pooling would have shown
    study = cross_run_study(points, resamples=200)
    assert [(g.data, g.model) for g in study.groups] == [("digits", "mlp"), ("mnist1d", "mlp")]
    assert [g.distance.pearson for g in study.groups] == pytest.approx([1.0, 1.0])
    assert len(study.group("digits", "mlp").points) == 4
    with pytest.raises(FullSpectrumError, match="no runs of cifar10/mlp.*digits/mlp, mnist1d/mlp"):
        study.group("cifar10", "mlp")


def test_study_groups_by_requested_density():
    rows = [{"density": 0.0500079, "final_distance": 1, "final_accuracy": 0.5},
            {"density": 0.05, "final_distance": 2, "final_accuracy": 0.6},
            {"density": 0.05, "final_distance": 3, "final_accuracy": 0.7},
            {"density": 0.2, "final_distance": 3, "final_accuracy": 0.7}]  # fmt: skip
    study = distance_accuracy_study(_points(rows), resamples=0)
    assert list(study.within_density["density"]) == [0.05, 0.2]
    assert list(study.within_density["n"]) == [3, 1]
    assert requested_density(0.0125) == 0.0125 and math.isnan(requested_density(None))


def test_runs_at_chance_are_left_out_and_counted(tmp_path):
    runs = [make_run(tmp_path / f"r{i}", density=0.1, seed=i, accuracy=0.6 + 0.1 * i) for i in range(3)]
    runs.append(make_run(tmp_path / "chance", density=0.1, seed=9, accuracy=0.1))
    points = run_points(runs)
    assert list(points["at_chance"]) == [False, False, False, True]
    study = cross_run_study(points, resamples=0)
    assert study.groups[0].excluded_at_chance == 1 and len(study.groups[0].points) == 3
    assert list(study.excluded_at_chance["label"]) == ["chance"]
    included = cross_run_study(points, include_chance=True, resamples=0)
    assert len(included.groups[0].points) == 4 and included.excluded_at_chance.empty
    assert included.groups[0].excluded_at_chance == 0


def test_bootstrap_intervals_cover_the_estimate_and_shrink_with_more_runs():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 200):
        x = rng.standard_normal(n)
        y = 0.5 * x + rng.standard_normal(n)
        result = correlate(x, y, resamples=500, seed=1)
        low, high = result.pearson_ci
        assert low <= result.pearson <= high and -1 <= low and high <= 1
        assert result.spearman_ci[0] <= result.spearman <= result.spearman_ci[1]
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(n)
    assert correlate(x, y, resamples=500, seed=1) == correlate(x, y, resamples=500, seed=1)  # seeded
    assert all(math.isnan(v) for v in correlate(x, y).pearson_ci)  # no resamples: no interval


def test_reading_says_when_density_explains_it():
    rows = []
    for density, offset in ((0.05, 0.0), (0.1, 10.0), (0.2, 20.0)):
        for k, noise in enumerate((0.3, -0.2, 0.1, -0.4, 0.2)):
            rows.append({"density": density, "final_distance": offset + noise,
                         "final_accuracy": offset / 10 + 0.01 * k})  # fmt: skip
    reading = study_reading(distance_accuracy_study(_points(rows), resamples=300))
    assert "density alone gives ρ = +" in reading and "not supported" in reading
