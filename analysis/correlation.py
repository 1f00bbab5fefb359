"""Does the full spectrum say more than density? Final ℓ2-moving distance vs final accuracy across runs.

FS23 (Hoang et al., NeurIPS 2023, Fig. 3) report that under ITOP random growth
a run's final ℓ2-moving distance (SPEC §4: the mean over layers of
``||u(T) - u(0)||``) correlates almost linearly with its final accuracy. MGE24
(Cunegatti et al., TMLR 2024) warn that across densities both simply move with
density. So the study here always reports three things side by side, each with
a bootstrap confidence interval:

* distance vs accuracy over all runs (Pearson ρ and Spearman);
* density vs accuracy over the same runs (the density-only baseline);
* distance vs accuracy *within* each density, and pooled over densities after
  removing each density's mean from both (what is left once density is known).

Truth by default (:func:`cross_run_study`): accuracies of different datasets or
models are not comparable, so runs are studied per ``(data, model)`` and never
pooled; densities are grouped by the *requested* density (a static run from a
mask file records its mask's exact 0.0500079, which is the requested 0.05,
:func:`requested_density`); runs that ended at chance (:mod:`analysis.chance`)
are left out unless asked, and counted.

>>> import pandas as pd
>>> points = pd.DataFrame({"density": [0.1] * 4, "final_distance": [1, 2, 3, 4],
...                        "final_accuracy": [0.5, 0.6, 0.7, 0.8]})
>>> round(distance_accuracy_study(points).distance.pearson, 6)
1.0
>>> requested_density(0.05000793147208122), requested_density(0.2)
(0.05, 0.2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.chance import at_chance
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import RunStore

POINT_COLUMNS = (
    "run", "label", "data", "model", "method", "density", "seed", "final_distance", "final_accuracy",
    "at_chance",
)  # fmt: skip
"""Columns of :func:`run_points`: one row per run. ``density`` is the requested density."""
WITHIN_COLUMNS = ("density", "n", "pearson", "pearson_low", "pearson_high", "spearman")
"""Columns of :attr:`CorrelationStudy.within_density`."""
MIN_POINTS = 3
"""Fewer points than this give NaN correlations (two points always lie on a line)."""
RESAMPLES = 2000
"""Bootstrap resamples behind each confidence interval."""
CONFIDENCE = 0.95
"""Coverage of the bootstrap (percentile) confidence intervals."""
DENSITY_DIGITS = 3
"""Significant digits of a requested density (0.0500079 is 0.05; 0.0125 stays 0.0125)."""
NAN_CI = (math.nan, math.nan)


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of two columns over the same points, with bootstrap CIs."""

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
    pearson_ci: tuple[float, float] = NAN_CI
    """Bootstrap percentile interval of ``pearson`` (:data:`CONFIDENCE`); NaN without resamples."""
    spearman_ci: tuple[float, float] = NAN_CI
    """Bootstrap percentile interval of ``spearman``."""


@dataclass(frozen=True)
class CorrelationStudy:
    """FS23's Figure-3 correlation with MGE24's density controls, over runs of one dataset and model."""

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
    data: str = "?"
    """The dataset of the runs (``?`` when not known)."""
    model: str = "?"
    """The model of the runs."""
    excluded_at_chance: int = 0
    """Runs of this dataset and model left out because they ended at chance."""


@dataclass(frozen=True)
class CrossRunStudy:
    """:class:`CorrelationStudy` per ``(data, model)``: never one correlation over incomparable runs."""

    groups: tuple[CorrelationStudy, ...]
    """One study per dataset and model, in name order."""
    excluded_at_chance: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The runs that ended at chance and were left out (``POINT_COLUMNS``); empty when included."""

    def group(self, data: str, model: str) -> CorrelationStudy:
        """The study of ``data`` and ``model``; an unknown pair fails with the known ones."""
        for study in self.groups:
            if (study.data, study.model) == (data, model):
                return study
        known = ", ".join(f"{s.data}/{s.model}" for s in self.groups) or "none"
        raise FullSpectrumError(f"no runs of {data}/{model} in this study; groups: {known}")


def requested_density(value) -> float:
    """The density a run asked for: ``value`` to :data:`DENSITY_DIGITS` significant digits (NaN stays)."""
    number = _number(value)
    if not math.isfinite(number) or number == 0:
        return number
    return float(f"{number:.{DENSITY_DIGITS}g}")


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of every row pair of ``x``, ``y`` (shape (B, n)); NaN where a row is constant."""
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (xc * yc).sum(axis=1) / denominator, np.nan)


