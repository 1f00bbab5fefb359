"""Global magnitude masks and the kept-set distance between two of them (SPEC §9).

IMP (Frankle & Carbin, ICLR 2019) and unstructured Early-Bird tickets (You et
al., ICLR 2020) both keep the ``k`` largest ``|w|`` over all prunable weights
together. IMP ranks only the weights its current mask still keeps, so every
level's mask is a subset of the previous one; ties go to the earlier layer and
the lower index (:func:`~fullspectrum.pruning.topk.top_k_global`), so a mask is
a pure function of the weights.

Two masks with ``k`` kept weights each differ by ``1 - |A ∩ B| / k``, the share
of the kept set that changed; a Hamming distance over all weights would be at
most ``2d`` and says little at high sparsity.

>>> import torch
>>> w = {"a": torch.tensor([0.5, -3.0]), "b": torch.tensor([2.0, 0.1])}
>>> m = global_magnitude_mask(w, 2)
>>> m["a"].tolist(), m["b"].tolist()
([False, True], [True, False])
>>> kept_set_distance(m, {"a": torch.tensor([True, True]), "b": torch.tensor([False, False])})
0.5
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from fullspectrum.errors import MaskError
from fullspectrum.pruning.topk import top_k_global


def classifier_name(names: Iterable[str]) -> str:
    """The output layer among maskable weight names in module order: the last one (every zoo model's
    classifier, ``fc`` or ``classifier``, is its last Conv/Linear layer)."""
    names = list(names)
    if not names:
        raise MaskError("the model has no maskable weights")
    return names[-1]


def global_magnitude_mask(
    weights: Mapping[str, Tensor],
    kept: int,
    *,
    within: Mapping[str, Tensor] | None = None,
    prunable: Iterable[str] | None = None,
) -> dict[str, Tensor]:
    """Bool masks keeping the ``kept`` largest ``|w|`` over the ``prunable`` weights together.

    ``within`` (IMP's current masks) restricts the choice to entries it keeps, so the result is a
    subset of it; a weight not in ``prunable`` (default: every one) keeps its ``within`` mask (all
    ones without one). Masks are on the CPU, keyed and shaped like ``weights``.
    """
    names = list(weights)
    prunable = set(names if prunable is None else prunable)
    unknown = sorted(prunable - set(names))
    if unknown:
        raise MaskError(f"prunable weight {unknown[0]!r} is not among the weights")
    scores, masks = {}, {}
    for name in names:
        weight = weights[name].detach().to("cpu")
        current = _mask_for(within, name, weight)
        if name in prunable:
            scores[name] = torch.where(current, weight.abs().double(), -math.inf)
        else:
            masks[name] = current.clone()
    available = sum(int(torch.isfinite(score).sum()) for score in scores.values())
    if not 0 <= kept <= available:
        raise MaskError(f"cannot keep {kept} weights: {available} prunable weights are kept now")
    chosen = top_k_global(scores, kept) if scores else {}
    return {name: chosen[name] if name in chosen else masks[name] for name in names}


def _mask_for(within: Mapping[str, Tensor] | None, name: str, weight: Tensor) -> Tensor:
    if within is None:
        return torch.ones(weight.shape, dtype=torch.bool)
    if name not in within:
        raise MaskError(f"no current mask for weight {name!r}")
    mask = within[name].detach().to("cpu", torch.bool)
    if tuple(mask.shape) != tuple(weight.shape):
        raise MaskError(f"mask {name} has shape {tuple(mask.shape)} but its weight has {tuple(weight.shape)}")
    return mask


def kept_count(masks: Mapping[str, Tensor], names: Iterable[str] | None = None) -> int:
    """Kept entries of ``masks`` (of the ``names`` among them, default all)."""
    names = list(masks) if names is None else list(names)
    return sum(int(masks[name].sum()) for name in names)


def kept_set_distance(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """``1 - |A ∩ B| / k`` for two masks over the same weights that each keep ``k`` entries."""
    if set(a) != set(b):
        raise MaskError(f"masks over different weights: {sorted(set(a) ^ set(b))[:3]}")
    k_a, k_b = kept_count(a), kept_count(b)
    if k_a != k_b or k_a == 0:
        raise MaskError(f"the kept-set distance needs masks of the same nonzero size, got {k_a} and {k_b}")
    common = sum(int((a[name].to(torch.bool) & b[name].to(torch.bool)).sum()) for name in a)
    return (k_a - common) / k_a  # exact where 1 - common/k is not: 1 - 18/20 < 0.1 in floats
