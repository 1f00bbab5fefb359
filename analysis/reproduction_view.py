"""A reproduction folder of FS23 Tables 2–3 read back for the app, whole or while it still runs.

``fullspectrum reproduce fs23-table`` (:mod:`fullspectrum.reproduction.fs23_table`) leaves a folder
of kind ``reproduction`` with ``points.csv`` (one row per trained network), ``results.csv`` (mean ±
95% CI per method and density) and ``report.md`` once it ends. While it runs, only its sweep
(``sweep/``, one run folder per point) grows: :func:`load_reproduction` then rebuilds the rows of
the points that finished from the sweep's own grid (:func:`fullspectrum.reproduction.collect.training_rows`)
and says that the tables are partial. Per dataset (never pooled) it gives

* the results table (:func:`fullspectrum.reproduction.report.results_table`; ``results.csv`` itself
  when the folder has it), with a readable ``label`` per method;
* FS23's claims tested on differences paired by seed, Holm-corrected
  (:func:`fullspectrum.reproduction.report.fs23_claims`);
* the ℓ2-moving distance ↔ accuracy correlation over the ITOP runs (FS23 Fig. 3) beside the
  density-only baseline and the correlation within density, each with a bootstrap 95% interval
  over runs (:func:`fullspectrum.reproduction.statistics.bootstrap_correlation`), from the sweep's
  ITOP runs, or from the report's own section when the sweep's runs are not in the folder.

>>> import pandas as pd
>>> points = pd.DataFrame({"data": "digits", "method": ["generator"] * 2 + ["pags"] * 2,
...     "generator": "snip", "density": 0.05, "seed": [0, 1, 0, 1], "accuracy": [0.90, 0.92, 0.91, 0.94],
...     "iterations": 100, "run": ["a", "b", "c", "d"]})
>>> results_by_data(points)[["data", "label", "mean_accuracy"]].values.tolist()
[['digits', 'snip', 0.91], ['digits', 'PAGS@0 over snip', 0.925]]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fullspectrum.errors import FullSpectrumError
from fullspectrum.reproduction.collect import ITOP_COLUMNS, TABLE_COLUMNS, itop_rows, training_rows
from fullspectrum.reproduction.fs23_table import KIND, POINTS_FILE, REPORT_FILE, RESULTS_FILE, SWEEP_DIR
from fullspectrum.reproduction.report import METHOD_LABELS, RESULT_COLUMNS, fs23_claims, results_table
from fullspectrum.reproduction.statistics import bootstrap_correlation
from fullspectrum.runs.run_file import read_info
from fullspectrum.sweeps import GridError, expand_grid, parse_grid

TRAINING_STAGES_LEFT_OUT = ("sample", "pegs", "itop")
"""Sweep stages that train no network of the table (they sample masks, or feed the correlation)."""
CLAIM_COLUMNS = (
    "data",
    "claim",
    "n",
    "difference",
    "ci95_low",
    "ci95_high",
    "p",
    "p_holm",
    "holds",
    "verdict",
)
CORRELATION_COLUMNS = ("data", "study", "n", "pearson", "low", "high")
_REPORT_LINE = re.compile(
    r"^\* (?P<study>.+?): Pearson r = (?:(?P<r>[+-]?\d+\.\d+) \[(?P<low>[+-]?\d+\.\d+), "
    r"(?P<high>[+-]?\d+\.\d+)\]|n/a) \(n=(?P<n>\d+)\)$"
)


@dataclass(frozen=True)
class ReproductionView:
    """What the Reproductions page shows of one reproduction folder."""

    path: str
    status: str
    """``run.json``'s status: ``running``, ``finished``, ``failed``, ``interrupted``."""
    preset: str
    """The preset's name (``quick``, ``cpu``, ``paper``)."""
    complete: bool
    """True when the folder is finished and has all three tables."""
    points: pd.DataFrame
    """One row per finished trained network (``collect.TABLE_COLUMNS``)."""
    results: pd.DataFrame
    """``data``, ``label`` and ``report.RESULT_COLUMNS``: mean ± 95% CI and cost per method and density."""
    claims: pd.DataFrame
    """:data:`CLAIM_COLUMNS`: FS23's claims per dataset, paired by seed, Holm-corrected."""
    correlations: pd.DataFrame
    """:data:`CORRELATION_COLUMNS`: distance vs accuracy, density vs accuracy (baseline), within density."""
    expected: int | None
    """Trained networks the preset asks for (None when the sweep's grid is not in the folder)."""
    report: str
    """``report.md``, or empty while the reproduction runs."""
    notes: tuple[str, ...] = field(default=())
    """What is partial or missing, one sentence each."""


