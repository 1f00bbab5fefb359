"""Golub–Kahan–Lanczos bidiagonalisation of many connected blocks at once (numpy).

The blocks of a block-diagonal matrix (every large connected component of every
graph a network needs) advance in lockstep: one sparse matvec per step serves
them all, and per-block inner products are segmented sums over their contiguous
row (or column) ranges. Each block keeps its own ``alpha``/``beta`` recurrence,
its own convergence test and its own breakdown; a finished block is frozen
(its vectors set to zero) and, once finished blocks hold a quarter of the work
per step, the operator is cut down to the blocks still running. The engine runs
this for the blocks that the cheaper Lanczos on ``A Aᵀ`` (``gram_lanczos.py``)
cannot prove; the per-block bookkeeping (:class:`LockstepBlocks`) and the
re-orthogonalisation are shared with it.

Per block this is exactly the single-matrix method: full re-orthogonalisation
(no spurious copies), a fixed positive-biased start vector (reproducible, and it
meets the Perron vector), exact Ritz values on breakdown (the Krylov space is
then invariant and holds every distinct singular value of the block), and a
Ritz value accepted when its residual bound is below ``RESIDUAL_TOL · max(1, θ1)``.
A connected non-negative block has a simple top singular value (Perron–Frobenius),
so its top ``want`` distinct values are its top ``want`` values.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from fullspectrum.spectrum.graph import concatenated_ranges

RESIDUAL_TOL = 1e-9
"""Relative residual at which a Ritz value counts as converged: far below SPEC §1's ``1e-6``,
because Ritz values converge quadratically."""
MAX_STEPS = 600
BREAKDOWN = 1e-13
_SEGMENTED_ENTRIES = 1 << 16
"""Largest stored basis (entries) re-orthogonalised by segmented sums rather than block by block."""
_LARGE_PIECE = 1 << 16
"""A block's stored basis above this many entries is worth testing before its second pass."""
_ORTHOGONAL = 1e-13
"""A vector whose projections on a block's stored vectors are all below this (relative) is left as it is."""
_COMPACT_SHARE = 0.25
"""Cut finished blocks out of the operator once they hold this share of the work per step."""


def batched_golub_kahan(
    matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, want: int
) -> np.ndarray:
    """Top ``want`` singular values of every diagonal block of ``matrix``, shape ``(blocks, want)``.

    Block ``k`` owns ``row_sizes[k]`` consecutive rows and ``col_sizes[k]``
    consecutive columns; entries outside the blocks must be zero, and every
    block should be connected with at least two rows and two columns. Values a
    block does not have (its rank is smaller than ``want``) are zero.
    """
    row_sizes = np.asarray(row_sizes, dtype=np.int64)
    col_sizes = np.asarray(col_sizes, dtype=np.int64)
    results = np.zeros((row_sizes.size, want))
    if row_sizes.size == 0:
        return results
    state = _State(sp.csr_matrix(matrix, dtype=np.float64), row_sizes, col_sizes, want)
    while state.running():
        state.step(results)
    return results


