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

from fullspectrum.spectrum.graph import LayerGraph, build_layer_graph
from fullspectrum.spectrum.metrics import (
    NAN,
    check_convention,
    nan_mean,
    ramanujan_gap,
    size_factor,
    top_two,
)
from fullspectrum.spectrum.singular import batched_top_two
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


_DENSE_LAYER_ENTRIES = 1 << 18


def class_qualifies(d_c: int, n_c: int, d_right: float, convention: str) -> bool:
    """SPEC §3: FS23 needs ``d_c>=3, n_c>=2, d_right>1``; R23 ``d_c>=3, n_c>=3, d_right>=3``."""
    if convention == "r23":
        return d_c >= 3 and n_c >= 3 and d_right >= 3
    return d_c >= 3 and n_c >= 2 and d_right > 1


def degree_classes(
    graph: LayerGraph, convention: str = "fs23", *, qualifying_only: bool = False
) -> list[DegreeClass]:
    """Every degree class of ``graph``, by increasing degree.

    With ``qualifying_only`` the spectra of classes that do not qualify are not
    computed (NaN): the iterative means never read them, and at low density the
    degree-1 and degree-2 classes hold most input units.
    """
    # (n_right, n_left); columns = input units. Small layers are sliced densely: sparse
    # slicing costs more than the arithmetic there, and snapshots of small nets are frequent.
    shape = graph.biadjacency.shape
    small = shape[0] * shape[1] <= _DENSE_LAYER_ENTRIES
    convert = (lambda m: m.toarray()) if small else (lambda m: m.tocsc())
    biadjacency = convert(graph.biadjacency)
    weighted = convert(graph.weighted) if graph.weighted is not None else None
    degrees = np.asarray((biadjacency != 0).sum(axis=0)).ravel().astype(np.int64)
    geometry = []  # (degree, columns, rows, qualifies) per class
    matrices: list = []  # class biadjacencies (and weighted ones) whose top two values are needed
    for degree in np.unique(degrees):
        columns = np.flatnonzero(degrees == degree)
        sub = biadjacency[:, columns]
        rows = np.flatnonzero(np.asarray((sub != 0).sum(axis=1)).ravel())
        d_right = columns.size * degree / rows.size
        qualifies = class_qualifies(int(degree), int(columns.size), d_right, convention)
        geometry.append((int(degree), columns, rows, qualifies))
        if qualifies or not qualifying_only:
            matrices.append(sub[rows, :])
            if weighted is not None:
                matrices.append(weighted[:, columns][rows, :])
    # Small layers: one batched LAPACK call for all classes instead of one call each.
    tops = iter(batched_top_two(matrices) if small else [top_two(m) for m in matrices])
    classes = []
    for degree, columns, rows, qualifies in geometry:
        n_c, r_c = int(columns.size), int(rows.size)
        sigma2 = omega1 = omega2 = NAN
        if qualifies or not qualifying_only:
            sigma2 = next(tops)[1]
            if weighted is not None:
                omega1, omega2 = next(tops)
        classes.append(
            DegreeClass(
                d_c=degree,
                n_c=n_c,
                l_c=n_c,
                r_c=r_c,
                edges=n_c * degree,
                d_right=n_c * degree / r_c,
                sigma2=sigma2,
                omega2=omega2,
                delta_r_c=ramanujan_gap(float(degree), n_c * degree / r_c, sigma2),
                lambda_c=omega1 - omega2,
                f_c=size_factor(n_c, r_c),
                qualifies=qualifies,
                left_units=tuple(int(i) for i in graph.left_index[columns]),
                right_units=tuple(int(i) for i in graph.right_index[rows]),
            )
        )
    return classes


def iterative_means(classes: list[DegreeClass], convention: str = "fs23") -> tuple[float, float]:
    """``(delta_r_imdb, lambda_imsg)``: means over qualifying classes (FS23 scales by ``f_c``)."""
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
