"""Connected components of a layer's bipartite graph, a slice of rows at a time.

The stack (``stack.py``) splits every sparse part into its components, since the top singular value
of a connected non-negative block is simple (Perron–Frobenius) and values repeated across components
must be kept. ``scipy.sparse.csgraph`` would copy the pattern twice, in float64 (24 bytes per kept
weight on an LLM layer); :func:`connected_parts` holds no per-edge array and numbers the components
exactly as csgraph does, which stays the fallback.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from fullspectrum.spectrum.graph import row_slices


def connected_parts(
    indptr: np.ndarray, indices: np.ndarray, n_cols: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """``(count, row labels, column labels)``: the connected components of the bipartite graph of a
    CSR pattern, numbered as ``scipy.sparse.csgraph.connected_components`` numbers them on the
    graph of rows then columns (by least row; columns without edges last, in order).

    Every row takes the least label of its columns' and every column that of its rows' (a slice of
    rows at a time, with pointer jumping between rows), until a pass changes no row: then each
    edge's two ends agree, so labels are constant on components, and each is its least row. That
    takes a few passes on a layer (its graph has a small diameter) and holds no per-edge array; a
    graph still changing after :data:`_LABEL_PASSES` passes (a long chain) goes to ``csgraph``.
    """
    n_rows = indptr.size - 1
    label_type = np.int32 if n_rows < 2**31 else np.int64
    if _dense_and_connected(indptr, indices, n_cols):
        return 1, np.zeros(n_rows, dtype=label_type), np.zeros(n_cols, dtype=np.int64)
    row_label = np.arange(n_rows, dtype=label_type)
    col_label = np.full(n_cols, n_rows, dtype=label_type)  # n_rows: no row seen yet
    slices = row_slices(indptr)
    row_degree = np.diff(indptr)
    for _ in range(_LABEL_PASSES):
        for first, stop in slices:
            edges = slice(indptr[first], indptr[stop])
            np.minimum.at(col_label, indices[edges], np.repeat(row_label[first:stop], row_degree[first:stop]))
        changed = False
        for first, stop in slices:
            live = first + np.flatnonzero(row_degree[first:stop])
            if live.size == 0:
                continue
            seen = col_label[indices[indptr[first] : indptr[stop]]]
            least = np.minimum.reduceat(seen, indptr[live] - indptr[first])
            lower = least < row_label[live]
            if lower.any():
                changed = True
                row_label[live[lower]] = least[lower]
        while True:  # pointer jumping: a row's label is a row of its component with a lower label
            jumped = row_label[row_label]
            if np.array_equal(jumped, row_label):
                break
            row_label, changed = jumped, True
        if not changed:
            break
    else:
        return _csgraph_parts(indptr, indices, n_cols)
    roots = row_label == np.arange(n_rows)
    number = np.cumsum(roots) - 1  # root row -> component, by least row
    count = int(roots.sum())
    isolated = col_label == n_rows
    column_number = np.empty(n_cols, dtype=np.int64)
    column_number[~isolated] = number[col_label[~isolated]]
    column_number[isolated] = count + np.arange(int(isolated.sum()))
    return count + int(isolated.sum()), number[row_label], column_number


def _dense_and_connected(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> bool:
    """Whether a dense pattern (a quarter of its entries or more, e.g. an LLM layer at 50%) is one
    component without a search: every row shares a column with its fullest row, every column has an edge."""
    n_rows = indptr.size - 1
    row_nnz = np.diff(indptr)
    if not n_rows or 4 * indices.size < n_rows * n_cols or row_nnz.min() == 0:
        return False
    fullest = int(np.argmax(row_nnz))
    reached = np.zeros(n_cols, dtype=bool)
    reached[indices[indptr[fullest] : indptr[fullest + 1]]] = True
    if not np.logical_or.reduceat(reached[indices], indptr[:-1]).all():  # some row misses the fullest
        return False
    used = np.zeros(n_cols, dtype=bool)
    used[indices] = True
    return bool(used.all())


_LABEL_PASSES = 24
"""Label passes of ``connected_parts`` before it hands the graph to ``csgraph``."""


def _csgraph_parts(
    indptr: np.ndarray, indices: np.ndarray, n_cols: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """``connected_parts`` by ``scipy.sparse.csgraph`` (it copies the pattern twice, in float64)."""
    n_rows = indptr.size - 1
    # The bipartite graph on rows (0..n_rows-1) and columns (n_rows..), one direction only.
    pattern = sp.csr_matrix(
        (
            np.ones(indices.size, dtype=np.int8),
            indices + n_rows,
            np.concatenate([indptr, np.full(n_cols, indptr[-1])]),
        ),
        shape=(n_rows + n_cols,) * 2,
    )
    count, labels = connected_components(pattern, directed=True, connection="weak")
    return count, labels[:n_rows], labels[n_rows:]