class LockstepBlocks:
    """The per-block bookkeeping of a lockstep Lanczos run (Golub–Kahan here, ``A Aᵀ`` in
    ``gram_lanczos.py``): the recurrence coefficients, the running scale for the breakdown
    test, the test schedule, and which blocks are finished."""

    SCALARS = ("alphas", "betas", "beta", "scale", "next_check", "last_check", "limit", "original")
    """Per-block arrays, cut down with the blocks still running."""

    def _start_blocks(self, blocks: int, capacity: int, want: int, limit: np.ndarray) -> None:
        self.want = want
        self.original = np.arange(blocks)  # block index in the caller's numbering
        self.limit = limit
        self.alphas = np.zeros((blocks, capacity))
        self.betas = np.zeros((blocks, capacity))
        self.beta = np.zeros(blocks)
        self.scale = np.zeros(blocks)
        self.frozen = np.zeros(blocks, dtype=bool)
        self.next_check = np.full(blocks, want + 2)
        self.last_check = np.full((blocks, 2), np.nan)  # (step, residual) of the previous test
        self.n = 0  # steps taken

    def _grow_blocks(self) -> None:
        extra = self.alphas.shape[1]
        self.alphas = np.concatenate([self.alphas, np.zeros((self.alphas.shape[0], extra))], axis=1)
        self.betas = np.concatenate([self.betas, np.zeros((self.betas.shape[0], extra))], axis=1)

    def _kept_operator(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
        """``(keep, kept rows, kept columns, operator cut to them)`` for the blocks still running."""
        keep = ~self.frozen
        keep_rows = np.repeat(keep, self.row_sizes)
        keep_cols = np.repeat(keep, self.col_sizes)
        return keep, keep_rows, keep_cols, _kept_blocks(self.matrix, self.row_sizes, self.col_sizes, keep)

    def _keep_blocks(self, keep: np.ndarray) -> None:
        for name in self.SCALARS:
            setattr(self, name, getattr(self, name)[keep])
        self.frozen = np.zeros(int(keep.sum()), dtype=bool)


def _kept_blocks(
    matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, keep: np.ndarray
) -> sp.csr_matrix:
    """The diagonal blocks ``keep`` of a block-diagonal CSR ``matrix`` (blocks of ``row_sizes`` ×
    ``col_sizes``), as one: each kept block's rows and edges are one slice of the arrays, its columns
    shifted by the columns of the blocks dropped before it (no fancy indexing, no per-column pass)."""
    row_bounds = np.concatenate([[0], np.cumsum(row_sizes)])
    kept = np.flatnonzero(keep)
    edge_start, edge_end = matrix.indptr[row_bounds[kept]], matrix.indptr[row_bounds[kept + 1]]
    edges = concatenated_ranges(edge_start, edge_end)
    col_start = np.cumsum(col_sizes) - col_sizes
    new_col_start = np.cumsum(col_sizes[kept]) - col_sizes[kept]
    shift = (col_start[kept] - new_col_start).astype(matrix.indices.dtype)
    indices = matrix.indices[edges] - np.repeat(shift, edge_end - edge_start)
    row_nnz = np.diff(matrix.indptr)[concatenated_ranges(row_bounds[kept], row_bounds[kept + 1])]
    indptr = np.concatenate([[0], np.cumsum(row_nnz)]).astype(matrix.indptr.dtype)
    shape = (int(row_sizes[kept].sum()), int(col_sizes[kept].sum()))
    return sp.csr_matrix((matrix.data[edges], indices, indptr), shape=shape)


class _State(LockstepBlocks):
    """The recurrences of the blocks still running, on the operator cut down to them.

    A block that finishes is *frozen* (its vectors zeroed, its scalars ignored)
    until the frozen blocks hold enough of the work to be worth cutting out.
    """

    def __init__(self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, want: int):
        limit = np.minimum(np.minimum(row_sizes, col_sizes), MAX_STEPS)
        capacity = int(min(limit.max(), 64))
        self._start_blocks(row_sizes.size, capacity, want, limit)
        self._set_operator(matrix, row_sizes, col_sizes)
        rng = np.random.default_rng(0)
        v = rng.standard_normal(self.cols) + 1.0  # a positive bias meets the Perron vector
        v /= self._expand_cols(np.sqrt(np.add.reduceat(v * v, self.col_bounds[:-1])))
        self.right = np.zeros((capacity + 1, self.cols))
        self.left = np.zeros((capacity, self.rows))
        self.right[0] = v

    def _set_operator(self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray) -> None:
        self.matrix = matrix
        self.transpose = matrix.T  # a CSC view: its matvec needs no converted copy
        self.rows, self.cols = matrix.shape
        self.row_sizes, self.col_sizes = row_sizes, col_sizes
        self.row_bounds = np.concatenate([[0], np.cumsum(row_sizes)])
        self.col_bounds = np.concatenate([[0], np.cumsum(col_sizes)])
        self.row_segments, self.col_segments = Segments(row_sizes), Segments(col_sizes)
        # Work per block and step: its matvec entries and its vector lengths.
        self.work = np.add.reduceat(np.diff(matrix.indptr), self.row_bounds[:-1]) + row_sizes + col_sizes

    def running(self) -> bool:
        return not self.frozen.all()

    # Per-block scalars spread over the block's rows or columns (a scalar for one block).
    def _expand_rows(self, values: np.ndarray):
        return values[0] if values.size == 1 else np.repeat(values, self.row_sizes)

    def _expand_cols(self, values: np.ndarray):
        return values[0] if values.size == 1 else np.repeat(values, self.col_sizes)

    def _norms(self, vector: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        return np.sqrt(np.add.reduceat(vector * vector, bounds[:-1]))

    def _grow(self) -> None:
        extra = self.left.shape[0]
        self.left = np.concatenate([self.left, np.zeros((extra, self.rows))])
        self.right = np.concatenate([self.right, np.zeros((extra, self.cols))])
        self._grow_blocks()

    def _normalise(self, vector: np.ndarray, norms: np.ndarray, expand) -> None:
        """Divide each running block's part by its norm; zero the frozen blocks' parts."""
        if self.frozen.any():
            vector /= expand(np.where(self.frozen, 1.0, norms))
            vector *= expand(~self.frozen)
        else:
            vector /= expand(norms)

    def _broke(self, norms: np.ndarray) -> np.ndarray:
        return (norms <= BREAKDOWN * np.maximum(self.scale, 1.0)) & ~self.frozen

    def step(self, results: np.ndarray) -> None:
        step = self.n
        if step == self.left.shape[0]:
            self._grow()
        u = self.matrix @ self.right[step]
        if step:
            u -= self._expand_rows(self.beta) * self.left[step - 1]
        orthogonalise(u, self.left[:step], self.row_segments)
        alpha = self._norms(u, self.row_bounds)
        self.scale = np.maximum(self.scale, alpha)
        broke = self._broke(alpha)
        for block in np.flatnonzero(broke):
            # A v_step lies in span(U): the space is invariant, the Ritz values exact.
            self._finish(
                results,
                block,
                ritz_after_breakdown(self.alphas[block, :step], self.betas[block, :step], self.want),
            )
        self._normalise(u, alpha, self._expand_rows)
        self.left[step] = u
        self.alphas[:, step] = alpha
        w = self.transpose @ u - self._expand_cols(alpha) * self.right[step]
        orthogonalise(w, self.right[: step + 1], self.col_segments)
        beta = self._norms(w, self.col_bounds)
        self.scale = np.maximum(self.scale, beta)
        self.n = n = step + 1
        broke = self._broke(beta)
        if broke.any() or n >= np.min(np.minimum(self.next_check, self.limit)[~self.frozen], initial=n):
            due = ~self.frozen & (broke | (n >= self.limit) | (n >= self.next_check))
            for block in np.flatnonzero(due):
                self._test(results, block, bool(broke[block]), float(beta[block]))
        self.betas[:, step] = beta
        self.beta = beta
        self._normalise(w, beta, self._expand_cols)
        self.right[step + 1] = w
        if self.running() and self.work[self.frozen].sum() >= _COMPACT_SHARE * self.work.sum():
            self._compact()

    def _test(self, results: np.ndarray, block: int, broke: bool, beta: float) -> None:
        """Convergence test of one block, from the top Ritz pairs of its bidiagonal."""
        n = self.n
        theta, last = top_ritz(self.alphas[block, :n], self.betas[block, : n - 1], self.want)
        if broke:
            self._finish(results, block, theta)
            return
        if n >= self.want:
            residual = beta * float(np.max(np.abs(last)))  # error bound of the top Ritz values
            tolerance = RESIDUAL_TOL * max(1.0, float(theta[0]))
            if residual <= tolerance:
                self._finish(results, block, theta)
                return
            self.next_check[block] = n + steps_to_converge(self.last_check[block], n, residual, tolerance)
            self.last_check[block] = (n, residual)
        if n >= self.limit[block]:
            self._finish(results, block, theta)

    def _finish(self, results: np.ndarray, block: int, values: np.ndarray) -> None:
        kept = values[: self.want]
        results[self.original[block], : kept.size] = kept
        self.frozen[block] = True

    def _compact(self) -> None:
        """Keep only the running blocks: their rows, columns, vectors and recurrences."""
        keep, keep_rows, keep_cols, matrix = self._kept_operator()
        self.left = self.left[:, keep_rows]
        self.right = self.right[:, keep_cols]
        self._keep_blocks(keep)
        self._set_operator(matrix, self.row_sizes[keep], self.col_sizes[keep])


class Segments:
    """Consecutive ranges of a flat vector, one per block (from the block sizes)."""

    def __init__(self, sizes: np.ndarray):
        self.bounds = np.concatenate([[0], np.cumsum(sizes)])
        self.starts = self.bounds[:-1]
        self.ranges = list(zip(self.bounds[:-1].tolist(), self.bounds[1:].tolist()))
        self.block_of = np.repeat(np.arange(len(self.ranges)), np.diff(self.bounds))

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-block sums along the last axis."""
        return np.add.reduceat(values, self.starts, axis=-1)


def orthogonalise(vector: np.ndarray, basis: np.ndarray, segments: Segments) -> None:
    """Remove from ``vector`` its per-block projections on the rows of ``basis``.

    Small runs of several blocks take segmented sums over the whole basis (a fixed
    handful of calls); otherwise two BLAS calls a block, where the basis is read once
    per call (the arithmetic is memory-bound there).
    """
    if basis.shape[0] == 0:
        return
    if len(segments.ranges) > 2 and basis.size <= _SEGMENTED_ENTRIES:
        coefficients = segments.sums(basis * vector)  # (steps, blocks)
        vector -= np.einsum("sr,sr->r", coefficients[:, segments.block_of], basis)
        return
    small = _LARGE_PIECE // basis.shape[0]  # a block shorter than this has a small stored basis
    for start, end in segments.ranges:
        piece, part = basis[:, start:end], vector[start:end]
        coefficients = piece @ part
        # The correction reads a large basis a second time: skip it while the vector is already
        # orthogonal to 1e-13 (far tighter than the sqrt(eps) the Ritz values need).
        if end - start < small or np.abs(coefficients).max() > _ORTHOGONAL * np.sqrt(part @ part):
            part -= piece.T @ coefficients


def steps_to_converge(last_check: np.ndarray, n: int, residual: float, tolerance: float) -> int:
    """Steps until the next convergence test, from the residual's decay since the last one."""
    fallback = max(2, n // 4)
    previous_n, previous = last_check
    if math.isnan(previous_n) or residual <= 0 or previous <= residual:  # none yet, or not decaying
        return fallback
    rate = (residual / previous) ** (1.0 / (n - previous_n))  # per-step decay factor, < 1
    needed = math.ceil(math.log(tolerance / residual) / math.log(rate))
    return int(min(max(needed, 1), max(n, 2)))


def _golub_kahan_tridiagonal(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Off-diagonal of the zero-diagonal tridiagonal ``[[0, B], [Bᵀ, 0]]`` (perfect shuffle) of
    the bidiagonal ``B`` with ``alphas`` on the diagonal and ``betas`` above it: its eigenvalues
    are ``±`` the singular values of ``B``, its eigenvectors interleave ``B``'s singular vectors."""
    off = np.empty(alphas.size + betas.size)
    off[0::2] = alphas
    off[1::2] = betas
    return off


def top_ritz(alphas: np.ndarray, betas: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``want`` singular values of the square bidiagonal, descending, and the last
    entries of their left singular vectors (bisection and inverse iteration: O(n) each)."""
    n = alphas.size
    take = min(want, n)
    off = _golub_kahan_tridiagonal(alphas, betas)
    values, vectors = la.eigh_tridiagonal(
        np.zeros(2 * n), off, select="i", select_range=(2 * n - take, 2 * n - 1), check_finite=False
    )
    # The left vector's last entry sits last in the shuffle, scaled by 1/sqrt(2).
    return np.maximum(values[::-1], 0.0), vectors[-1, ::-1] * math.sqrt(2.0)


def ritz_after_breakdown(alphas: np.ndarray, betas: np.ndarray, want: int) -> np.ndarray:
    """Top ``want`` singular values of the ``n × (n+1)`` bidiagonal left by a breakdown in ``alpha``."""
    n = alphas.size
    if n == 0:
        return np.zeros(0)
    off = _golub_kahan_tridiagonal(alphas, betas)
    size = off.size + 1
    take = min(want, n)
    values = la.eigh_tridiagonal(
        np.zeros(size),
        off,
        eigvals_only=True,
        select="i",
        select_range=(size - take, size - 1),
        check_finite=False,
    )
    return np.maximum(values[::-1], 0.0)
