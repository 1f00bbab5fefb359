"""One metric over steps across several runs, as experiment trackers draw it (TensorBoard, W&B).

:func:`run_curve` reads a metric of one run over its steps: an evaluation
(``accuracy``/``loss`` of a split, from ``evals``) or a network-level
full-spectrum value (SPEC §4: ``moving_distance``, ``delta_r``, ... from the
network means). :func:`smooth` is TensorBoard's debiased exponential moving
average; :func:`group_curves` gives the mean ± standard deviation over the
runs of one configuration (seeds) at each step; :func:`parallel_table` lays out
one row per run for a parallel-coordinates view (density → method → final
distance → final accuracy).

>>> smooth([1.0, 1.0, 1.0], 0.9).tolist()  # debiased: a constant stays itself
[1.0, 1.0, 1.0]
>>> smooth([0.0, 1.0], 0.5).round(3).tolist()
[0.0, 0.667]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.correlation import requested_density

EVAL_METRICS = ("accuracy", "loss")
"""Metrics read from a run's ``evals`` table (per split)."""
NETWORK_METRICS = (
    "moving_distance",
    "exploration_rate",
    "delta_r",
    "lambda_w",
    "delta_r_imdb",
    "lambda_imsg",
    "density",
)
"""Metrics read from a run's network means over its snapshots."""
CURVE_COLUMNS = ("run", "group", "step", "value")
"""Columns of :func:`curves_frame`."""
GROUP_COLUMNS = ("group", "step", "mean", "std", "n")
"""Columns of :func:`group_curves`."""


def run_curve(metric: str, *, evals: pd.DataFrame, network: pd.DataFrame, split: str = "val") -> pd.DataFrame:
    """``step``, ``value`` of ``metric`` for one run (empty when the run did not record it)."""
    if metric in EVAL_METRICS:
        rows = evals[evals["split"] == split].sort_values("step")
        return pd.DataFrame({"step": rows["step"].to_numpy(), "value": rows[metric].astype(float).to_numpy()})
    if metric in NETWORK_METRICS:
        if network.empty or metric not in network:
            return pd.DataFrame({"step": [], "value": []})
        rows = network.sort_values("step")
        return pd.DataFrame({"step": rows["step"].to_numpy(), "value": rows[metric].astype(float).to_numpy()})
    known = ", ".join((*EVAL_METRICS, *NETWORK_METRICS))
    raise ValueError(f"unknown metric {metric!r}; choose from {known}")


def smooth(values: Iterable[float], weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average with weight ``weight`` in [0, 1), debiased
    so the first points are not pulled towards 0; NaN values stay NaN and are skipped."""
    values = np.asarray(list(values), dtype=float)
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight {weight}: must be in [0, 1)")
    out = np.full_like(values, np.nan)
    last, seen = 0.0, 0
    for index, value in enumerate(values):
        if not math.isfinite(value):
            continue
        last = last * weight + (1 - weight) * value
        seen += 1
        out[index] = last / (1 - weight**seen)
    return out


def config_group(row: dict | pd.Series, keys: Sequence[str]) -> str:
    """``method=itop · density=0.05`` for ``keys`` of a run table row (density as requested)."""
    parts = []
    for key in keys:
        value = row.get(key)
        if key == "density":
            value = f"{requested_density(value):g}" if value is not None else "?"
        parts.append(f"{key}={value}")
    return " · ".join(parts)


def group_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; 0 for one run) and count of ``value`` per ``group`` and ``step``
    (``curves``: :data:`CURVE_COLUMNS`)."""
    if curves.empty:
        return pd.DataFrame(columns=list(GROUP_COLUMNS))
    grouped = curves.dropna(subset=["value"]).groupby(["group", "step"])["value"]
    frame = grouped.agg(mean="mean", std="std", n="count").reset_index()
    frame["std"] = frame["std"].fillna(0.0)
    return frame[list(GROUP_COLUMNS)]


PARALLEL_COLUMNS = ("run", "density", "method", "method_code", "final_distance", "final_accuracy")
"""Columns of :func:`parallel_table`."""


def parallel_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per run of :func:`analysis.correlation.run_points`, with ``method_code`` (the method's
    index in name order) for a parallel-coordinates axis."""
    frame = points.copy()
    methods = sorted(frame["method"].dropna().astype(str).unique())
    frame["method"] = frame["method"].fillna("?").astype(str)
    frame["method_code"] = frame["method"].map({m: i for i, m in enumerate(methods)}).fillna(-1).astype(int)
    frame["run"] = frame["label"]
    return frame[list(PARALLEL_COLUMNS)].reset_index(drop=True)
