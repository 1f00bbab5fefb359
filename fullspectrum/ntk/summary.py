"""The spectral summary of an NTK Gram matrix (SPEC §7b).

G25 report that pruning methods whose NTK concentrates its energy in a few
eigenvalues (SynFlow, SNIP) lose training loss faster early on than Random.
``ntk_spectrum`` reduces an ``N×N`` Gram matrix (empirical or graphon) to the
numbers that say how concentrated it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fullspectrum.errors import FullSpectrumError

# eigenvalues below this fraction of λ_max are round-off, not spectrum (SPEC §7b)
RELATIVE_CUTOFF = 1e-12


@dataclass(frozen=True)
class NTKSpectrum:
    """The spectral summary of one NTK Gram matrix.

    Example:
        >>> s = ntk_spectrum(np.diag([4.0, 2.0, 1.0, 1.0]))
        >>> s.eigenvalues.tolist(), s.lambda_max, s.condition
        ([4.0, 2.0, 1.0, 1.0], 4.0, 4.0)
        >>> round(s.top5_energy, 6), round(s.decay_alpha, 6)
        (1.0, 1.0)
    """

    eigenvalues: np.ndarray
    """All ``N`` eigenvalues, descending (float64)."""
    lambda_max: float
    """The largest eigenvalue."""
    condition: float
    """``λ_max / λ_min`` over the eigenvalues above ``1e-12·λ_max``."""
    effective_rank: float
    """``exp(H(λ/Σλ))``, the entropy of the normalised spectrum (negative round-off counted as 0)."""
    top5_energy: float
    """``Σ_{k≤5} λ_k / Σ λ``: the share of the trace in the five largest eigenvalues."""
    decay_alpha: float
    """Minus the least-squares slope of ``log λ_k`` on ``log k`` over ``k = 1..N/2``
    (eigenvalues above the cutoff only); NaN when fewer than two points remain."""


def ntk_spectrum(gram) -> NTKSpectrum:
    """The spectral summary (SPEC §7b) of a symmetric positive semi-definite ``(N, N)`` Gram matrix.

    Eigenvalues ``k^(-a)`` give ``decay_alpha == a`` (up to round-off):

    Example:
        >>> k = np.arange(1, 21)
        >>> round(ntk_spectrum(np.diag(k ** -1.5)).decay_alpha, 10)
        1.5
    """
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.shape[0] == 0:
        raise FullSpectrumError(f"the NTK Gram matrix must be square (N, N); got shape {gram.shape}")
    if not np.isfinite(gram).all():
        raise FullSpectrumError("the NTK Gram matrix holds NaN or Inf; check the model's weights and inputs")
    scale = max(float(np.abs(gram).max()), np.finfo(np.float64).tiny)
    if float(np.abs(gram - gram.T).max()) > 1e-8 * scale:
        raise FullSpectrumError("the NTK Gram matrix is not symmetric; pass Θ(x_i, x_j) over one batch")
    # eigvalsh: the Gram matrix is symmetric, so the spectrum is real and this is exact and fast
    eigenvalues = np.linalg.eigvalsh(0.5 * (gram + gram.T))[::-1].copy()
    lambda_max = float(eigenvalues[0])
    if lambda_max <= 0:
        raise FullSpectrumError("the NTK Gram matrix has no positive eigenvalue (all-zero gradients?)")
    kept = eigenvalues[eigenvalues > RELATIVE_CUTOFF * lambda_max]
    positive = np.clip(eigenvalues, 0.0, None)  # negative values are round-off of a PSD matrix
    total = float(positive.sum())
    p = positive[positive > 0] / total
    effective_rank = float(np.exp(-(p * np.log(p)).sum()))
    top5 = float(positive[:5].sum() / total)
    return NTKSpectrum(
        eigenvalues=eigenvalues,
        lambda_max=lambda_max,
        condition=float(lambda_max / kept[-1]),
        effective_rank=effective_rank,
        top5_energy=top5,
        decay_alpha=_decay_alpha(eigenvalues, lambda_max),
    )


def _decay_alpha(eigenvalues: np.ndarray, lambda_max: float) -> float:
    head = eigenvalues[: len(eigenvalues) // 2]  # k = 1..N/2
    k = np.arange(1, len(head) + 1, dtype=np.float64)
    fit = head > RELATIVE_CUTOFF * lambda_max  # log of round-off would dominate the fit
    if fit.sum() < 2:
        return float("nan")
    slope = np.polyfit(np.log(k[fit]), np.log(head[fit]), 1)[0]
    return float(-slope)
