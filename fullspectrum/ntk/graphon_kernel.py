"""The graphon NTK of a bias-free ReLU MLP whose masks are drawn from block graphons (G25, SPEC §7b).

The network has ``L`` weight matrices (readout included) in the NTK parameterisation
``h^(l) = σ_w/√n_{l-1} · (M^(l) ⊙ W^(l)) φ(h^(l-1))`` with ``W ~ N(0, 1)`` and
``M_ij ~ Bernoulli(w^(l)(u_i, v_j))``. As the hidden widths grow each output block ``a`` of
layer ``l`` has its own kernel pair over the ``N`` inputs::

    Σ^(1)_a = σ_w²/n_0 · Σ_j w^(1)(a, j) x_j x'_j                Θ^(1)_a = Σ^(1)_a
    Σ^(l)_a = σ_w² Σ_b p_b w^(l)_ab E[φφ]_b
    Θ^(l)_a = Σ^(l)_a + σ_w² Σ_b p_b w^(l)_ab Θ^(l-1)_b ⊙ E[φ̇φ̇]_b

with ReLU's arc-cosine closed forms under ``Σ^(l-1)_b`` (Cho & Saul 2009):
``E[φφ] = √(k k')(sin θ + (π-θ) cos θ)/(2π)`` and ``E[φ̇φ̇] = (π-θ)/(2π)``. The
network's NTK is the mean of ``Θ^(L)_a`` over the output blocks (equal fractions).

When it holds: the recursion is **exact** when the first layer is dense
(``w^(1) ≡ 1``) or the input dimension ``n_0 → ∞``. With a sparse first layer and a
finite input each first-layer unit's kernel is itself random (it sees a random subset
of the inputs) and the recursion is a **mean-field approximation** (SPEC §7b measured
4–7% off at ``n_0 = 64``). By ReLU's homogeneity a constant graphon ``c`` gives exactly
``c^L`` times the dense recursion.

Scale: this is the NTK parameterisation; the zoo's models use PyTorch's standard one,
so their empirical NTK's scale is not comparable with this one's: compare normalised
spectra.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fullspectrum.errors import FullSpectrumError, MaskError


def graphon_ntk(graphons: Sequence, inputs, sigma_w: float = 2**0.5) -> np.ndarray:
    """The ``(N, N)`` graphon NTK of a bias-free ReLU MLP on ``inputs`` ``(N, n_0)``.

    ``graphons[0]`` is ``(K_1, n_0)`` (the input side at full resolution), ``graphons[l]``
    ``(K_{l+1}, K_l)``; blocks are of equal size and values in ``[0, 1]``. Exact for a
    dense first layer; a mean-field approximation otherwise (see the module docstring).

    A one-layer dense net is the linear kernel ``σ_w²/n_0 · x·x'``, and a constant graphon
    ``c`` scales the NTK by ``c^L``:

    Example:
        >>> x = np.array([[1.0, 0.0], [1.0, 1.0]])
        >>> graphon_ntk([np.ones((1, 2))], x)
        array([[1., 1.],
               [1., 2.]])
        >>> dense = graphon_ntk([np.ones((4, 2)), np.ones((3, 4))], x)
        >>> half = graphon_ntk([np.full((4, 2), 0.5), np.full((3, 4), 0.5)], x)
        >>> bool(np.allclose(half, 0.25 * dense))
        True
    """
    layers = _check_graphons(graphons)
    x = _check_inputs(inputs, layers[0].shape[1])
    if not (np.isfinite(sigma_w) and sigma_w > 0):
        raise FullSpectrumError(f"sigma_w must be a positive finite number; got {sigma_w!r}")
    s2 = float(sigma_w) ** 2
    n0 = x.shape[1]
    # (K_1, N, N): each first-layer block sees its own weighted inner product of the inputs
    sigma = s2 / n0 * np.einsum("aj,nj,mj->anm", layers[0], x, x)
    theta = sigma.copy()
    for w in layers[1:]:
        e_phi, e_dot = _relu_expectations(sigma)
        mix = s2 * w / w.shape[1]  # σ_w² p_b w_ab with p_b = 1/K_l
        sigma = np.einsum("ab,bnm->anm", mix, e_phi)
        theta = sigma + np.einsum("ab,bnm->anm", mix, theta * e_dot)
    return theta.mean(axis=0)


def _relu_expectations(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E[φ(f)φ(f')]`` and ``E[φ̇(f)φ̇(f')]`` for ReLU, ``f ~ N(0, Σ_b)``, for every block ``b``."""
    k = np.einsum("bnn->bn", sigma)  # (K, N) variances
    norm = np.sqrt(k[:, :, None] * k[:, None, :])  # (K, N, N) √(k k')
    live = norm > 0  # a unit that sees nothing outputs 0: φ = φ̇ = 0 (torch's ReLU'(0) = 0)
    cos = np.divide(sigma, norm, out=np.zeros_like(sigma), where=live)
    diag = np.arange(sigma.shape[1])
    cos[:, diag, diag] = live[:, diag, diag]  # exactly 1: arccos(1 - ε) ≈ √(2ε) would put 1e-8 on Θ(x, x)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))  # clip: round-off can push |cos θ| past 1
    e_phi = norm * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    e_dot = np.where(live, (np.pi - theta) / (2 * np.pi), 0.0)
    return e_phi, e_dot


def _check_graphons(graphons: Sequence) -> list[np.ndarray]:
    if isinstance(graphons, np.ndarray) or len(graphons) == 0:
        raise MaskError("graphons must be a non-empty list with one (K_out, K_in) array per layer")
    layers = []
    for i, g in enumerate(graphons):
        w = np.asarray(g, dtype=np.float64)
        if w.ndim != 2 or 0 in w.shape:
            raise MaskError(f"graphons[{i}] must be a non-empty 2-D (K_out, K_in) array; got shape {w.shape}")
        if not np.isfinite(w).all() or w.min() < 0 or w.max() > 1:
            raise MaskError(f"graphons[{i}] holds values outside [0, 1] (edge densities)")
        if layers and w.shape[1] != layers[-1].shape[0]:
            raise MaskError(
                f"graphons[{i}] has {w.shape[1]} input blocks but graphons[{i - 1}] has {layers[-1].shape[0]}"
                " output blocks; consecutive layers must share the hidden layer's blocks"
            )
        layers.append(w)
    return layers


def _check_inputs(inputs, n0: int) -> np.ndarray:
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise FullSpectrumError(f"inputs must be a non-empty (N, n_0) array; got shape {x.shape}")
    if x.shape[1] != n0:
        raise FullSpectrumError(
            f"inputs have {x.shape[1]} features but graphons[0] has {n0} input columns (full resolution)"
        )
    if not np.isfinite(x).all():
        raise FullSpectrumError("inputs hold NaN or Inf")
    return x