def _interval(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size < 10:  # too few usable resamples to say anything
        return NAN_CI
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(x: np.ndarray, y: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0) -> tuple:
    """Percentile bootstrap intervals ``(pearson_ci, spearman_ci)`` over resampled pairs (seeded)."""
    if resamples <= 0 or x.size < MIN_POINTS:
        return NAN_CI, NAN_CI
    index = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))  # (B, n)
    xs, ys = x[index], y[index]
    pearson = _pearson_rows(xs, ys)
    spearman = _pearson_rows(stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1))
    return _interval(pearson), _interval(spearman)


def correlate(x: Iterable[float], y: Iterable[float], *, resamples: int = 0, seed: int = 0) -> Correlation:
    """Pearson and Spearman over the pairs where both values are finite; with ``resamples`` > 0, their
    bootstrap confidence intervals too."""
    x, y = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(n, math.nan, math.nan, math.nan, math.nan)
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    pearson_ci, spearman_ci = bootstrap_ci(x, y, resamples=resamples, seed=seed)
    return Correlation(
        n,
        float(pearson[0]),
        float(pearson[1]),
        float(spearman[0]),
        float(spearman[1]),
        pearson_ci,
        spearman_ci,
    )


def distance_accuracy_study(points: pd.DataFrame, *, resamples: int = RESAMPLES) -> CorrelationStudy:
    """The study over ``points`` (at least ``density``, ``final_distance``, ``final_accuracy``), densities
    grouped by :func:`requested_density`. All points are used: :func:`cross_run_study` splits by dataset
    and model and leaves out runs at chance first."""
    frame = points.copy()
    for column in POINT_COLUMNS:
        if column not in frame:
            frame[column] = None
    numeric = frame[["density", "final_distance", "final_accuracy"]].apply(pd.to_numeric, errors="coerce")
    frame[numeric.columns] = numeric
    frame["density"] = frame["density"].map(requested_density)
    usable = np.isfinite(frame[["density", "final_distance", "final_accuracy"]].to_numpy(dtype=float)).all(
        axis=1
    )
    used = frame.loc[usable, list(POINT_COLUMNS)].reset_index(drop=True)
    within_rows = []
    for density, group in used.groupby("density", sort=True):
        result = correlate(group["final_distance"], group["final_accuracy"], resamples=resamples)
        within_rows.append(
            {
                "density": float(density),
                "n": result.n,
                "pearson": result.pearson,
                "pearson_low": result.pearson_ci[0],
                "pearson_high": result.pearson_ci[1],
                "spearman": result.spearman,
            }  # fmt: skip
        )
    within = pd.DataFrame(within_rows, columns=list(WITHIN_COLUMNS))
    centred = used[["final_distance", "final_accuracy"]] - used.groupby("density")[
        ["final_distance", "final_accuracy"]
    ].transform("mean")
    return CorrelationStudy(
        points=used,
        left_out=int((~usable).sum()),
        distance=correlate(used["final_distance"], used["final_accuracy"], resamples=resamples),
        density=correlate(used["density"], used["final_accuracy"], resamples=resamples),
        within_density=within,
        pooled_within=correlate(centred["final_distance"], centred["final_accuracy"], resamples=resamples),
    )


