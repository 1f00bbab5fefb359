"""Thresholding scores into masks with an exact count and stable ties (SPEC §6b).

Global methods rank the scores of all layers together and keep the top ``k``;
layer-wise methods keep the top ``k_l`` of each layer. Ties are broken by a
stable order, layer order first and flat index second, because magnitude and
SynFlow produce exact ties. NaN scores rank below everything (as ``-inf``).

The k-th largest value is found with ``kthvalue`` (linear time), so a global
threshold over a ResNet-18's 11M weights costs about as much as one pass over
them, whatever ``k`` is.

>>> import torch
>>> masks = top_k_global({"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([3.0, 2.0])}, 2)
>>> masks["a"].tolist(), masks["b"].tolist()
([False, True], [True, False])
>>> apportion({"a": 1.5, "b": 1.5, "c": 1.0}, {"a": 3, "b": 3, "c": 3}, 4)
{'a': 2, 'b': 1, 'c': 1}
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from fullspectrum.errors import MaskError


def top_k_flat(scores: Tensor, k: int) -> Tensor:
    """Bool mask of the ``k`` largest entries of a 1-D tensor; equal values go to lower indices."""
    n = scores.numel()
    if not 0 <= k <= n:
        raise MaskError(f"cannot keep {k} of {n} weights")
    keep = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if k == 0:
        return keep
    values = torch.nan_to_num(scores.detach(), nan=-math.inf)
    if values.dtype not in (torch.float32, torch.float64):
        values = values.double()
    threshold = torch.kthvalue(values, n - k + 1).values  # the k-th largest
    keep |= values > threshold
    missing = k - int(keep.sum())
    if missing > 0:
        tied = torch.nonzero(values == threshold).flatten()[:missing]
        keep[tied] = True
    return keep


def top_k_global(scores: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Keep the ``k`` highest scores over all layers together (dict order = layer order)."""
    names = list(scores)
    flat = torch.cat([scores[name].detach().flatten().double() for name in names])
    keep = top_k_flat(flat, k)
    masks, start = {}, 0
    for name in names:
        size = scores[name].numel()
        masks[name] = keep[start : start + size].reshape(scores[name].shape)
        start += size
    return masks


def top_k_per_layer(scores: Mapping[str, Tensor], counts: Mapping[str, int]) -> dict[str, Tensor]:
    """Keep the top ``counts[name]`` scores of each layer separately."""
    missing = [name for name in scores if name not in counts]
    if missing:
        raise MaskError(f"no kept count given for layer {missing[0]!r}")
    return {
        name: top_k_flat(score.flatten(), int(counts[name])).reshape(score.shape)
        for name, score in scores.items()
    }


def apportion(targets: Mapping[str, float], sizes: Mapping[str, int], total: int) -> dict[str, int]:
    """Integer counts near ``targets`` (each within one) that sum exactly to ``total``.

    Largest-remainder rounding: every layer gets ``floor(target)``, then the
    layers with the largest fractional parts (ties: layer order) get one more
    until the sum is ``total``. Counts never exceed the layer's size.
    """
    counts = {name: min(int(math.floor(t)), sizes[name]) for name, t in targets.items()}
    remainder = total - sum(counts.values())
    order = sorted(targets, key=lambda name: -(targets[name] - math.floor(targets[name])))
    step = 1 if remainder > 0 else -1
    while remainder != 0:
        changed = False
        for name in order if step > 0 else reversed(order):
            if remainder == 0:
                break
            new = counts[name] + step
            if 0 <= new <= sizes[name]:
                counts[name] = new
                remainder -= step
                changed = True
        if not changed:
            raise MaskError(f"cannot keep {total} weights in layers of sizes {dict(sizes)}")
    return counts
