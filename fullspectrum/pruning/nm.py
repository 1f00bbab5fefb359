"""The ``nm`` generator: magnitude-based N:M masks (Mishra et al. 2021; Zhou et al., ICLR 2021).

In every group of ``M`` consecutive weights along a layer's input dimension the ``N`` largest
``|θ|`` are kept (ties: the lower index), so every layer is exactly N:M
(:func:`fullspectrum.layers.nm.nm_pattern` reads it back) and the density is ``N/M``. Groups run
along the flattened input dimension ``in * kh * kw`` of a conv weight, as the detection's do; an
HF ``Conv1D`` weight, stored ``(in, out)``, is grouped along its input dimension all the same.

A layer whose input dimension is not a multiple of ``M`` (a first convolution over 3 colour
channels: 3·3·3 = 27 inputs per unit) cannot be cut into whole groups: it is left dense, with a
warning, as NVIDIA's ASP does for layers that sparse tensor cores cannot take; the network's
density is then a little above ``N/M``.

The scores make the pattern survive any per-layer top-k at the layer's own count (PAGS
re-thresholds candidates that way, SPEC §5): a kept weight scores ``2 + |θ|/(1 + max|θ|)``, a
dropped one ``|θ|/(1 + max|θ|)``, so the kept ones outrank the others by more than any score
noise of 1e-3.

>>> import torch
>>> scores = nm_layer_scores(torch.tensor([[0.1, -0.9, 0.5, 0.2, 3.0, 1.0, 2.0, 0.0]]), 2, 4)
>>> (scores >= KEPT_SCORE).int().tolist()
[[0, 1, 1, 0, 1, 0, 1, 0]]
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from fullspectrum.errors import MaskError
from fullspectrum.layers import find_layers
from fullspectrum.layers.nm import parse_nm
from fullspectrum.pruning.scoring import ScoringContext

DEFAULT_NM = "2:4"
"""The pattern of sparse tensor cores (NVIDIA Ampere and later), the ``nm`` generator's default."""
KEPT_SCORE = 2.0
"""Every kept weight scores at least this, every dropped one less than 1."""


class DenseLayerWarning(UserWarning):
    """A layer was left dense because its input dimension is not a multiple of ``M``."""


def nm_density(pattern: str) -> float:
    """The density an ``N:M`` pattern implies: ``N / M``.

    >>> nm_density("2:4")
    0.5
    """
    n, m = parse_nm(pattern)
    return n / m


def check_nm_density(pattern: str, density: float | None) -> float:
    """``N/M``, or a one-line MaskError when ``density`` is given and disagrees with it."""
    implied = nm_density(pattern)
    if density is not None and not math.isclose(float(density), implied, rel_tol=1e-9, abs_tol=1e-12):
        raise MaskError(
            f"density {density} disagrees with the N:M pattern {pattern}, which keeps N/M = {implied:.6g} "
            "of the weights; leave the density out or give exactly N/M"
        )
    return implied


def nm_layer_scores(weight: Tensor, n: int, m: int) -> Tensor:
    """Scores of one ``(out, in, *kernel)`` weight: at least :data:`KEPT_SCORE` for the ``n`` largest
    ``|θ|`` of each group of ``m`` along the flattened input dimension (ties: lower index), below 1
    for the rest. The input dimension must be a multiple of ``m``."""
    magnitude = weight.detach().abs().double().reshape(weight.shape[0], -1)  # (out, in*prod(kernel))
    groups = magnitude.reshape(magnitude.shape[0], -1, m)  # (out, groups, m)
    order = torch.argsort(-groups, dim=-1, stable=True)
    kept = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order[..., :n], True)
    scale = 1.0 + float(magnitude.max()) if magnitude.numel() else 1.0
    scores = groups / scale + KEPT_SCORE * kept
    return scores.reshape(weight.shape)


def nm_scores(ctx: ScoringContext) -> dict[str, Tensor]:
    """The ``nm`` generator's scores (see the module docstring); option ``nm`` (``"2:4"``)."""
    pattern = str(ctx.options["nm"])
    n, m = parse_nm(pattern)
    check_nm_density(pattern, ctx.density)
    input_major = {entry.name: entry.input_major for entry in find_layers(ctx.model)[0]}
    scores: dict[str, Tensor] = {}
    dense: list[str] = []
    for name, _, param in ctx.layers:
        weight = param.detach().T if input_major.get(name, False) else param.detach()  # (out, in, ...)
        length = weight[0].numel() if weight.shape[0] else 0
        if length % m:
            dense.append(f"{name} ({length} inputs per unit)")
            layer = torch.full(weight.shape, KEPT_SCORE, dtype=torch.float64, device=weight.device)
        else:
            layer = nm_layer_scores(weight, n, m)
        scores[name] = layer.T.contiguous() if input_major.get(name, False) else layer
    if dense:
        warnings.warn(
            f"{pattern}: left dense, input dimension not a multiple of {m}: {', '.join(dense)}",
            DenseLayerWarning,
            stacklevel=3,
        )
    ctx.report(1, 1)
    return scores


def nm_layer_counts(scores: dict[str, Tensor]) -> dict[str, int]:
    """Kept weights of each layer under ``nm``'s scores (those at :data:`KEPT_SCORE` or more)."""
    return {name: int((score >= KEPT_SCORE).sum()) for name, score in scores.items()}
