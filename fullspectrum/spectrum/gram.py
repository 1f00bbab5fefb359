"""Top singular values from the Gram matrix, accepted only with a proven error bound.

``eigvalsh(AᵀA)`` is several times cheaper than an SVD of ``A`` for the small
dense matrices of small layers (measured, one BLAS thread: 0.4 ms against
1.2 ms for a 128×253 mask). SPEC §1 warns why it is not always right: squaring
loses about half the digits of a *small* ``sigma2``. So every value comes with
a rigorous bound and is used only when that bound is far inside the SPEC
tolerance; the callers fall back to an exact SVD otherwise.

The bound. Forming ``G = AᵀA`` in floating point adds ``|E| <= γ_m |A|ᵀ|A|``
(elementwise, ``γ_m = m·eps/(1 - m·eps)``); for a non-negative ``A`` (masks and
``|W|``, everything the engine sees) ``|A|ᵀ|A| = G``, so ``‖E‖ <= γ_m σ1²``.
For a 0/1 mask the products are small integers and ``E = 0``. A symmetric
eigensolver is backward stable: its eigenvalues are exact for ``G + F`` with
``‖F‖ <= p(k)·eps·‖G‖``. By Weyl every eigenvalue moves by at most
``δ = ‖E‖ + ‖F‖``, and ``|sqrt(a) - sqrt(b)| <= |a - b| / sqrt(a)`` turns that
into ``δ / σ̂`` for a singular value ``σ̂``. A matrix with a negative entry
(never seen by the engine) is bounded through ``‖A‖_F²`` instead.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la

from fullspectrum.spectrum.kernels import gram_tops_kernel

EPS = float(np.finfo(np.float64).eps)
_SUBSET_SIDE = 48
"""Gram matrices at least this wide are solved for their top values only, one by one."""
ACCEPTED_ERROR = 1e-9
"""Accepted bound on ``|σ̂ - σ|``, times ``max(1, σ1)``: 1000 times inside SPEC §1's ``1e-6``."""
_SINGLE_EXACT = 1 << 24
"""Integers below this are exact in float32: a 0/1 Gram entry is at most the inner dimension."""
SOLVER_FACTOR = 4.0
"""``p(k) = 4k``: a generous constant over LAPACK's ``O(k)`` backward error of ``syevd``."""


def gram_top(stack: np.ndarray, want: int, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``want`` singular values of each matrix in ``stack`` (``(batch, m, n)``), and which are proven.

    Returns ``(values, certified)``: ``values`` has shape ``(batch, want)``,
    descending; ``certified[b]`` is True when every value of matrix ``b`` is
    within ``ACCEPTED_ERROR · max(1, σ1)`` of the exact one. ``want`` must not
    exceed ``min(m, n)``. ``kind`` says what the caller knows of the entries, sparing the
    passes that would find it out: ``"binary"`` (all 0 or 1), ``"nonnegative"``, or None.
    """
    batch, rows, cols = stack.shape
    transposed = rows < cols  # Gram on the smaller side: k = min(m, n) eigenvalues, the spectrum
    inner, side = (cols, rows) if transposed else (rows, cols)
    if kind == "binary" and inner < _SINGLE_EXACT:  # 0/1 products and their integer sums are exact
        single = stack.astype(np.float32)  # in float32, whose products take half the time
        gram = single @ single.transpose(0, 2, 1) if transposed else single.transpose(0, 2, 1) @ single
        gram = gram.astype(np.float64)
    else:
        gram = stack @ stack.transpose(0, 2, 1) if transposed else stack.transpose(0, 2, 1) @ stack
    if side >= _SUBSET_SIDE:  # only the top `want`: LAPACK's MRRR skips the rest (~30% less)
        kernel = gram_tops_kernel()
        if kernel is not None:  # the same LAPACK call on every matrix, in one call without the GIL
            eigenvalues = np.empty((batch, want))
            kernel(np.ascontiguousarray(gram), want, eigenvalues)
        else:
            eigenvalues = np.stack([_top_eigenvalues(g, want) for g in gram])
    else:
        eigenvalues = np.linalg.eigvalsh(gram)[:, ::-1][:, :want]  # descending
    values = np.sqrt(np.maximum(eigenvalues, 0.0))
    if kind in ("binary", "nonnegative") or bool(np.all(stack >= 0)):
        scale = np.abs(eigenvalues[:, 0])  # ‖G‖ = σ1² for the non-negative matrices the engine uses
        binary = kind == "binary" or (kind is None and bool(np.all((stack == 0) | (stack == 1))))
        exact_products = binary and inner < 2**52
    else:
        scale = np.einsum("bij,bij->b", stack, stack)  # ‖A‖_F² >= ‖|A|ᵀ|A|‖
        exact_products = False
    product_error = 0.0 if exact_products else inner * EPS / (1 - inner * EPS)
    delta = (product_error + SOLVER_FACTOR * side * EPS) * scale * (1 + 1e-6)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.where(values > 0, delta[:, None] / values, np.inf)
    error = np.minimum(error, np.sqrt(delta)[:, None])  # |sqrt(a) - sqrt(b)| <= sqrt(|a - b|)
    certified = np.all(error <= ACCEPTED_ERROR * np.maximum(1.0, values[:, :1]), axis=1)
    return values, certified


def _top_eigenvalues(gram: np.ndarray, want: int) -> np.ndarray:
    """Top ``want`` eigenvalues of one symmetric matrix, descending: LAPACK's ``syevr`` (MRRR, what
    ``eigh(driver="evr")`` runs) called directly on the matrix's own buffer (its transpose is itself,
    in Fortran order), sparing the wrapper's checks and copy (the buffer is overwritten). Where LAPACK
    declines, NaN: never certified, so the caller takes the SVD."""
    side = gram.shape[0]
    values, _, found, _, info = la.lapack.dsyevr(
        gram.T, compute_v=0, range="I", il=side - want + 1, iu=side, overwrite_a=1
    )
    if info != 0 or found != want:  # pragma: no cover - MRRR declined
        return np.full(want, np.nan)
    return values[:want][::-1]
