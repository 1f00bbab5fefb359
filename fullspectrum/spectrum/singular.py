"""Exact largest singular values of sparse non-negative biadjacency matrices.

The papers' code built the ``(m+n)×(m+n)`` bipartite adjacency and asked ARPACK
for its top eigenvalues. We work on the ``m×n`` biadjacency directly:

* split the graph into connected components (``scipy.sparse.csgraph``); by
  Perron–Frobenius the top singular value of a connected non-negative matrix is
  simple, so repeated values across components (disjoint unions) are never lost;
* per component, whichever is predicted cheapest of: the Gram matrix's
  eigenvalues, accepted only under a proven error bound (``gram.py``: squaring
  loses half the digits of a small ``sigma2``, so a value that cannot be
  proven goes to an SVD); a dense LAPACK SVD; or a Golub–Kahan (Lanczos)
  bidiagonalisation with full re-orthogonalisation, which stops early on
  breakdown, exactly: the Krylov space is then invariant and holds every
  distinct singular value of the component.

Results agree with a float64 dense eigendecomposition of the full adjacency to
well within ``1e-6 · max(1, sigma1)`` (checked in ``tests/test_spectrum_oracle.py``).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from fullspectrum.spectrum.gram import gram_top

# Relative residual at which a Ritz value counts as converged: far below the
# 1e-6 tolerance of SPEC §1, because Ritz values converge quadratically.
_RESIDUAL_TOL = 1e-9
# Matrices with at most this many entries go straight to a dense SVD (exact, with multiplicity).
_DENSE_ENTRIES = 1 << 14
_MAX_STEPS = 600


def matrix_singular_values(matrix: sp.spmatrix | np.ndarray, k: int = 2) -> np.ndarray:
    """The ``k`` largest singular values (with multiplicity), descending.

    Returns fewer than ``k`` values only when the matrix has fewer than ``k``
    (its smaller dimension); zeros count as singular values.
    """
    rows, cols = matrix.shape
    available = min(rows, cols)
    if available == 0:
        return np.zeros(0)
    want = min(k, available)
    if rows * cols <= _DENSE_ENTRIES:  # small: one LAPACK call beats any bookkeeping
        dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix, dtype=np.float64)
        return dense_top(dense[None], want)[0]
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    if matrix.nnz == 0:
        return np.zeros(want)
    values = _per_component_top(matrix, want)
    merged = np.sort(values)[::-1][:want]
    if merged.size < want:  # the rest of the spectrum is zero
        merged = np.concatenate([merged, np.zeros(want - merged.size)])
    return merged


def dense_top(stack: np.ndarray, want: int) -> np.ndarray:
    """Top ``want`` singular values of each matrix of a ``(batch, m, n)`` stack, ``(batch, want)``.

    From the Gram matrices where their error bound is proven, else from an SVD.
    """
    values, certified = gram_top(stack, want)
    if not certified.all():
        unproven = np.flatnonzero(~certified)
        values[unproven] = np.linalg.svd(stack[unproven], compute_uv=False)[:, :want]
    return values


def batched_top_two(matrices: list[np.ndarray]) -> list[tuple[float, float]]:
    """``(s1, s2)`` of many small dense matrices, in few batched LAPACK calls.

    Matrices are zero-padded to a shared shape per bucket (padding adds only
    zero singular values); ``s2`` is 0 for a matrix with one row or column.
    """
    results: list[tuple[float, float]] = [(0.0, 0.0)] * len(matrices)
    buckets: dict[tuple[int, int], list[int]] = {}
    for index, matrix in enumerate(matrices):
        rows, cols = matrix.shape
        buckets.setdefault((-(-rows // 16) * 16, -(-cols // 16) * 16), []).append(index)
    for (rows, cols), members in buckets.items():
        stack = np.zeros((len(members), rows, cols))
        for slot, index in enumerate(members):
            matrix = matrices[index]
            stack[slot, : matrix.shape[0], : matrix.shape[1]] = matrix
        values = dense_top(stack, 2)  # (members, 2), descending
        for slot, index in enumerate(members):
            results[index] = (float(values[slot, 0]), float(values[slot, 1]))
    return results


# Components whose larger side is at most this are solved together, padded with
# zeros into one batched LAPACK call (sparse masks split into many tiny trees).
_BATCH_SIDE = 48


def _per_component_top(matrix: sp.csr_matrix, want: int) -> np.ndarray:
    """Top ``want`` singular values of every connected component, concatenated."""
    rows, cols = matrix.shape
    coo = matrix.tocoo()
    # Bipartite graph on rows (0..rows-1) and columns (rows..rows+cols-1).
    adjacency = sp.csr_matrix((np.ones(coo.nnz), (coo.row, coo.col + rows)), shape=(rows + cols,) * 2)
    count, labels = connected_components(adjacency, directed=False)
    if count == 1:
        return _component_top(matrix, want)
    row_labels, col_labels = labels[:rows], labels[rows:]
    row_rank, row_sizes = _rank_within_groups(row_labels, count)
    col_rank, col_sizes = _rank_within_groups(col_labels, count)
    edge_label = row_labels[coo.row]
    results = []
    side = np.maximum(row_sizes, col_sizes)
    has_edges = (row_sizes > 0) & (col_sizes > 0)
    small = has_edges & (side <= _BATCH_SIDE)
    # Batched dense SVD of the small components, bucketed by size to limit padding.
    for low, high in ((0, 4), (4, 12), (12, 24), (24, _BATCH_SIDE)):
        bucket = np.flatnonzero(small & (side > low) & (side <= high))
        if bucket.size == 0:
            continue
        slot = np.full(count, -1)
        slot[bucket] = np.arange(bucket.size)
        in_bucket = slot[edge_label] >= 0
        stack = np.zeros((bucket.size, high, high))
        stack[slot[edge_label[in_bucket]], row_rank[coo.row[in_bucket]], col_rank[coo.col[in_bucket]]] = (
            coo.data[in_bucket]
        )
        results.append(dense_top(stack, min(want, high)).ravel())
    large = np.flatnonzero(has_edges & ~small)
    if large.size:
        order = np.argsort(edge_label, kind="stable")
        bounds = np.searchsorted(edge_label[order], np.arange(count + 1))
        for label in large:
            idx = order[bounds[label] : bounds[label + 1]]
            block = sp.csr_matrix(
                (coo.data[idx], (row_rank[coo.row[idx]], col_rank[coo.col[idx]])),
                shape=(row_sizes[label], col_sizes[label]),
            )
            results.append(_component_top(block, want))
    return np.concatenate(results) if results else np.zeros(0)


def _rank_within_groups(labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Position of each item inside its group (groups in label order) and group sizes."""
    sizes = np.bincount(labels, minlength=count)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(labels.size) - starts[labels[order]]
    return rank, sizes


