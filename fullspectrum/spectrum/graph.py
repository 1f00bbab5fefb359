"""A layer's mask as a bipartite graph (SPEC §1, the rolled encoding).

``B = M.reshape(out, -1)``: rows are output units (right side), columns are
input units (left side; for a conv, one kernel tap of one input channel).
Dead units (degree 0) are removed before any statistic, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fullspectrum.errors import MaskError

_NUMPY_FLOATS = ("torch.float16", "torch.float32", "torch.float64")
_CHUNK_ENTRIES = 1 << 20
"""Entries of a layer handled at once where a whole-layer temporary would be a large layer's peak."""
_COMPRESS_SHARE = 1 / 3
"""A slice of a layer with at least this share of its entries kept is read by ``np.compress``
(measured break-even against reading the positions of its edges: 0.3–0.4)."""


def row_slices(indptr: np.ndarray, edges_each: int = _CHUNK_ENTRIES) -> list[tuple[int, int]]:
    """Consecutive ``(first, stop)`` row ranges of a CSR ``indptr`` covering every row, each with about
    ``edges_each`` edges (at least one row): the unit in which whole-graph passes bound their
    temporaries."""
    n_rows = indptr.size - 1
    if n_rows <= 0:
        return []
    targets = np.arange(edges_each, int(indptr[-1]), edges_each)
    cuts = np.unique(np.searchsorted(indptr, targets, side="left").clip(1, n_rows))
    bounds = [0, *cuts.tolist(), n_rows]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The integers of ``[starts[i], ends[i])`` for every ``i``, concatenated, without a Python loop."""
    lengths = ends - starts
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(lengths.sum())) + offsets


def column_counts(indices: np.ndarray, n_columns: int, edges_each: int = _CHUNK_ENTRIES) -> np.ndarray:
    """``np.bincount(indices, minlength=n_columns)`` a slice at a time (``bincount`` widens its whole
    input to int64 first)."""
    counts = np.zeros(n_columns, dtype=np.int64)
    for start in range(0, indices.size, edges_each):
        counts += np.bincount(indices[start : start + edges_each], minlength=n_columns)
    return counts


def to_numpy(tensor, *, name: str) -> np.ndarray:
    """A torch tensor or array-like of real numbers as a numpy array (on the CPU).

    Floating-point tensors numpy cannot hold (bfloat16, float8) become float32, which holds them
    exactly (no float64 copy of a whole layer: the engine casts only the kept weights); complex
    values are refused (a layer's weights and masks are real numbers).
    """
    if hasattr(tensor, "detach"):  # torch tensor, any device
        tensor = tensor.detach().cpu()
        if tensor.is_complex():
            raise MaskError(
                f"{name}: holds complex values ({tensor.dtype}); weights and masks are real numbers"
            )
        if tensor.is_floating_point() and str(tensor.dtype) not in _NUMPY_FLOATS:
            tensor = tensor.float()  # numpy lacks bfloat16 and float8; float32 holds both exactly
        tensor = tensor.numpy()
    array = np.asarray(tensor)
    if array.dtype == object:
        raise MaskError(f"{name}: not a numeric tensor")
    if np.iscomplexobj(array):
        raise MaskError(f"{name}: holds complex values ({array.dtype}); weights and masks are real numbers")
    return array


def check_mask(mask, *, name: str = "mask") -> np.ndarray:
    """Validate a 0/1 mask of shape ``(out, in, *kernel)`` and return it as bool."""
    array = to_numpy(mask, name=name)
    if array.ndim < 2:
        raise MaskError(
            f"{name}: a layer mask needs shape (out, in) or (out, in, *kernel), got {array.shape}"
        )
    if array.size == 0:
        raise MaskError(
            f"{name}: empty layer of shape {array.shape}: no units on one side, so no graph "
            "(a layer needs at least one output and one input unit)"
        )
    if array.dtype == bool:
        return array
    if not np.all(np.isfinite(array)) or not np.all((array == 0) | (array == 1)):
        bad = array[~((array == 0) | (array == 1))].ravel()[:3]
        raise MaskError(f"{name}: mask is not binary (found values such as {bad.tolist()})")
    return array != 0


def check_weight(weight, mask_shape: tuple[int, ...], *, name: str = "weight") -> np.ndarray:
    """Validate a weight tensor against its mask's shape; NaN/Inf, complex and bool weights are errors.

    Returns the weights as a numpy array in their own real dtype (no float64 copy of a whole
    layer: the engine casts only the kept weights).
    """
    array = to_numpy(weight, name=name)
    if array.dtype == bool:
        raise MaskError(
            f"{name}: weight is a bool tensor, which is a mask, not weights; give masks under 'masks' "
            "or as '<layer>.weight_mask' beside real-valued weights"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise MaskError(f"{name}: not a numeric tensor ({array.dtype})")
    if array.shape != tuple(mask_shape):
        raise MaskError(f"{name}: weight shape {array.shape} differs from its mask shape {tuple(mask_shape)}")
    if not all(np.isfinite(chunk).all() for chunk in _row_chunks(array.reshape(array.shape[0], -1))):
        raise MaskError(f"{name}: weight holds NaN or Inf values")
    return array


def _row_chunks(matrix: np.ndarray):
    """Consecutive row slices of a 2-D array of about :data:`_CHUNK_ENTRIES` entries each (views)."""
    step = max(1, _CHUNK_ENTRIES // max(1, matrix.shape[1]))
    return (matrix[start : start + step] for start in range(0, matrix.shape[0], step))


@dataclass(frozen=True)
class LayerGraph:
    """The live part of a layer's bipartite graph.

    ``biadjacency`` is the 0/1 matrix of live output units (rows) by live input
    units (columns), in CSR form; ``kept_weights`` holds ``|W|`` at each of its
    edges, in CSR order (zeros included: a kept weight may be exactly 0), or is
    None. ``left_index``/``right_index`` map live units to the layer's original
    numbering.
    """

    biadjacency: sp.csr_matrix  # (n_right, n_left) float64 0/1
    kept_weights: np.ndarray | None  # (edges,) float64 >= 0, aligned with biadjacency.indices
    left_index: np.ndarray  # original input-unit indices of the live columns
    right_index: np.ndarray  # original output-unit indices of the live rows
    n_left_total: int  # in * prod(kernel)
    n_right_total: int  # out
    dead_in_channels: int

    @property
    def edges(self) -> int:
        return int(self.biadjacency.nnz)

    @property
    def edge_rows(self) -> np.ndarray:
        """Row (live output unit) of every edge, in CSR order."""
        return np.repeat(np.arange(self.biadjacency.shape[0]), np.diff(self.biadjacency.indptr))

    @property
    def weighted(self) -> sp.csr_matrix | None:
        """``|W ⊙ M|`` on the live rows and columns, exact zeros dropped (None without weights)."""
        if self.kept_weights is None:
            return None
        matrix = sp.csr_matrix(
            (self.kept_weights, self.biadjacency.indices, self.biadjacency.indptr),
            shape=self.biadjacency.shape,
            copy=True,  # eliminate_zeros works in place; the biadjacency's arrays must stay whole
        )
        matrix.eliminate_zeros()
        return matrix


def _kept_along(flat: np.ndarray, axis: int) -> np.ndarray:
    """``np.count_nonzero(flat, axis=axis)`` of a 2-D bool array, summed as bytes into uint16 where
    the count fits (numpy reduces those some five times faster)."""
    narrow = np.uint16 if flat.shape[axis] < 2**16 else np.int64
    return flat.view(np.uint8).sum(axis=axis, dtype=narrow).astype(np.int64)


def build_layer_graph(mask, weight=None, *, name: str = "layer") -> LayerGraph:
    """Flatten ``mask`` (and ``weight``) and keep the live units (SPEC §1).

    Degrees come from counts along each axis; the CSR arrays (int32 column indices where they
    fit) are filled a slice of rows at a time, so no dense copy of the live block and no
    whole-layer temporary per edge is made: a large layer holds its 0/1 values, its indices and
    its kept weights (about 20 bytes per edge) and a slice's work.
    """
    mask_bool = check_mask(mask, name=f"{name} mask")
    out_units = mask_bool.shape[0]
    flat = mask_bool.reshape(out_units, -1)  # (out, in*prod(kernel))
    n_columns = flat.shape[1]
    row_degree = _kept_along(flat, axis=1)
    column_degree = _kept_along(flat, axis=0)
    in_channels = mask_bool.shape[1]
    taps_alive = column_degree.reshape(in_channels, -1).any(axis=1)
    dead_in_channels = int(in_channels - taps_alive.sum())
    w = None
    if weight is not None:
        w = check_weight(weight, mask_bool.shape, name=f"{name} weight").reshape(out_units, -1)

    right_index = np.flatnonzero(row_degree)
    left_index = np.flatnonzero(column_degree)
    index_type = np.int32 if max(n_columns, int(row_degree.sum())) < 2**31 else np.int64
    column_of = (np.cumsum(column_degree > 0) - 1).astype(index_type)  # original column -> live column
    indptr = np.concatenate([[0], np.cumsum(row_degree[right_index])]).astype(index_type)
    row_start = np.concatenate([[0], np.cumsum(row_degree)])  # first edge of each row, dead rows too
    edges = int(indptr[-1])
    indices = np.empty(edges, dtype=index_type)
    kept_weights = None if w is None else np.empty(edges)
    step = max(1, _CHUNK_ENTRIES // max(1, n_columns))
    # A slice of rows at a time, its edges in row-major (CSR) order: a dense slice by ``np.compress``
    # with each row's live column numbers repeated (it reads them all), a sparse one through the
    # positions of its edges (several times faster either way than ``np.nonzero``).
    column_tile = None
    for first in range(0, out_units, step):
        picks = flat[first : first + step].reshape(-1)
        start, stop = int(row_start[first]), int(row_start[min(first + step, out_units)])
        kept = None if w is None else kept_weights[start:stop]
        weights = None if w is None else w[first : first + step].reshape(-1)
        if stop - start >= _COMPRESS_SHARE * picks.size:
            if column_tile is None:
                column_tile = np.tile(column_of, min(step, out_units))
            np.compress(picks, column_tile[: picks.size], out=indices[start:stop])
            if kept is not None:
                kept[:] = np.compress(picks, weights)  # float64, kept weights only
        else:
            positions = np.flatnonzero(picks)
            indices[start:stop] = column_of[positions % n_columns]
            if kept is not None:
                kept[:] = weights.take(positions)
        if kept is not None:
            np.abs(kept, out=kept)
    biadjacency = sp.csr_matrix((np.ones(edges), indices, indptr), shape=(right_index.size, left_index.size))
    return LayerGraph(
        biadjacency=biadjacency,
        kept_weights=kept_weights,
        left_index=left_index,
        right_index=right_index,
        n_left_total=int(n_columns),
        n_right_total=int(out_units),
        dead_in_channels=dead_in_channels,
    )
