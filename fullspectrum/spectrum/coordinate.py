"""The full-spectrum coordinate and its movement (SPEC §4, FS23).

Per layer, ``v = (delta_r, lambda_w, delta_r_imdb)`` is the plotted 3-D point;
``u = (delta_r, lambda_w, delta_r_imdb, lambda_imsg)`` with non-finite entries
set to 0 is the scoring vector, and ``||u(t) - u(0)||`` is the layer's
ℓ2-moving distance. FS23 report that the final distance tracks final accuracy
under ITOP random growth; across densities, compare with density alone (MGE24).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where frames are built: the spectra worker never needs it
    import pandas as pd

PLOT_AXES: tuple[str, str, str] = ("delta_r", "lambda_w", "delta_r_imdb")
"""The plotted 3-D coordinate ``v`` (SPEC §4), in axis order."""
VECTOR_AXES: tuple[str, str, str, str] = ("delta_r", "lambda_w", "delta_r_imdb", "lambda_imsg")
"""The four components of the scoring vector ``u`` (SPEC §4), in order."""
COUNT_FIELDS = ("n_left", "n_right", "dead_left", "dead_right", "dead_in_channels", "edges", "n_classes")


def _get(source, name: str) -> float:
    pandas = sys.modules.get("pandas")  # a Series exists only once pandas is imported
    by_key = isinstance(source, Mapping) or (pandas is not None and isinstance(source, pandas.Series))
    value = source[name] if by_key else getattr(source, name)
    return float(value)


def full_spectrum_vector(source) -> np.ndarray:
    """The 4-D scoring vector ``u`` with non-finite entries set to 0 (FS23's code did the same).

    ``source`` is a ``LayerSpectrum``, a mapping or a table row with those fields.
    """
    vector = np.array([_get(source, axis) for axis in VECTOR_AXES])
    vector[~np.isfinite(vector)] = 0.0
    return vector


def moving_distance(current, start) -> float:
    """ℓ2-moving distance ``||u(t) - u(0)||`` between two layer states (or 4-vectors)."""
    u_t = np.asarray(current, dtype=float) if _is_vector(current) else full_spectrum_vector(current)
    u_0 = np.asarray(start, dtype=float) if _is_vector(start) else full_spectrum_vector(start)
    u_t = np.where(np.isfinite(u_t), u_t, 0.0)
    u_0 = np.where(np.isfinite(u_0), u_0, 0.0)
    return float(np.linalg.norm(u_t - u_0))


def _is_vector(value) -> bool:
    return isinstance(value, np.ndarray | list | tuple)


def network_summary(layers: pd.DataFrame) -> pd.Series:
    """Network-level values of a per-layer table (SPEC §4).

    Counts are summed, ``density`` is total edges over total weights, the
    moving distance (if present) and every other metric are the NaN-skipping
    unweighted mean over layers; ``in_regime`` becomes the fraction of layers in
    the regime.
    """
    import pandas as pd

    summary: dict[str, float] = {}
    # Every unit is live or dead, so a layer's weight count is recoverable even when it collapsed.
    total_weights = (
        (layers["n_left"] + layers["dead_left"]) * (layers["n_right"] + layers["dead_right"])
    ).sum()
    for column in layers.columns:
        if column in COUNT_FIELDS:
            summary[column] = int(layers[column].sum())
        elif column == "density":
            summary[column] = float(layers["edges"].sum() / total_weights) if total_weights else 0.0
        elif column == "in_regime":
            summary[column] = float(layers[column].astype(float).mean())
        elif pd.api.types.is_numeric_dtype(layers[column]) and not pd.api.types.is_bool_dtype(layers[column]):
            summary[column] = float(layers[column].astype(float).mean(skipna=True))
    return pd.Series(summary)


def network_summary_by_step(layers: pd.DataFrame) -> pd.DataFrame:
    """:func:`network_summary` of every snapshot of a run's ``layers`` table, one row per step.

    ``layers`` has ``step``, ``layer`` and per-layer values (the run store's
    ``LAYER_COLUMNS``); the result has ``step`` first, then the network-level
    values, ordered by step (an empty table gives an empty frame).

    >>> import pandas as pd
    >>> units = {"n_left": 4, "n_right": 2, "dead_left": 0, "dead_right": 0, "edges": 4, "density": 0.5}
    >>> layers = pd.DataFrame(
    ...     {"step": [0, 0, 5], "layer": ["fc1", "fc2", "fc1"], "delta_r": [1.0, 3.0, 4.0], **units}
    ... )
    >>> network_summary_by_step(layers)[["step", "delta_r", "density"]].to_dict("records")
    [{'step': 0, 'delta_r': 2.0, 'density': 0.5}, {'step': 5, 'delta_r': 4.0, 'density': 0.5}]
    """
    import pandas as pd

    rows = [
        {"step": int(step), **network_summary(group.drop(columns=["step", "layer"])).to_dict()}
        for step, group in layers.groupby("step", sort=True)
    ]
    return pd.DataFrame(rows)
