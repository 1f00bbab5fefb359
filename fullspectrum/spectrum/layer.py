"""Per-layer full-spectrum metrics (SPEC §1–3): ``layer_spectrum``.

Implements the Ramanujan gap ``delta_r`` and canonical gap ``delta_s`` of
Hoang et al., ICLR 2023 (R23), and the weighted spectral gap ``lambda_w`` and
iterative means ``delta_r_imdb`` / ``lambda_imsg`` of Hoang et al., NeurIPS 2023
(FS23), on the rolled bipartite encoding of a layer's mask.

A dense ``(3, 4)`` mask is the complete bipartite graph K(4, 3): ``sigma1 = sqrt(3 * 4)``,
``sigma2 = 0`` (to rounding), each of the 4 input units has fan-out 3 and each of the 3 output
units fan-in 4, so ``delta_r = sqrt(3 - 1) + sqrt(4 - 1)``:

>>> import numpy as np
>>> s = layer_spectrum(np.ones((3, 4)))
>>> round(s.sigma1, 6), abs(s.sigma2) < 1e-12, s.d_left, s.d_right
(3.464102, True, 3.0, 4.0)
>>> round(s.delta_r, 6), round(float(np.sqrt(2) + np.sqrt(3)), 6)
(3.146264, 3.146264)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from fullspectrum.spectrum.backends import backend_for, device_of
from fullspectrum.spectrum.classes import class_table
from fullspectrum.spectrum.graph import build_layer_graph, check_mask
from fullspectrum.spectrum.metrics import NAN, canonical_gap, check_convention, ramanujan_gap
from fullspectrum.spectrum.plan import LayerRequest, LayerTops, layer_tops
from fullspectrum.spectrum.singular import matrix_singular_values
from fullspectrum.spectrum.subgraphs import class_means
from fullspectrum.spectrum.threads import one_blas_thread


@dataclass(frozen=True)
class LayerSpectrum:
    """The full-spectrum description of one layer (SPEC §1–3). Undefined values are NaN."""

    n_left: int
    """Live input units (columns of ``M.reshape(out, -1)`` with an edge)."""
    n_right: int
    """Live output units."""
    dead_left: int
    """Input units (kernel taps) with no edge, removed before any statistic."""
    dead_right: int
    """Output units (neurons / output channels) with no edge."""
    dead_in_channels: int
    """Input channels none of whose taps has an edge (``dead_left`` for Linear)."""
    edges: int
    """Kept weights ``E``."""
    density: float
    """``E / M.numel()``."""
    d_left: float
    """Mean fan-out of a live input unit, ``E / n_left``."""
    d_right: float
    """Mean fan-in of a live output unit, ``E / n_right``."""
    sigma1: float
    """Largest singular value of the live 0/1 biadjacency (FS23's trivial eigenvalue)."""
    sigma2: float
    """Second largest singular value (with multiplicity); 0 with one live unit on a side."""
    omega1: float
    """Largest singular value of the weighted ``|W ⊙ M|`` (NaN without weights)."""
    omega2: float
    """Second largest weighted singular value (NaN without weights)."""
    delta_r: float
    """Ramanujan gap ``sqrt(d_left-1) + sqrt(d_right-1) - sigma2``."""
    delta_s: float
    """Canonical gap ``2 sqrt(sigma1-1) - sigma2``."""
    lambda_w: float
    """Weighted spectral gap ``omega1 - omega2``."""
    delta_r_imdb: float
    """Mean (``f_c``-scaled under FS23) Ramanujan gap of qualifying degree classes."""
    lambda_imsg: float
    """Mean (``f_c``-scaled under FS23) weighted gap of qualifying degree classes."""
    n_classes: int
    """Number of qualifying degree classes."""
    in_regime: bool
    """``d_left >= 3 and d_right >= 3``: the Ramanujan reading applies."""

    def as_dict(self) -> dict:
        return asdict(self)


SPECTRUM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LayerSpectrum))
"""Column names of every ``LayerSpectrum`` field, in order (tables and exports use them)."""


@one_blas_thread
def layer_spectrum(
    mask, weight=None, *, convention: str = "fs23", name: str = "layer", device=None
) -> LayerSpectrum:
    """Full-spectrum metrics of one layer.

    ``mask`` and ``weight`` are torch tensors or numpy arrays of shape
    ``(out, in)`` or ``(out, in, *kernel)``. A non-binary mask, a weight of
    another shape, or NaN/Inf weights raise :class:`fullspectrum.errors.MaskError`
    naming ``name``. An all-zero (collapsed) mask is not an error: it gives the
    values SPEC §2 lists. The layer's graphs (full graph and qualifying degree
    classes, mask and weights) are solved together. ``device`` (``"cpu"``,
    ``"cuda"``, ``"cuda:N"``; default: that of CUDA inputs, else the CPU) says
    where the arithmetic runs; the values agree across devices to 1e-9.
    """
    return layer_spectra([(mask, weight, name)], convention=convention, device=device)[0]