def cross_run_study(
    points: pd.DataFrame, *, include_chance: bool = False, resamples: int = RESAMPLES
) -> CrossRunStudy:
    """:func:`distance_accuracy_study` per ``(data, model)`` of ``points`` (:func:`run_points`); runs that
    ended at chance are left out unless ``include_chance`` (and listed in ``excluded_at_chance``)."""
    frame = points.copy()
    for column in POINT_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["data"] = frame["data"].fillna("?").astype(str)
    frame["model"] = frame["model"].fillna("?").astype(str)
    chance = frame["at_chance"].fillna(False).astype(bool)
    excluded = frame.loc[chance].reset_index(drop=True) if not include_chance else frame.iloc[0:0]
    kept = frame if include_chance else frame.loc[~chance]
    groups = []
    for (data, model), group in frame.groupby(["data", "model"], sort=True):
        study = distance_accuracy_study(kept.loc[kept.index.isin(group.index)], resamples=resamples)
        dropped = (
            int(((excluded["data"] == data) & (excluded["model"] == model)).sum()) if len(excluded) else 0
        )
        groups.append(
            CorrelationStudy(
                **{**study.__dict__, "data": data, "model": model, "excluded_at_chance": dropped}
            )
        )
    return CrossRunStudy(tuple(groups), excluded[list(POINT_COLUMNS)] if len(excluded) else excluded)


def _excludes_zero(interval: tuple[float, float]) -> bool:
    low, high = interval
    return math.isfinite(low) and math.isfinite(high) and (low > 0 or high < 0)


def _r(result: Correlation) -> str:
    low, high = result.pearson_ci
    ci = f" (95% CI {low:+.2f} to {high:+.2f})" if math.isfinite(low) and math.isfinite(high) else ""
    return f"ρ = {result.pearson:+.2f}{ci}"


def study_reading(study: CorrelationStudy) -> str:
    """What the numbers say, in plain words: FS23's claim held against MGE24's density baseline."""
    where = f"{study.data}/{study.model}: " if study.data != "?" else ""
    if not math.isfinite(study.distance.pearson):
        return f"{where}too few runs (or no spread in accuracy) for a correlation."
    parts = [f"{where}final distance vs accuracy {_r(study.distance)} over {study.distance.n} runs"]
    densities = sorted(set(study.points["density"]))
    if len(densities) == 1:
        parts.append(f"all at density {densities[0]:g}, so density alone explains none of it")
    elif math.isfinite(study.density.pearson):
        parts.append(f"density alone gives {_r(study.density)}")
    pooled = study.pooled_within
    if not math.isfinite(pooled.pearson):
        parts.append("no density has enough runs to hold density fixed")
    elif _excludes_zero(pooled.pearson_ci) and pooled.pearson > 0:
        parts.append(
            f"with density held fixed the distance still tracks accuracy ({_r(pooled)}), as FS23 report"
        )
    else:
        parts.append(
            f"with density held fixed {_r(pooled)}: the distance says nothing measurable beyond density "
            "on these runs (FS23's claim is not supported here)"
        )
    return "; ".join(parts) + "."


def run_points(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run (``POINT_COLUMNS``): network-mean moving distance at its last snapshot,
    ``final["test_accuracy"]`` (NaN while unfinished), the requested density and whether the run ended
    at chance. Unreadable runs give NaN values."""
    rows = []
    for run_dir in run_dirs:
        row = dict.fromkeys(POINT_COLUMNS)
        row.update(
            run=str(run_dir), label=Path(run_dir).name, final_distance=math.nan, final_accuracy=math.nan,
            at_chance=False,
        )  # fmt: skip
        try:
            store = RunStore.open(run_dir)
            info, layers = store.info, store.layers()
        except (FullSpectrumError, OSError):
            rows.append(row)
            continue
        config = info.get("config") or {}
        final = info.get("final") or {}
        accuracy = _number(final.get("test_accuracy"))
        row.update(
            data=config.get("data"),
            model=config.get("model"),
            method=config.get("method") or config.get("generator"),
            density=requested_density(config.get("density")),
            seed=info.get("seed"),
            final_accuracy=accuracy,
            at_chance=at_chance(accuracy, config.get("data")),
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
