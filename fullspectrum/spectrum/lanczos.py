"""Golub–Kahan–Lanczos bidiagonalisation of many connected blocks at once (numpy).

The blocks of a block-diagonal matrix (every large connected component of every
graph a network needs) advance in lockstep: one sparse matvec per step serves
them all, and per-block inner products are segmented sums over their contiguous
row (or column) ranges. Each block keeps its own ``alpha``/``beta`` recurrence,
its own convergence test and its own breakdown; a finished block is frozen
(its vectors set to zero) and, once most of the rows belong to finished blocks,
the operator is cut down to the blocks still running.

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

RESIDUAL_TOL = 1e-9
"""Relative residual at which a Ritz value counts as converged: far below SPEC §1's ``1e-6``,
because Ritz values converge quadratically."""
MAX_STEPS = 600
_BREAKDOWN = 1e-13
_LOOP_BLOCKS = 32
"""Up to this many blocks, re-orthogonalise block by block with BLAS; above, with segmented sums."""
_COMPACT_BELOW = 0.75
"""Cut the operator down to the running blocks once they hold less than this share of the work."""


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
    blocks = row_sizes.size
    results = np.zeros((blocks, want))
    if blocks == 0:
        return results
    state = _State(matrix, row_sizes, col_sizes, want)
    while state.active.any():
        state.step(results)
        if state.should_compact():
            state.compact()
    return results


class _State:
    """The running recurrences of the blocks still active, on the operator cut down to them."""

    def __init__(self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, want: int):
        self.want = want
        self.original = np.arange(row_sizes.size)  # block index in the caller's numbering
        self.limit = np.minimum(np.minimum(row_sizes, col_sizes), MAX_STEPS)
        self._set_operator(sp.csr_matrix(matrix, dtype=np.float64), row_sizes, col_sizes)
        capacity = int(min(self.limit.max(), 64))
        rng = np.random.default_rng(0)
        v = rng.standard_normal(self.cols) + 1.0  # a positive bias meets the Perron vector
        v /= np.sqrt(self._col_sums(v * v))[self.col_block]
        self.right = np.zeros((capacity + 1, self.cols))
        self.left = np.zeros((capacity, self.rows))
        self.right[0] = v
        blocks = row_sizes.size
        self.alphas = np.zeros((blocks, capacity))
        self.betas = np.zeros((blocks, capacity))
        self.beta = np.zeros(blocks)
        self.scale = np.zeros(blocks)
        self.active = np.ones(blocks, dtype=bool)
        self.next_check = np.full(blocks, want + 2)
        self.last_check = np.full((blocks, 2), np.nan)  # (step, residual) of the previous test
        self.u_prev = np.zeros(self.rows)
        self.n = 0  # steps taken

    def _set_operator(self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray) -> None:
        self.matrix = matrix
        self.transpose = matrix.T  # a CSC view: its matvec needs no converted copy
        self.rows, self.cols = matrix.shape
        self.row_sizes, self.col_sizes = row_sizes, col_sizes
        self.row_starts = np.concatenate([[0], np.cumsum(row_sizes)[:-1]])
        self.col_starts = np.concatenate([[0], np.cumsum(col_sizes)[:-1]])
        self.row_block = np.repeat(np.arange(row_sizes.size), row_sizes)
        self.col_block = np.repeat(np.arange(col_sizes.size), col_sizes)
        # Work per block and step: its matvec entries and its vector lengths.
        self.work = np.bincount(self.row_block, weights=np.diff(matrix.indptr), minlength=row_sizes.size)
        self.work += row_sizes + col_sizes

    def _row_sums(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.row_starts, axis=-1)

    def _col_sums(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.col_starts, axis=-1)

    def _orthogonalise(
        self, vector: np.ndarray, basis: np.ndarray, starts: np.ndarray, sums, block_of
    ) -> None:
        """Remove from ``vector`` its per-block projections on the rows of ``basis``."""
        if basis.shape[0] == 0:
            return
        if starts.size <= _LOOP_BLOCKS:  # few blocks: two BLAS matrix-vector products each
            bounds = [*starts.tolist(), vector.size]
            for start, end in zip(bounds[:-1], bounds[1:]):
                piece = basis[:, start:end]
                vector[start:end] -= piece.T @ (piece @ vector[start:end])
            return
        coefficients = sums(basis * vector)  # (steps, blocks)
        vector -= np.einsum("sr,sr->r", coefficients[:, block_of], basis)

    def _grow(self) -> None:
        capacity = self.left.shape[0]
        extra = capacity
        self.left = np.concatenate([self.left, np.zeros((extra, self.rows))])
        self.right = np.concatenate([self.right, np.zeros((extra, self.cols))])
        self.alphas = np.concatenate([self.alphas, np.zeros((self.alphas.shape[0], extra))], axis=1)
        self.betas = np.concatenate([self.betas, np.zeros((self.betas.shape[0], extra))], axis=1)

    def step(self, results: np.ndarray) -> None:
        step = self.n
        if step == self.left.shape[0]:
            self._grow()
        running = self.active
        u = self.matrix @ self.right[step] - self.beta[self.row_block] * self.u_prev
        self._orthogonalise(u, self.left[:step], self.row_starts, self._row_sums, self.row_block)
        alpha = np.sqrt(self._row_sums(u * u))
        self.scale = np.maximum(self.scale, alpha)
        broke = running & (alpha <= _BREAKDOWN * np.maximum(self.scale, 1.0))
        for block in np.flatnonzero(broke):
            # A v_step lies in span(U): the space is invariant, the Ritz values exact.
            ritz = _ritz(self.alphas[block, :step], self.betas[block, :step])
            self._finish(results, block, ritz)
        u /= np.where(self.active, alpha, 1.0)[self.row_block]
        u *= self.active[self.row_block]
        self.left[step] = u
        self.alphas[:, step] = alpha
        w = self.transpose @ u - alpha[self.col_block] * self.right[step]
        self._orthogonalise(w, self.right[: step + 1], self.col_starts, self._col_sums, self.col_block)
        beta = np.sqrt(self._col_sums(w * w))
        self.scale = np.maximum(self.scale, beta)
        self.n = n = step + 1
        broke = self.active & (beta <= _BREAKDOWN * np.maximum(self.scale, 1.0))
        due = self.active & (broke | (n >= self.limit) | (n >= self.next_check))
        if due.any():
            self._test(results, np.flatnonzero(due), broke, beta)
        self.betas[:, step] = beta
        self.beta = beta
        self.right[step + 1] = w / np.where(self.active, beta, 1.0)[self.col_block]
        self.right[step + 1] *= self.active[self.col_block]
        self.u_prev = u

    def _test(self, results: np.ndarray, due: np.ndarray, broke: np.ndarray, beta: np.ndarray) -> None:
        """Convergence test of the blocks ``due``: one batched SVD of their bidiagonals."""
        n = self.n
        stack = np.zeros((due.size, n, n))
        diagonal = np.arange(n)
        stack[:, diagonal, diagonal] = self.alphas[due, :n]
        stack[:, diagonal[:-1], diagonal[1:]] = self.betas[due, : n - 1]
        x, theta, _ = np.linalg.svd(stack)
        for slot, block in enumerate(due):
            if broke[block]:
                self._finish(results, block, theta[slot])
                continue
            if n >= self.want:
                residual = float(beta[block] * np.max(np.abs(x[slot, -1, : self.want])))
                tolerance = RESIDUAL_TOL * max(1.0, theta[slot, 0])
                if residual <= tolerance:
                    self._finish(results, block, theta[slot])
                    continue
                self.next_check[block] = n + _steps_to_converge(
                    self.last_check[block], n, residual, tolerance
                )
                self.last_check[block] = (n, residual)
            if n >= self.limit[block]:
                self._finish(results, block, theta[slot])

    def _finish(self, results: np.ndarray, block: int, values: np.ndarray) -> None:
        kept = values[: self.want]
        results[self.original[block], : kept.size] = kept
        self.active[block] = False

    def should_compact(self) -> bool:
        if not self.active.any() or self.active.all():
            return False
        return self.work[self.active].sum() < _COMPACT_BELOW * self.work.sum()

    def compact(self) -> None:
        """Keep only the running blocks: their rows, columns, vectors and recurrences."""
        keep = self.active
        keep_rows, keep_cols = keep[self.row_block], keep[self.col_block]
        matrix = self.matrix[keep_rows][:, keep_cols]
        self.left = self.left[:, keep_rows]
        self.right = self.right[:, keep_cols]
        self.u_prev = self.u_prev[keep_rows]
        for name in ("alphas", "betas"):
            setattr(self, name, getattr(self, name)[keep])
        for name in ("beta", "scale", "next_check", "last_check", "limit", "original"):
            setattr(self, name, getattr(self, name)[keep])
        self._set_operator(matrix, self.row_sizes[keep], self.col_sizes[keep])
        self.active = np.ones(int(keep.sum()), dtype=bool)


def _steps_to_converge(last_check: np.ndarray, n: int, residual: float, tolerance: float) -> int:
    """Steps until the next convergence test, from the residual's decay since the last one."""
    fallback = max(2, n // 4)
    previous_n, previous = last_check
    if math.isnan(previous_n) or residual <= 0 or previous <= residual:  # none yet, or not decaying
        return fallback
    rate = (residual / previous) ** (1.0 / (n - previous_n))  # per-step decay factor, < 1
    needed = math.ceil(math.log(tolerance / residual) / math.log(rate))
    return int(min(max(needed, 1), max(n, 2)))


def _ritz(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Singular values of the bidiagonal with ``alphas`` on the diagonal, ``betas`` above it."""
    n = alphas.size
    if n == 0:
        return np.zeros(0)
    matrix = np.zeros((n, n + (betas.size >= n)))
    matrix[np.arange(n), np.arange(n)] = alphas
    matrix[np.arange(betas.size), np.arange(1, betas.size + 1)] = betas
    return la.svdvals(matrix, check_finite=False)
