"""The diagonal blocks a Lanczos run is given (``stack.py``): a component or a whole channel made
as a CSR matrix with its shorter side as rows, blocks joined into one block-diagonal matrix by
concatenating their arrays, and split apart again for the blocks left unproven."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def oriented(values, indices, indptr, n_cols):
    """A function making the CSR matrix of one channel, without empty rows and columns, with its
    shorter side as rows."""

    def make() -> sp.csr_matrix:
        matrix = live_block(sp.csr_matrix((values, indices, indptr), shape=(indptr.size - 1, n_cols)))
        return matrix.T.tocsr() if matrix.shape[0] > matrix.shape[1] else matrix

    return make


def live_block(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` without its empty rows and columns (they only add zeros)."""
    live_rows = np.flatnonzero(np.diff(matrix.indptr) > 0)
    if live_rows.size < matrix.shape[0]:
        matrix = matrix[live_rows]
    used = np.zeros(matrix.shape[1], dtype=bool)
    used[matrix.indices] = True
    if not used.all():
        matrix = matrix[:, np.flatnonzero(used)]
    return matrix


def component_blocks(components, edge_label, edge_row_rank, edge_col_rank, rows, cols, count):
    """A function of the edge values: ``components`` as consecutive diagonal blocks of one CSR
    matrix, each with its shorter side as rows (transposed where it has more rows than columns)."""
    slot = np.full(count, -1)
    slot[components] = np.arange(components.size)
    edges = np.flatnonzero(slot[edge_label] >= 0)
    slots = slot[edge_label[edges]]
    short = np.minimum(rows[components], cols[components])
    long = np.maximum(rows[components], cols[components])
    flipped = (rows[components] > cols[components])[slots]
    row_rank = np.where(flipped, edge_col_rank[edges], edge_row_rank[edges])
    col_rank = np.where(flipped, edge_row_rank[edges], edge_col_rank[edges])
    block_rows = np.concatenate([[0], np.cumsum(short)[:-1]])[slots] + row_rank
    block_cols = np.concatenate([[0], np.cumsum(long)[:-1]])[slots] + col_rank
    shape = (int(short.sum()), int(long.sum()))
    return lambda values: sp.csr_matrix((values[edges], (block_rows, block_cols)), shape=shape)


def split_blocks(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> list[sp.csr_matrix]:
    """The diagonal blocks of a block-diagonal ``matrix``, given their row and column counts."""
    if rows.size == 1:
        return [matrix]
    row_bounds = np.concatenate([[0], np.cumsum(rows)]).tolist()
    col_bounds = np.concatenate([[0], np.cumsum(cols)]).tolist()
    return [
        matrix[row_bounds[k] : row_bounds[k + 1], col_bounds[k] : col_bounds[k + 1]] for k in range(rows.size)
    ]


def block_diagonal(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """CSR matrices as consecutive diagonal blocks, by concatenating their arrays."""
    if len(blocks) == 1:
        return blocks[0]
    row_total = sum(b.shape[0] for b in blocks)
    col_offsets = np.cumsum([0] + [b.shape[1] for b in blocks])
    nnz_offsets = np.cumsum([0] + [b.nnz for b in blocks])
    indptr = np.concatenate([[0]] + [b.indptr[1:] + o for b, o in zip(blocks, nnz_offsets)])
    index_type = np.int32 if col_offsets[-1] < 2**31 else np.int64  # no int64 copy of every edge
    indices = np.concatenate(
        [b.indices.astype(index_type) + index_type(o) for b, o in zip(blocks, col_offsets)]
    )
    data = np.concatenate([b.data for b in blocks])
    return sp.csr_matrix((data, indices, indptr), shape=(row_total, int(col_offsets[-1])))


def rank_within_groups(labels: np.ndarray, count: int) -> np.ndarray:
    """Position of each item inside its group (groups in label order)."""
    sizes = np.bincount(labels, minlength=count)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(labels.size) - starts[labels[order]]
    return rank