def _component_top(block: sp.csr_matrix, want: int) -> np.ndarray:
    """Top ``min(want, min(block.shape))`` singular values of one connected block."""
    rows, cols = block.shape
    small = min(rows, cols)
    want = min(want, small)
    if small == 1:  # a star: one non-zero singular value, the norm
        return np.array([np.sqrt(np.sum(block.data**2))])
    # Seconds, fitted on one BLAS thread (2-core x86 dev machine): the Gram product and its
    # tridiagonalisation, LAPACK's bidiagonalisation, and ~40 Lanczos steps of fixed Python
    # overhead, re-orthogonalisation and matvecs.
    large = max(rows, cols)
    gram_seconds = 1e-4 + 2.0 * small * small * large * 1.1e-11 + small**3 * 1e-10
    svd_seconds = 4.0 * rows * cols * small * 7e-11
    lanczos_seconds = 6e-4 + 8e-7 * (rows + cols) + 5e-8 * block.nnz
    dense = block.toarray() if min(gram_seconds, svd_seconds) <= lanczos_seconds or want > 2 else None
    if gram_seconds <= lanczos_seconds:
        values, certified = gram_top(dense[None], want)
        if certified[0]:
            return values[0]
    if dense is not None and (svd_seconds <= lanczos_seconds or want > 2):
        return la.svdvals(dense, check_finite=False, overwrite_a=True)[:want]
    return golub_kahan_top(block, want)


