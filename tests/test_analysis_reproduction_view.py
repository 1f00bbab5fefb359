"""analysis.reproduction_view: a reproduction folder read back whole, partial while it runs, or refused."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from analysis.reproduction_view import (
    correlation_table,
    correlation_verdict,
    is_reproduction,
    load_reproduction,
    report_correlations,
    results_by_data,
)
from fullspectrum.errors import FullSpectrumError
from fullspectrum.reproduction.report import fs23_claims, render_report, results_table
from fullspectrum.reproduction.statistics import BootstrapCorrelation
from fullspectrum.runs import RunStore

ACCURACY = {  # (method, generator) -> accuracy per seed 0, 1, 2
    ("generator", "snip"): (0.90, 0.92, 0.94),
    ("pags", "snip"): (0.91, 0.94, 0.95),
    ("lottery_rewindk", ""): (0.95, 0.96, 0.97),
}
ITERATIONS = {"generator": 840, "pags": 840, "lottery_rewindk": 9000}


def hand_points(data: str = "digits") -> pd.DataFrame:
    """One row per trained network, as ``points.csv`` holds them."""
    rows = [
        {"data": data, "method": method, "generator": generator, "density": 0.05, "seed": seed,
         "accuracy": accuracy, "iterations": ITERATIONS[method], "run": f"{method}-{generator}-{seed}"}
        for (method, generator), values in ACCURACY.items()
        for seed, accuracy in enumerate(values)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def make_reproduction(path, *, finished: bool = True, tables: bool = True, report: str | None = None):
    """A reproduction folder (kind ``reproduction``) with hand-made ``points.csv``/``results.csv``/``report.md``."""
    store = RunStore.create(path, kind="reproduction", config={"table": "fs23", "preset": {"name": "tiny"}},
                            seed=0, device="cpu")  # fmt: skip
    points = hand_points()
    if tables:
        points.to_csv(path / "points.csv", index=False)
        results_table(points).assign(data="digits").to_csv(path / "results.csv", index=False)
    if report is not None:
        (path / "report.md").write_text(report, encoding="utf-8")
    if finished:
        store.finish(final={"trained": len(points)})
    else:
        store.close()
    return path


def test_a_finished_folder_shows_its_tables_and_the_claims_of_its_points(tmp_path):
    folder = make_reproduction(tmp_path / "repro")
    view = load_reproduction(folder)
    assert is_reproduction(folder) and view.complete and view.status == "finished" and view.preset == "tiny"
    written = pd.read_csv(folder / "results.csv")
    assert view.results["mean_accuracy"].tolist() == pytest.approx(written["mean_accuracy"].tolist())
    generator = view.results.set_index("label").loc["snip"]
    # by hand: mean 0.92, sd 0.02, t(0.975, 2) = 4.302653 -> half width 0.049683
    assert generator["mean_accuracy"] == pytest.approx(0.92)
    assert generator["ci95_high"] - 0.92 == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    assert list(view.results["label"]) == ["snip", "PAGS@0 over snip", "IMP (rewind k)"]
    assert view.claims["verdict"].tolist() == [v.text for v in fs23_claims(hand_points())]
    assert "PAGS@0 over snip beats snip" in view.claims["claim"].iloc[0]
    # no sweep, no report: the correlation is said to be missing
    assert view.correlations.empty and any("ITOP" in note for note in view.notes)


def test_a_running_folder_without_tables_says_so(tmp_path):
    folder = make_reproduction(tmp_path / "repro", finished=False, tables=False)
    view = load_reproduction(folder)
    assert not view.complete and view.status == "running" and view.results.empty
    assert view.notes[0].startswith("still running") and any("nothing to show yet" in n for n in view.notes)


def test_tables_written_before_any_network_finished_read_as_empty(tmp_path):
    folder = make_reproduction(tmp_path / "repro", tables=False)
    (folder / "points.csv").write_text("\n")
    (folder / "results.csv").write_text("\n")
    view = load_reproduction(folder)
    assert view.results.empty and view.points.empty and view.claims.empty
    (folder / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FullSpectrumError, match="lacks the columns"):
        load_reproduction(folder)


def test_results_are_per_dataset_never_pooled():
    both = pd.concat([hand_points("digits"), hand_points("mnist1d").assign(accuracy=0.5)])
    results = results_by_data(both)
    assert set(results["data"]) == {"digits", "mnist1d"}
    assert results[results["data"] == "mnist1d"]["mean_accuracy"].tolist() == pytest.approx([0.5] * 3)


def test_correlations_from_itop_runs_and_from_a_report_agree():
    itop = pd.DataFrame({"data": "digits", "density": [0.02] * 3 + [0.1] * 3, "seed": [0, 1, 2] * 2,
                         "accuracy": [0.80, 0.82, 0.84, 0.90, 0.92, 0.94],
                         "final_distance": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})  # fmt: skip
    table = correlation_table(itop).set_index("study")
    expected = stats.pearsonr(itop["final_distance"], itop["accuracy"])[0]
    assert table.loc["distance vs accuracy", "pearson"] == pytest.approx(expected)
    assert table.loc["distance vs accuracy within density", "pearson"] == pytest.approx(1.0)
    report = render_report(
        "FS23 Tables 2–3 reproduced: mlp on digits (preset tiny)", results_table(hand_points()), (),
        correlation=[(f"ITOP, mlp on digits: {s}", BootstrapCorrelation(int(r.n), r.pearson, r.low, r.high))
                     for s, r in table.iterrows()],
    )  # fmt: skip
    parsed = report_correlations(report).set_index("study")
    assert list(parsed.index) == list(table.index) and set(parsed["data"]) == {"digits"}
    assert parsed["pearson"].tolist() == pytest.approx(table["pearson"].round(2).tolist(), abs=1e-9)
    (line,) = correlation_verdict(table.reset_index())
    assert "holds here, also at fixed density" in line


def test_correlation_verdict_says_when_fs23_does_not_hold():
    rows = pd.DataFrame({"data": "digits", "study": ["distance vs accuracy", "density vs accuracy (baseline)",
                         "distance vs accuracy within density"], "n": 12, "pearson": [0.5, 0.9, 0.1],
                         "low": [0.1, 0.8, -0.4], "high": [0.8, 0.95, 0.5]})  # fmt: skip
    (line,) = correlation_verdict(rows)
    assert "does NOT hold here once density is held fixed" in line and "density alone r = +0.90" in line


def test_a_folder_of_another_kind_is_refused_in_one_line(tmp_path):
    store = RunStore.create(tmp_path / "train", kind="train", config={}, seed=0, device="cpu")
    store.finish()
    with pytest.raises(FullSpectrumError, match="not a reproduction") as error:
        load_reproduction(tmp_path / "train")
    assert "\n" not in str(error.value) and not is_reproduction(tmp_path / "train")


def test_without_its_sweep_the_correlation_comes_from_the_report(tmp_path):
    report = render_report(
        "FS23 Tables 2–3 reproduced: mlp on digits (preset tiny)", results_table(hand_points()), (),
        correlation=[("ITOP, mlp on digits: distance vs accuracy", BootstrapCorrelation(6, 0.88, 0.4, 1.0))],
    )  # fmt: skip
    view = load_reproduction(make_reproduction(tmp_path / "repro", report=report))
    assert view.correlations[["data", "study", "n", "pearson"]].values.tolist() == [
        ["digits", "distance vs accuracy", 6, 0.88]
    ]
    assert view.report == report and not any("ITOP" in note for note in view.notes)
