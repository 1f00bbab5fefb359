"""Two masks seen through the whole-network views, side by side, for Compare masks.

The rolled comparison (:mod:`analysis.compare`) looks at each layer alone. Here the two masks'
unrolled views (MGE24, :mod:`analysis.unrolled_view`: effective paths and topometrics) and their
empirical NTK spectral summaries (G25, :mod:`analysis.graphon_studies`) are put in one table each,
A beside B, with B − A.

>>> import pandas as pd
>>> a = pd.DataFrame({"metric": ["edges"], "value": [10.0], "normalised": [0.1], "meaning": ["kept edges"]})
>>> b = a.assign(value=[12.0])
>>> metrics_side_by_side(a, b)[["metric", "A", "B", "B − A"]].values.tolist()
[['edges', 10.0, 12.0, 2.0]]
"""

from __future__ import annotations

import pandas as pd

from analysis.graphon_studies import summary_row
from fullspectrum.ntk import NTKSpectrum

METRIC_COLUMNS = ("metric", "A", "B", "B − A", "meaning")
LAYER_COLUMNS = ("layer", "kept A", "effective A", "share A", "kept B", "effective B", "share B")


def metrics_side_by_side(metrics_a: pd.DataFrame, metrics_b: pd.DataFrame) -> pd.DataFrame:
    """``UnrolledView.metrics`` of two masks joined on the metric (:data:`METRIC_COLUMNS`)."""
    joined = metrics_a[["metric", "value", "meaning"]].merge(
        metrics_b[["metric", "value"]], on="metric", how="outer", suffixes=(" A", " B"), sort=False
    )
    table = pd.DataFrame(
        {
            "metric": joined["metric"],
            "A": joined["value A"],
            "B": joined["value B"],
            "B − A": joined["value B"] - joined["value A"],
            "meaning": joined["meaning"].fillna(""),
        }
    )
    return table[list(METRIC_COLUMNS)]


def layers_side_by_side(layers_a: pd.DataFrame, layers_b: pd.DataFrame) -> pd.DataFrame:
    """Per layer, each mask's kept and effective weights and the effective share (:data:`LAYER_COLUMNS`),
    in the networks' own layer order (an outer merge alone would sort the names):

    >>> a = pd.DataFrame({"layer": ["features.3", "features.10", "classifier"], "kept": [4, 2, 1], "effective": [2, 2, 1]})
    >>> list(layers_side_by_side(a, a.iloc[::-1])["layer"])
    ['features.3', 'features.10', 'classifier']
    """
    joined = layers_a[["layer", "kept", "effective"]].merge(
        layers_b[["layer", "kept", "effective"]], on="layer", how="outer", suffixes=(" A", " B"), sort=False
    )
    order = list(dict.fromkeys([*layers_a["layer"], *layers_b["layer"]]))
    joined = joined.set_index("layer").loc[order].reset_index()
    for side in ("A", "B"):
        kept = joined[f"kept {side}"]
        joined[f"share {side}"] = (joined[f"effective {side}"] / kept).where(kept > 0)
    return joined[list(LAYER_COLUMNS)]


def ntk_side_by_side(spectrum_a: NTKSpectrum, spectrum_b: NTKSpectrum) -> pd.DataFrame:
    """The two spectral summaries as rows ``A`` and ``B``."""
    return pd.DataFrame([summary_row("A", spectrum_a), summary_row("B", spectrum_b)])