def golub_kahan_top(block: sp.csr_matrix, want: int) -> np.ndarray:
    """Largest distinct singular values by Golub–Kahan–Lanczos bidiagonalisation.

    Full re-orthogonalisation keeps the Lanczos vectors orthogonal, so no
    spurious copies appear; the start vector is fixed (seeded) for
    reproducibility. On breakdown the Krylov space is invariant and the Ritz
    values are exact; missing values are then zero.
    """
    rows, cols = block.shape
    max_steps = min(min(rows, cols), _MAX_STEPS)
    transpose = block.T.tocsr()
    rng = np.random.default_rng(0)
    v = rng.standard_normal(cols) + 1.0  # a positive bias meets the Perron vector
    v /= np.linalg.norm(v)
    right = np.zeros((max_steps + 1, cols))
    left = np.zeros((max_steps, rows))
    alphas = np.zeros(max_steps)
    betas = np.zeros(max_steps)
    right[0] = v
    beta = 0.0
    scale = 0.0
    u_prev = np.zeros(rows)
    theta = np.zeros(0)
    next_check, last_check = want + 2, None
    for step in range(max_steps):
        u = block @ right[step] - beta * u_prev
        u -= left[:step].T @ (left[:step] @ u)  # full re-orthogonalisation
        alpha = np.linalg.norm(u)
        scale = max(scale, alpha)
        if alpha <= 1e-13 * max(scale, 1.0):
            # A v_step lies in span(U): the space is invariant, the Ritz values exact.
            return _pad(_ritz(alphas[:step], betas[:step]), want)
        u /= alpha
        left[step] = u
        alphas[step] = alpha
        w = transpose @ u - alpha * right[step]
        w -= right[: step + 1].T @ (right[: step + 1] @ w)
        beta = np.linalg.norm(w)
        scale = max(scale, beta)
        n = step + 1
        broke_down = beta <= 1e-13 * max(scale, 1.0)
        # The small SVD is the per-step overhead: test convergence only where it is predicted.
        if not (broke_down or n == max_steps or n >= next_check):
            betas[step] = beta
            right[step + 1] = w / beta
            u_prev = u
            continue
        bidiagonal = _bidiagonal(alphas[:n], betas[: n - 1])
        x, theta, _ = la.svd(bidiagonal, check_finite=False, lapack_driver="gesvd")
        if broke_down:
            return _pad(theta[:want], want)
        if n >= want:
            residual = float(np.max(beta * np.abs(x[-1, :want])))  # error bound of the top Ritz values
            tolerance = _RESIDUAL_TOL * max(1.0, theta[0])
            if residual <= tolerance:
                return theta[:want]
            next_check = n + _steps_to_converge(last_check, n, residual, tolerance)
            last_check = (n, residual)
        if n == max_steps:
            return _pad(theta[:want], want)
        betas[step] = beta
        right[step + 1] = w / beta
        u_prev = u
    return _pad(theta[:want], want)


def _steps_to_converge(
    last_check: tuple[int, float] | None, n: int, residual: float, tolerance: float
) -> int:
    """Steps until the next convergence test, from the residual's decay since the last one."""
    fallback = max(2, n // 4)
    if last_check is None or residual <= 0:
        return fallback
    previous_n, previous = last_check
    if previous <= residual:  # not decaying yet
        return fallback
    rate = (residual / previous) ** (1.0 / (n - previous_n))  # per-step decay factor, < 1
    needed = math.ceil(math.log(tolerance / residual) / math.log(rate))
    return int(min(max(needed, 1), max(n, 2)))


def _bidiagonal(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Upper bidiagonal ``B`` with ``alphas`` on the diagonal, ``betas`` above it.

    ``len(betas)`` is ``len(alphas) - 1`` (square) or ``len(alphas)`` (one extra
    column, after a breakdown in ``alpha``).
    """
    n = alphas.size
    matrix = np.zeros((n, n + (betas.size >= n)))
    matrix[np.arange(n), np.arange(n)] = alphas
    matrix[np.arange(betas.size), np.arange(1, betas.size + 1)] = betas
    return matrix


def _ritz(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    if alphas.size == 0:
        return np.zeros(0)
    return la.svdvals(_bidiagonal(alphas, betas), check_finite=False)


def _pad(values: np.ndarray, want: int) -> np.ndarray:
    if values.size >= want:
        return values[:want]
    return np.concatenate([values, np.zeros(want - values.size)])
