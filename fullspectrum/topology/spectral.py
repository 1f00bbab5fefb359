"""MGE24's two spectral topometrics of an unrolled graph: ``|mu1| - |mu3|`` of the symmetric weighted
adjacency ``S = A + A^T`` and the largest eigenvalue of its Laplacian ``D - S``.

ARPACK (``eigsh``) runs in float32, as MGE24's code does (half the memory traffic of float64, and far
fewer restarts at a tolerance float32 can reach), with a loose tolerance; its Ritz vectors ``V`` are
then refined in float64 by Rayleigh–Ritz on the Krylov block ``[V, SV]``, two more of them than asked
for (near-bipartite graphs have ``+-mu`` pairs that float32 cannot order). The refined pairs' float64
residuals ``r`` give each value's error estimate ``|r|^2 / gap`` (the gap to the nearest other Ritz
value); when an estimate is above :data:`ACCEPTED_ERROR` of the spectral scale, ARPACK runs again at
float32's own precision (``tol=0``) with a larger basis, and that is refined the same way (measured on
the tests' graphs and the zoo's ResNet-20 at densities 0.005 to 0.1: within 1e-11 of float64 ARPACK
at ``tol=0`` or of a dense eigendecomposition, 2e-10 on a Conv-6). The Laplacian is never built: ``Lx = d x - S x``.
Graphs of at most :data:`DENSE_NODES` nodes are solved densely.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

DENSE_NODES = 64
ACCEPTED_ERROR = 1e-11
"""Largest error estimate (relative to the largest value) accepted from the loose first ARPACK run: a
hundredth of the 1e-9 the tests hold every metric to (the estimate is not a bound: measured up to 10x
below the true error on a bipartite graph, which takes the exact bipartite route instead)."""


@dataclass(frozen=True)
class _Attempt:
    """One ARPACK configuration: Ritz vectors asked beyond ``k``, basis size, tolerance."""

    extra: int
    ncv: int
    tol: float


_FAST = _Attempt(extra=2, ncv=14, tol=1e-5)
_FAST_TOP = _Attempt(extra=0, ncv=14, tol=1e-5)
_THOROUGH = _Attempt(extra=2, ncv=20, tol=0.0)  # the former route: float32's own precision


def spectral_terms(
    symmetric: sp.csr_matrix, sides: np.ndarray | None = None, degree: np.ndarray | None = None
) -> tuple[float, float]:
    """``(|mu1| - |mu3|, largest Laplacian eigenvalue)`` of ``S`` (CSR, weights ``|w|``); NaN where
    the graph is too small or has no edge. ``sides``: a bool per node (e.g. the parity of its
    partition); when every edge joins the two sides the graph is bipartite and ``|mu|`` are the
    singular values of the block between them (:func:`bipartite_gap`). ``degree``: the row sums of ``S``
    (the node strengths), if already known."""
    n = symmetric.shape[0]
    gap = radius = math.nan
    if n <= 1 or symmetric.nnz == 0:
        return gap, radius
    if degree is None:
        degree = np.asarray(symmetric.sum(axis=1)).ravel()
    if n <= DENSE_NODES:
        dense = symmetric.toarray()
        if n > 3:
            mu = np.sort(np.abs(np.linalg.eigvalsh(dense)))[::-1]
            gap = float(mu[0] - mu[2])
        return gap, float(np.linalg.eigvalsh(np.diag(degree) - dense).max())
    single = symmetric.astype(np.float32)
    degree32 = degree.astype(np.float32)
    if n > 3:
        gap = bipartite_gap(symmetric, sides) if _crosses(symmetric, sides) else math.nan
        if math.isnan(gap):
            mu = np.abs(extreme_eigenvalues(lambda x: single @ x, lambda x: symmetric @ x, n, 3, "LM"))
            mu = np.sort(mu)[::-1]
            gap = float(mu[0] - mu[2])
    values = extreme_eigenvalues(
        lambda x: (degree32 * x.T).T - single @ x, lambda x: (degree * x.T).T - symmetric @ x, n, 1, "LA"
    )
    return gap, float(values.max())


def bipartite_gap(symmetric: sp.csr_matrix, sides: np.ndarray) -> float:
    """``|mu1| - |mu3|`` of a bipartite ``S = [[0, B], [B^T, 0]]``: its eigenvalues are ``+-sigma_i(B)``
    and zeros, so the three largest magnitudes are ``sigma1, sigma1, sigma2`` and the gap is
    ``sigma1 - sigma2``, from the two largest eigenvalues of the Gram matrix on the smaller side
    (half the unknowns of ``S``, no ``+-`` pairs to tell apart, and squared values twice as far apart)."""
    left, right = np.flatnonzero(~sides), np.flatnonzero(sides)
    if left.size < right.size:
        left, right = right, left
    block = symmetric[left][:, right].tocsr()  # (larger side, smaller side)
    m = right.size
    if m <= DENSE_NODES:
        sigma = np.linalg.svd(block.toarray(), compute_uv=False)
    else:
        single, transposed = block.astype(np.float32), block.T.tocsr()
        transposed32 = transposed.astype(np.float32)
        values = extreme_eigenvalues(
            lambda x: transposed32 @ (single @ x), lambda x: transposed @ (block @ x), m, 2, "LA"
        )
        sigma = np.sqrt(np.maximum(values, 0.0))
    sigma = np.append(np.sort(sigma)[::-1], [0.0, 0.0])  # a rank below 2 has zero singular values
    return float(sigma[0] - sigma[1])


def _crosses(symmetric: sp.csr_matrix, sides: np.ndarray | None) -> bool:
    """Whether every edge joins a node of ``sides`` to one outside it."""
    if sides is None:
        return False
    rows = np.repeat(sides, np.diff(symmetric.indptr))
    return bool(np.all(rows != sides[symmetric.indices]))


def extreme_eigenvalues(
    apply32: Callable[[np.ndarray], np.ndarray],
    apply64: Callable[[np.ndarray], np.ndarray],
    n: int,
    k: int,
    which: str,
) -> np.ndarray:
    """The ``k`` largest (``which="LA"``) or largest-magnitude (``"LM"``) eigenvalues of a symmetric
    operator given as its float32 and float64 products (``apply(x)`` for ``x`` of shape ``(n,)`` or
    ``(n, m)``), largest first."""
    fast = _FAST_TOP if k == 1 else _FAST  # one value: no +-pair or neighbour to tell apart
    values, error = _refined(apply32, apply64, n, k, which, fast)
    if error > ACCEPTED_ERROR:
        values, _ = _refined(apply32, apply64, n, k, which, _THOROUGH)
    return values


def _refined(apply32, apply64, n: int, k: int, which: str, attempt: _Attempt) -> tuple[np.ndarray, float]:
    """ARPACK's float32 Ritz vectors for ``attempt``, refined in float64: the ``k`` values and the
    largest error estimate relative to the largest value."""
    wanted = min(k + attempt.extra, n - 2)
    start = np.random.default_rng(0).random(n).astype(np.float32)  # fixed so results repeat
    operator = LinearOperator((n, n), matvec=apply32, matmat=apply32, dtype=np.float32)
    try:
        _, vectors = eigsh(
            operator,
            k=wanted,
            which=which,
            v0=start,
            ncv=min(n, max(2 * wanted + 1, attempt.ncv)),
            tol=attempt.tol,
        )
    except ArpackNoConvergence as error:
        vectors = error.eigenvectors
        if vectors is None or vectors.shape[1] < k:  # not even k converged Ritz vectors
            raise
    # Rayleigh-Ritz on span(V, SV) = span(V, W) in float64, W = SV minus its part in span(V): two QRs of
    # n x wanted instead of one of n x 2 wanted (half the cost), and W needs no scaling
    first, _ = np.linalg.qr(vectors.astype(np.float64))
    product = apply64(first)
    rest = product - first @ (first.T @ product)
    rest -= first @ (first.T @ rest)  # twice is enough (Kahan)
    second, _ = np.linalg.qr(rest)
    basis = np.hstack([first, second])
    image = np.hstack([product, apply64(second)])
    ritz, rotation = np.linalg.eigh(basis.T @ image)
    order = np.argsort(np.abs(ritz) if which == "LM" else ritz)[::-1]
    ritz, rotation = ritz[order], rotation[:, order]
    residual = np.linalg.norm(image @ rotation[:, :k] - basis @ (rotation[:, :k] * ritz[:k]), axis=0)
    others = np.abs(ritz[:k, None] - ritz[None, :])
    others[np.arange(k), np.arange(k)] = np.inf
    scale = max(float(np.abs(ritz).max()), 1e-300)
    gaps = np.maximum(others.min(axis=1), np.finfo(float).eps * scale)
    return ritz[:k], float(np.max(residual**2 / gaps)) / scale
