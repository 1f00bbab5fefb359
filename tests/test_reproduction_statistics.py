"""A reproduction report's statistics against hand-computed values (SPEC §9)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fullspectrum.reproduction.statistics import (
    bootstrap_correlation,
    claim_verdicts,
    holm,
    mean_interval,
    paired_difference,
)


def test_the_t_interval_of_five_seeds_by_hand():
    values = [0.91, 0.93, 0.92, 0.95, 0.94]
    interval = mean_interval(values)
    mean = 0.93
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)  # 0.015811...
    t = 2.7764451051977987  # t_{0.975, 4}
    assert interval.n == 5 and interval.mean == pytest.approx(mean)
    assert interval.std == pytest.approx(std)
    assert interval.low == pytest.approx(mean - t * std / math.sqrt(5))
    assert interval.high == pytest.approx(mean + t * std / math.sqrt(5))


def test_one_value_has_no_interval_and_nan_is_ignored():
    assert math.isnan(mean_interval([0.5]).low)
    assert mean_interval([0.5, math.nan, 0.7]).n == 2


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.03, 0.2 with m = 4: 0.04, 0.06, 0.06 (monotone), 0.2
    assert holm([0.03, 0.2, 0.01, 0.02]) == pytest.approx((0.06, 0.2, 0.04, 0.06))
    assert holm([0.6, 0.5]) == pytest.approx((1.0, 1.0))
    adjusted = holm([math.nan, 0.02])
    assert math.isnan(adjusted[0]) and adjusted[1] == pytest.approx(0.02)


def test_differences_are_paired_by_seed_not_by_position():
    a = {0: 0.90, 1: 0.95, 2: 0.80, 3: 0.99}
    b = {2: 0.78, 0: 0.89, 1: 0.93}  # seed 3 missing in b: left out
    d = paired_difference(a, b)
    assert d.seeds == (0, 1, 2) and d.n == 3
    diffs = [0.01, 0.02, 0.02]
    assert d.mean == pytest.approx(np.mean(diffs))
    t = 4.302652729911275  # t_{0.975, 2}
    half = t * np.std(diffs, ddof=1) / math.sqrt(3)
    assert (d.low, d.high) == pytest.approx((np.mean(diffs) - half, np.mean(diffs) + half))
    from scipy import stats

    assert d.p_value == pytest.approx(stats.ttest_rel([0.90, 0.95, 0.80], [0.89, 0.93, 0.78]).pvalue)


def test_verdicts_are_corrected_over_the_report_and_say_plainly_what_holds():
    seeds = range(5)
    base = {s: 0.90 + 0.01 * s for s in seeds}
    better = {s: base[s] + 0.02 + 0.001 * (s % 2) for s in seeds}
    noisy = {s: base[s] + (0.01 if s % 2 else -0.012) for s in seeds}
    worse = {s: base[s] - 0.03 - 0.002 * s for s in seeds}
    verdicts = {
        v.claim: v
        for v in claim_verdicts(
            {
                "PAGS over SNIP": (better, base),
                "PEGS over SNIP": (noisy, base),
                "Random over SNIP": (worse, base),
            }
        )
    }
    assert verdicts["PAGS over SNIP"].holds
    assert "significant, the claim holds here" in verdicts["PAGS over SNIP"].text
    assert verdicts["PAGS over SNIP"].text.startswith("PAGS over SNIP: +2.0 ± ")
    assert not verdicts["PEGS over SNIP"].significant
    assert "not significant" in verdicts["PEGS over SNIP"].text
    assert "opposite direction" in verdicts["Random over SNIP"].text
    raw = sorted(v.difference.p_value for v in verdicts.values())
    assert min(v.p_holm for v in verdicts.values()) == pytest.approx(3 * raw[0])


def test_a_claim_with_one_paired_seed_cannot_be_tested():
    (verdict,) = claim_verdicts({"A over B": ({0: 0.9}, {0: 0.8, 1: 0.7})})
    assert "cannot be tested" in verdict.text and not verdict.holds


def test_bootstrap_correlation_interval_contains_r_and_shrinks_with_more_runs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = 0.6 * x + rng.normal(scale=0.8, size=200)
    small = bootstrap_correlation(x[:20], y[:20])
    large = bootstrap_correlation(x, y)
    assert large.pearson == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert large.low < large.pearson < large.high
    assert large.high - large.low < small.high - small.low
    assert math.isnan(bootstrap_correlation([1, 2], [3, 4]).pearson)


def test_the_same_difference_at_every_seed_is_not_called_significant():
    # 2/359 of a test set at both seeds, as float arithmetic gives it (not bit-equal differences)
    a, b = {0: 302 / 359, 1: 303 / 359}, {0: 300 / 359, 1: 301 / 359}
    assert a[0] - b[0] != a[1] - b[1]
    (verdict,) = claim_verdicts({"A over B": (a, b)})
    assert math.isnan(verdict.difference.p_value) and not verdict.significant and not verdict.holds
    assert "no spread between seeds" in verdict.text and "+0.6 points at each of 2 seeds" in verdict.text
