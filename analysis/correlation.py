"""Does the full spectrum say more than density? Final ℓ2-moving distance vs final accuracy across runs.

FS23 (Hoang et al., NeurIPS 2023, Fig. 3) report that under ITOP random growth
a run's final ℓ2-moving distance (SPEC §4: the mean over layers of
``||u(T) - u(0)||``) correlates almost linearly with its final accuracy. MGE24
(Cunegatti et al., TMLR 2024) warn that across densities both simply move with
density. So the study here always reports three things side by side:

* distance vs accuracy over all runs (Pearson ρ and Spearman);
* density vs accuracy over the same runs (the density-only baseline);
* distance vs accuracy *within* each density, and pooled over densities after
  removing each density's mean from both (what is left once density is known).

The statistics are pandas/numpy/scipy over a table of runs (:func:`run_points`
reads it from run directories); the app draws the numbers, it does not compute them.

>>> import pandas as pd
>>> points = pd.DataFrame({"density": [0.1] * 4, "final_distance": [1, 2, 3, 4],
...                        "final_accuracy": [0.5, 0.6, 0.7, 0.8]})
>>> round(distance_accuracy_study(points).distance.pearson, 6)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import RunStore

POINT_COLUMNS = ("run", "label", "method", "density", "seed", "final_distance", "final_accuracy")
"""Columns of :func:`run_points`: one row per run."""
WITHIN_COLUMNS = ("density", "n", "pearson", "spearman")
"""Columns of :attr:`CorrelationStudy.within_density`."""
MIN_POINTS = 3
"""Fewer points than this give NaN correlations (two points always lie on a line)."""


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of two columns over the same points."""

    n: int
    """Points used (finite in both columns)."""
    pearson: float
    """Pearson's ρ (NaN with fewer than ``MIN_POINTS`` points or a constant column)."""
    pearson_p: float
    """Two-sided p-value of ``pearson``."""
    spearman: float
    """Spearman's rank correlation."""
    spearman_p: float
    """Two-sided p-value of ``spearman``."""


@dataclass(frozen=True)
class CorrelationStudy:
    """FS23's Figure-3 correlation with MGE24's density controls."""

    points: pd.DataFrame
    """The runs used (``POINT_COLUMNS``), with finite distance and accuracy."""
    left_out: int
    """Runs given but left out (no final accuracy or distance)."""
    distance: Correlation
    """Final ℓ2-moving distance vs final accuracy over all points."""
    density: Correlation
    """Density vs final accuracy over the same points (the baseline)."""
    within_density: pd.DataFrame
    """Distance vs accuracy within each density (``WITHIN_COLUMNS``)."""
    pooled_within: Correlation
    """Distance vs accuracy after subtracting each density's mean from both (density held fixed)."""


def correlate(x: Iterable[float], y: Iterable[float]) -> Correlation:
    """Pearson and Spearman over the pairs where both values are finite."""
    x, y = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(n, math.nan, math.nan, math.nan, math.nan)
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    return Correlation(n, float(pearson[0]), float(pearson[1]), float(spearman[0]), float(spearman[1]))


def distance_accuracy_study(points: pd.DataFrame) -> CorrelationStudy:
    """The study over ``points`` (at least ``density``, ``final_distance``, ``final_accuracy``)."""
    frame = points.copy()
    for column in POINT_COLUMNS:
        if column not in frame:
            frame[column] = None
    numeric = frame[["density", "final_distance", "final_accuracy"]].apply(pd.to_numeric, errors="coerce")
    frame[numeric.columns] = numeric
    usable = np.isfinite(numeric.to_numpy(dtype=float)).all(axis=1)
    used = frame.loc[usable, list(POINT_COLUMNS)].reset_index(drop=True)
    within_rows = []
    for density, group in used.groupby("density", sort=True):
        result = correlate(group["final_distance"], group["final_accuracy"])
        within_rows.append(
            {"density": float(density), "n": result.n, "pearson": result.pearson, "spearman": result.spearman}
        )
    within = pd.DataFrame(within_rows, columns=list(WITHIN_COLUMNS))
    centred = used[["final_distance", "final_accuracy"]] - used.groupby("density")[
        ["final_distance", "final_accuracy"]
    ].transform("mean")
    return CorrelationStudy(
        points=used,
        left_out=int((~usable).sum()),
        distance=correlate(used["final_distance"], used["final_accuracy"]),
        density=correlate(used["density"], used["final_accuracy"]),
        within_density=within,
        pooled_within=correlate(centred["final_distance"], centred["final_accuracy"]),
    )


def run_points(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run (``POINT_COLUMNS``): network-mean moving distance at its last snapshot,
    and ``final["test_accuracy"]`` (NaN while unfinished). Unreadable runs give NaN values."""
    rows = []
    for run_dir in run_dirs:
        row = dict.fromkeys(POINT_COLUMNS)
        row.update(
            run=str(run_dir), label=Path(run_dir).name, final_distance=math.nan, final_accuracy=math.nan
        )
        try:
            store = RunStore.open(run_dir)
            info, layers = store.info, store.layers()
        except (FullSpectrumError, OSError):
            rows.append(row)
            continue
        config = info.get("config") or {}
        final = info.get("final") or {}
        row.update(
            method=config.get("method") or config.get("generator"),
            density=_number(config.get("density")),
            seed=info.get("seed"),
            final_accuracy=_number(final.get("test_accuracy")),
        )
        if not layers.empty:
            last = layers[layers["step"] == layers["step"].max()]
            row["final_distance"] = float(last["moving_distance"].mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=list(POINT_COLUMNS))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