def is_reproduction(path: str | Path) -> bool:
    """Whether ``path`` holds a ``run.json`` of kind ``reproduction``."""
    try:
        return read_info(Path(path)).get("kind") == KIND
    except (FullSpectrumError, OSError):
        return False


def load_reproduction(path: str | Path) -> ReproductionView:
    """Read a reproduction folder (see the module docstring); a folder of another kind is bad input."""
    path = Path(path)
    try:
        info = read_info(path)
    except OSError as error:
        raise FullSpectrumError(f"{path}: cannot read run.json ({error.strerror or error})") from None
    if info.get("kind") != KIND:
        raise FullSpectrumError(f"{path}: a run of kind {info.get('kind')!r}, not a reproduction")
    status = str(info.get("status"))
    preset = str(((info.get("config") or {}).get("preset") or {}).get("name", "?"))
    notes: list[str] = []
    sweep_points = _sweep_points(path)
    have_tables = (path / POINTS_FILE).is_file() and (path / RESULTS_FILE).is_file()
    if have_tables:
        points = _read_table(path / POINTS_FILE, TABLE_COLUMNS)
    elif sweep_points is not None:
        points = training_rows(sweep_points, path / SWEEP_DIR)
        notes.append(
            f"no {RESULTS_FILE} yet: the tables below are computed from the {len(points)} trained networks "
            "of its sweep that have finished so far"
        )
    else:
        points = pd.DataFrame(columns=list(TABLE_COLUMNS))
        notes.append(f"neither {RESULTS_FILE} nor the sweep's grid is in the folder: nothing to show yet")
    expected = (
        sum(p.stage not in TRAINING_STAGES_LEFT_OUT for p in sweep_points)
        if sweep_points is not None
        else None
    )
    if status == "running":
        done = f"{len(points)} of {expected}" if expected is not None else f"{len(points)}"
        notes.insert(0, f"still running: {done} trained networks finished; the tables are partial")
    elif status != "finished":
        notes.insert(0, f"the reproduction is {status}: the tables hold only what finished")
    if expected is not None and status == "finished" and len(points) < expected:
        notes.append(
            f"{expected - len(points)} of {expected} trained networks did not finish (see sweep/points.csv)"
        )
    written = _read_table(path / RESULTS_FILE, ("data", *RESULT_COLUMNS)) if have_tables else None
    results = _labelled(written) if written is not None and status == "finished" else results_by_data(points)
    report = (path / REPORT_FILE).read_text(encoding="utf-8") if (path / REPORT_FILE).is_file() else ""
    correlations = pd.DataFrame(columns=list(CORRELATION_COLUMNS))
    if sweep_points is not None:
        try:
            correlations = correlation_table(itop_rows(sweep_points, path / SWEEP_DIR))
        except (FullSpectrumError, OSError):  # a copy whose ITOP runs were trimmed: the report still says
            pass
    if correlations.empty:
        correlations = report_correlations(report)
    if correlations.empty:
        notes.append("no finished ITOP run yet: the distance–accuracy correlation cannot be computed")
    return ReproductionView(
        path=str(path),
        status=status,
        preset=preset,
        complete=have_tables and status == "finished",
        points=points,
        results=results,
        claims=claims_by_data(points),
        correlations=correlations,
        expected=expected,
        report=report,
        notes=tuple(notes),
    )


def _read_table(path: Path, columns) -> pd.DataFrame:
    """A CSV the reproduction wrote; one written before any network finished (no header) reads as empty."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns))
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FullSpectrumError(
            f"{path}: lacks the columns {', '.join(missing)}; is it a reproduction's table?"
        )
    return table


def _sweep_points(path: Path):
    """The points of the reproduction's sweep, from its own ``grid.toml`` (None when it is not there)."""
    grid_file = path / SWEEP_DIR / "grid.toml"
    if not grid_file.is_file():
        return None
    try:
        return expand_grid(
            parse_grid(grid_file.read_text(encoding="utf-8"), str(grid_file)), path / SWEEP_DIR
        )
    except (GridError, OSError):
        return None


def _labelled(results: pd.DataFrame) -> pd.DataFrame:
    """``results.csv`` rows with ``label``: the method as the report names it."""
    results = results.copy()
    results["generator"] = results["generator"].fillna("").astype(str)
    results["label"] = [
        METHOD_LABELS.get(m, m).format(generator=g) for m, g in zip(results["method"], results["generator"])
    ]
    columns = ["data", "label", *RESULT_COLUMNS]
    return results[[c for c in columns if c in results.columns]]