@one_blas_thread
def layer_spectra(layers, *, convention: str = "fs23", device=None) -> list[LayerSpectrum]:
    """``layer_spectrum`` of many layers, their graphs solved in batches.

    ``layers`` is an iterable of ``(mask, weight_or_None, name)``. The values are
    those of ``layer_spectrum`` layer by layer; batching only shares the work
    (one component analysis, one lockstep Lanczos run for all large components
    of a batch). Small layers are batched together up to the backend's
    ``batch_edges`` (on a CPU, larger batches stop paying: the work is then the
    arithmetic itself); a large layer is its own batch. ``device`` as for
    ``layer_spectrum`` (default: that of the first CUDA tensor given).
    """
    check_convention(convention)
    layers = list(layers)
    if device is None:
        device = device_of(*(t for mask, weight, _ in layers for t in (mask, weight)))
    backend = backend_for(device)
    limit = getattr(backend, "batch_edges", _BATCH_EDGES)
    spectra: list[LayerSpectrum] = []
    batch: list[LayerRequest] = []
    slots: list[int] = []  # where each batched request's result goes
    edges = 0
    for mask, weight, name in layers:
        graph = build_layer_graph(mask, weight, name=name)
        if graph.edges == 0:
            spectra.append(_collapsed(graph.n_left_total, graph.n_right_total, graph.dead_in_channels))
            continue
        if batch and edges + graph.edges > limit:
            _solve(batch, slots, spectra, backend, convention)
            batch, slots, edges = [], [], 0
        table = class_table(graph, convention)
        batch.append(LayerRequest(graph, table, table.qualifies))
        slots.append(len(spectra))
        spectra.append(None)  # filled when its batch is solved
        edges += graph.edges
    if batch:
        _solve(batch, slots, spectra, backend, convention)
    return spectra


_BATCH_EDGES = 1 << 17
"""Kept weights per batch for a backend that does not say (see the backends' ``batch_edges``)."""


def _solve(batch: list[LayerRequest], slots: list[int], spectra: list, backend, convention: str) -> None:
    for slot, request, tops in zip(slots, batch, layer_tops(batch, backend)):
        spectra[slot] = _assemble(request, tops, convention)


def _assemble(request: LayerRequest, tops: LayerTops, convention: str) -> LayerSpectrum:
    graph, table = request.graph, request.classes
    n_right, n_left = graph.biadjacency.shape
    edges = graph.edges
    d_left, d_right = edges / n_left, edges / n_right
    sigma1, sigma2 = (float(v) for v in tops.sigma)
    omega1, omega2 = (float(v) for v in tops.omega)
    in_regime = d_left >= 3 and d_right >= 3
    delta_r = ramanujan_gap(d_left, d_right, sigma2)
    delta_s = canonical_gap(sigma1, sigma2)
    if convention == "r23" and not in_regime:  # R23's tables leave these blank
        delta_r = delta_s = NAN
    delta_r_imdb, lambda_imsg = class_means(table, tops, convention)
    return LayerSpectrum(
        n_left=n_left,
        n_right=n_right,
        dead_left=graph.n_left_total - n_left,
        dead_right=graph.n_right_total - n_right,
        dead_in_channels=graph.dead_in_channels,
        edges=edges,
        density=edges / (graph.n_left_total * graph.n_right_total),
        d_left=d_left,
        d_right=d_right,
        sigma1=sigma1,
        sigma2=sigma2,
        omega1=omega1,
        omega2=omega2,
        delta_r=delta_r,
        delta_s=delta_s,
        lambda_w=omega1 - omega2,
        delta_r_imdb=delta_r_imdb,
        lambda_imsg=lambda_imsg,
        n_classes=int(table.qualifies.sum()),
        in_regime=in_regime,
    )


def _collapsed(n_left_total: int, n_right_total: int, dead_in_channels: int) -> LayerSpectrum:
    """SPEC §2: an all-zero mask has no live units and NaN for every other number."""
    return LayerSpectrum(
        n_left=0,
        n_right=0,
        dead_left=n_left_total,
        dead_right=n_right_total,
        dead_in_channels=dead_in_channels,
        edges=0,
        density=0.0,
        d_left=NAN,
        d_right=NAN,
        sigma1=NAN,
        sigma2=NAN,
        omega1=NAN,
        omega2=NAN,
        delta_r=NAN,
        delta_s=NAN,
        lambda_w=NAN,
        delta_r_imdb=NAN,
        lambda_imsg=NAN,
        n_classes=0,
        in_regime=False,
    )


@one_blas_thread
def top_singular_values(mask, weight=None, k: int = 10) -> np.ndarray:
    """The ``k`` largest singular values of the live mask (or of ``|W ⊙ M|`` if given).

    For the inspector's spectrum plot, next to the Ramanujan bound.
    """
    check_mask(mask)
    graph = build_layer_graph(mask, weight)
    matrix = graph.weighted if weight is not None else graph.biadjacency
    return matrix_singular_values(matrix, k)
