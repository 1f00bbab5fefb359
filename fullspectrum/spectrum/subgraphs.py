"""Nested left-regular subgraphs of a layer graph (SPEC §3, FS23's "IMDB").

An irregular bipartite graph is split by input-unit degree: class ``c`` holds
the ``n_c`` live input units of degree ``d_c`` and every edge leaving them, so
it is ``d_c``-left-regular. FS23 average the Ramanujan gap of the qualifying
classes, each scaled by a size factor ``f_c``, into ``delta_r_imdb``; the same
average of weighted gaps is ``lambda_imsg``. These classes are the "extracted
regular subgraphs" the app draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fullspectrum.spectrum.classes import ClassTable, class_table
from fullspectrum.spectrum.graph import LayerGraph, build_layer_graph
from fullspectrum.spectrum.metrics import NAN, check_convention, nan_mean
from fullspectrum.spectrum.plan import LayerRequest, LayerTops, layer_tops
from fullspectrum.spectrum.threads import one_blas_thread


@dataclass(frozen=True)
class DegreeClass:
    """One left-regular subgraph: the live input units of one degree."""

    d_c: int
    """Degree shared by every input unit of the class."""
    n_c: int
    """Number of input units in the class (equal to ``l_c``)."""
    l_c: int
    """Input (left) units of the class subgraph."""
    r_c: int
    """Output (right) units reached by the class (isolated ones dropped)."""
    edges: int
    """Edges of the class subgraph (``n_c * d_c``)."""
    d_right: float
    """Mean right degree ``edges / r_c``."""
    sigma2: float
    """Second singular value of the class biadjacency."""
    omega2: float
    """Second singular value of the weighted class biadjacency (NaN without weights)."""
    delta_r_c: float
    """Ramanujan gap of the class subgraph (SPEC §2 formula)."""
    lambda_c: float
    """Weighted spectral gap ``omega1 - omega2`` of the class (NaN without weights)."""
    f_c: float
    """Size factor ``max(l, r) / (l + r - 1)``."""
    qualifies: bool
    """Whether the class enters ``delta_r_imdb`` under the convention used."""
    left_units: tuple[int, ...]
    """Input units of the class, in the layer's original (flattened) numbering."""
    right_units: tuple[int, ...]
    """Output units of the class, in the layer's original numbering."""


def degree_classes(
    graph: LayerGraph, convention: str = "fs23", *, qualifying_only: bool = False
) -> list[DegreeClass]:
    """Every degree class of ``graph``, by increasing degree.

    With ``qualifying_only`` the spectra of classes that do not qualify are not
    computed (NaN): the iterative means never read them, and at low density the
    degree-1 and degree-2 classes hold most input units.
    """
    if graph.edges == 0:
        return []
    table = class_table(graph, convention)
    chosen = table.qualifies if qualifying_only else np.ones(table.degrees.size, dtype=bool)
    tops = layer_tops([LayerRequest(graph, table, chosen)])[0]
    delta_r_c, lambda_c = class_gaps(table, tops)
    # Units of each class in the layer's original numbering, grouped by class.
    column_order = np.argsort(table.column_class, kind="stable")
    column_bounds = np.concatenate([[0], np.cumsum(table.sizes)])
    row_bounds = np.concatenate([[0], np.cumsum(table.right_sizes)])
    left_units = graph.left_index[column_order].tolist()
    right_units = graph.right_index[table.class_rows].tolist()
    d_right, f_c = table.d_right, table.size_factor
    return [
        DegreeClass(
            d_c=int(table.degrees[c]),
            n_c=int(table.sizes[c]),
            l_c=int(table.sizes[c]),
            r_c=int(table.right_sizes[c]),
            edges=int(table.sizes[c] * table.degrees[c]),
            d_right=float(d_right[c]),
            sigma2=float(tops.class_sigma[c, 1]),
            omega2=float(tops.class_omega[c, 1]),
            delta_r_c=float(delta_r_c[c]),
            lambda_c=float(lambda_c[c]),
            f_c=float(f_c[c]),
            qualifies=bool(table.qualifies[c]),
            left_units=tuple(left_units[column_bounds[c] : column_bounds[c + 1]]),
            right_units=tuple(right_units[row_bounds[c] : row_bounds[c + 1]]),
        )
        for c in range(table.degrees.size)
    ]


def class_gaps(table: ClassTable, tops: LayerTops) -> tuple[np.ndarray, np.ndarray]:
    """``(delta_r_c, lambda_c)`` of every class (NaN where its spectra were not computed)."""
    sigma2 = tops.class_sigma[:, 1]
    # Ramanujan gap of each class (SPEC §2); d_c >= 1 and d_right >= 1 by construction.
    delta_r_c = np.sqrt(table.degrees - 1.0) + np.sqrt(table.d_right - 1.0) - sigma2
    lambda_c = tops.class_omega[:, 0] - tops.class_omega[:, 1]
    return delta_r_c, lambda_c


def class_means(table: ClassTable, tops: LayerTops, convention: str = "fs23") -> tuple[float, float]:
    """``(delta_r_imdb, lambda_imsg)``: means over qualifying classes (FS23 scales by ``f_c``)."""
    delta_r_c, lambda_c = class_gaps(table, tops)
    chosen = table.qualifies
    factor = table.size_factor[chosen] if convention != "r23" else 1.0
    return _finite_mean(factor * delta_r_c[chosen]), _finite_mean(factor * lambda_c[chosen])


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else NAN


def iterative_means(classes: list[DegreeClass], convention: str = "fs23") -> tuple[float, float]:
    """``(delta_r_imdb, lambda_imsg)`` of a list of classes (as ``regular_subgraphs`` returns)."""
    chosen = [c for c in classes if c.qualifies]
    if convention == "r23":
        return nan_mean([c.delta_r_c for c in chosen]), nan_mean([c.lambda_c for c in chosen])
    return (
        nan_mean([c.f_c * c.delta_r_c for c in chosen]),
        nan_mean([c.f_c * c.lambda_c for c in chosen]),
    )


@one_blas_thread
def regular_subgraphs(mask, weight=None, *, convention: str = "fs23") -> list[DegreeClass]:
    """The degree classes (extracted regular subgraphs) of one layer's mask (SPEC §3)."""
    check_convention(convention)
    return degree_classes(build_layer_graph(mask, weight), convention)