def results_by_data(points: pd.DataFrame) -> pd.DataFrame:
    """``results_table`` of each dataset's points (never pooled), with ``data`` and ``label``."""
    tables = [results_table(group).assign(data=data) for data, group in points.groupby("data", sort=True)]
    if not tables:
        return pd.DataFrame(columns=["data", "label", *RESULT_COLUMNS])
    return _labelled(pd.concat(tables, ignore_index=True))


def claims_by_data(points: pd.DataFrame) -> pd.DataFrame:
    """FS23's claims per dataset (:data:`CLAIM_COLUMNS`), Holm-corrected within each dataset's report."""
    rows = [
        {"data": data, **verdict.as_dict()}
        for data, group in points.groupby("data", sort=True)
        for verdict in fs23_claims(group)
    ]
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def correlation_table(itop: pd.DataFrame) -> pd.DataFrame:
    """Per dataset of ITOP runs (``collect.ITOP_COLUMNS``): distance vs accuracy, density vs accuracy (the
    baseline) and distance vs accuracy with each density's mean removed from both (within density)."""
    rows = []
    for data, runs in itop[list(ITOP_COLUMNS)].groupby("data", sort=True):
        centred = runs.assign(
            final_distance=runs["final_distance"]
            - runs.groupby("density")["final_distance"].transform("mean"),
            accuracy=runs["accuracy"] - runs.groupby("density")["accuracy"].transform("mean"),
        )
        for study, x, y in (
            ("distance vs accuracy", runs["final_distance"], runs["accuracy"]),
            ("density vs accuracy (baseline)", runs["density"], runs["accuracy"]),
            ("distance vs accuracy within density", centred["final_distance"], centred["accuracy"]),
        ):
            c = bootstrap_correlation(x, y)
            rows.append(
                {"data": data, "study": study, "n": c.n, "pearson": c.pearson, "low": c.low, "high": c.high}
            )
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def report_correlations(report: str) -> pd.DataFrame:
    """The correlation lines of a ``report.md`` (for a folder whose sweep runs were trimmed away)."""
    rows, data = [], ""
    for line in report.splitlines():
        if line.startswith("# "):
            data = line.rsplit(" on ", 1)[-1].split(" (")[0].strip()
        match = _REPORT_LINE.match(line.strip())
        if match:
            number = {k: float(match[k]) if match[k] is not None else math.nan for k in ("r", "low", "high")}
            study = match["study"].split(": ", 1)[-1]
            rows.append({"data": data, "study": study, "n": int(match["n"]), "pearson": number["r"],
                         "low": number["low"], "high": number["high"]})  # fmt: skip
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def correlation_verdict(correlations: pd.DataFrame) -> list[str]:
    """One sentence per dataset: does FS23's "almost linear" distance–accuracy relation hold here?"""
    lines = []
    for data, group in correlations.groupby("data", sort=True):
        studies = group.set_index("study")
        if "distance vs accuracy" not in studies.index:
            continue
        raw = studies.loc["distance vs accuracy"]
        base = (
            studies.loc["density vs accuracy (baseline)"]
            if "density vs accuracy (baseline)" in studies.index
            else None
        )
        within = (
            studies.loc["distance vs accuracy within density"]
            if "distance vs accuracy within density" in studies.index
            else None
        )
        if math.isnan(raw["pearson"]):
            lines.append(f"{data}: too few ITOP runs ({int(raw['n'])}) for a correlation.")
            continue
        text = (
            f"{data}: distance vs accuracy r = {raw['pearson']:+.2f} [{raw['low']:+.2f}, {raw['high']:+.2f}]"
        )
        if base is not None and not math.isnan(base["pearson"]):
            text += f", density alone r = {base['pearson']:+.2f} [{base['low']:+.2f}, {base['high']:+.2f}]"
        holds = (
            raw["low"] > 0 and within is not None and not math.isnan(within["pearson"]) and within["low"] > 0
        )
        if within is not None and not math.isnan(within["pearson"]):
            text += (
                f", within density r = {within['pearson']:+.2f} [{within['low']:+.2f}, {within['high']:+.2f}]"
            )
        text += (
            ": FS23's near-linear relation holds here, also at fixed density."
            if holds
            else ": FS23's near-linear relation does NOT hold here once density is held fixed "
            "(the within-density interval is not above 0)."
            if raw["low"] > 0
            else ": FS23's near-linear relation does NOT hold here (the interval is not above 0)."
        )
        lines.append(text)
    return lines
