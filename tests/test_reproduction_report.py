"""The FS23-table report: results.csv rows, the claims it tests and report.md, on hand-made points."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fullspectrum.reproduction.report import RESULT_COLUMNS, fs23_claims, render_report, results_table
from fullspectrum.reproduction.statistics import bootstrap_correlation


def _points() -> pd.DataFrame:
    rows = []
    for seed in range(5):
        snip = 0.90 + 0.01 * seed
        rows += [
            ("generator", "snip", 0.05, seed, snip, 600),
            ("pags", "snip", 0.05, seed, snip + 0.02 + 0.001 * (seed % 2), 600),
            ("pegs500", "snip", 0.05, seed, snip + 0.03, 1100),
            ("lottery_rewindk", None, 0.05, seed, snip + 0.03 + (0.002 if seed % 2 else -0.002), 8400),
            ("earlybird", None, 0.05, seed, snip - 0.01 + 0.003 * (seed % 3), 900),
        ]
    return pd.DataFrame(rows, columns=["method", "generator", "density", "seed", "accuracy", "iterations"])


def test_results_have_the_promised_columns_order_and_intervals():
    table = results_table(_points())
    assert tuple(table.columns) == RESULT_COLUMNS
    assert table["method"].tolist() == ["generator", "pags", "pegs500", "lottery_rewindk", "earlybird"]
    generator = table.iloc[0]
    assert generator.n == 5 and generator.mean_accuracy == pytest.approx(0.92)
    half = 2.7764451051977987 * pd.Series([0.90, 0.91, 0.92, 0.93, 0.94]).std() / math.sqrt(5)
    assert (generator.ci95_low, generator.ci95_high) == pytest.approx((0.92 - half, 0.92 + half))
    assert table.loc[table.method == "lottery_rewindk", "iterations"].item() == 8400


def test_the_claims_fs23_makes_are_tested_and_named():
    verdicts = {v.claim: v for v in fs23_claims(_points())}
    assert set(verdicts) == {
        "PAGS@0 over snip beats snip at d=0.05",
        "PEGS@500 over snip beats snip at d=0.05",
        "IMP (rewind k) beats PEGS@500 over snip at d=0.05",
        "PEGS@500 over snip beats Early-Bird at d=0.05",
    }
    assert verdicts["PAGS@0 over snip beats snip at d=0.05"].holds
    assert not verdicts["IMP (rewind k) beats PEGS@500 over snip at d=0.05"].significant


def test_the_report_shows_every_row_verdict_and_correlation():
    points = _points()
    correlation = [("ITOP-Rand, mlp on digits", bootstrap_correlation([1, 2, 3, 4], [1, 2, 2.5, 4.5]))]
    text = render_report(
        "FS23 Tables 2–3, preset cpu", results_table(points), fs23_claims(points), correlation=correlation
    )
    assert text.startswith("# FS23 Tables 2–3, preset cpu")
    assert "| 0.05 | PAGS@0 over snip | 5 | 0.9404 |" in text
    assert "IMP (rewind k) | 5 |" in text and "| 8,400 |" in text
    assert "PAGS@0 over snip beats snip at d=0.05: +2.0" in text
    assert "ITOP-Rand, mlp on digits: Pearson r = +0." in text


def test_points_without_a_needed_column_are_refused():
    with pytest.raises(ValueError, match="iterations"):
        results_table(_points().drop(columns="iterations"))
