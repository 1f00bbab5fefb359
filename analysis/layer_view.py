"""One layer of a network's masks, ready to inspect: its bipartite graph's spectrum and structure.

For the graph inspector: the layer's mask (SPEC §1), its
:class:`~fullspectrum.spectrum.LayerSpectrum` (SPEC §2), its degree classes —
the left-regular subgraphs of FS23 (SPEC §3) — and the top singular values of
the mask and, where the weights are known, of ``|W ⊙ M|``, which the inspector
draws against the bipartite Ramanujan bound (R23).

>>> import torch
>>> masks = {"fc.weight": torch.eye(4, dtype=torch.bool) | torch.eye(4, dtype=torch.bool).roll(1, 1)}
>>> view = inspect_layer(masks, {}, "fc")
>>> view.mask.shape, int(view.spectrum.edges), [int(c.d_c) for c in view.classes], view.omega is None
((4, 4), 8, [2], True)
>>> [round(float(s), 6) for s in view.sigma[:2]]  # a 2-regular cycle: σ₁ = 2
[2.0, 1.414214]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from fullspectrum.errors import unknown_name
from fullspectrum.layers.names import layer_name
from fullspectrum.spectrum import (
    DegreeClass,
    LayerSpectrum,
    layer_spectrum,
    regular_subgraphs,
    top_singular_values,
)

SINGULAR_VALUES_SHOWN = 10
"""How many of the largest singular values a view keeps."""


@dataclass(frozen=True)
class LayerView:
    """One layer of a set of masks, analysed."""

    layer: str
    """Layer name (module path, ``fc1``)."""
    mask: np.ndarray
    """The bool mask, ``(out, in)`` or ``(out, in, *kernel)``."""
    weight: np.ndarray | None
    """The weights that go with the mask (same shape), or None when they are not known."""
    spectrum: LayerSpectrum
    """Every per-layer metric, weighted ones from :attr:`weight` (NaN without it)."""
    classes: tuple[DegreeClass, ...]
    """The layer's degree classes (regular subgraphs), by degree."""
    sigma: np.ndarray
    """The largest singular values of the mask's biadjacency matrix, descending."""
    omega: np.ndarray | None
    """The largest singular values of ``|W ⊙ M|``, or None without weights."""


def inspect_layer(masks: Mapping[str, Tensor], weights: Mapping[str, Tensor], layer: str) -> LayerView:
    """The view of ``layer`` among ``masks`` (parameter name -> bool mask), with its entry of
    ``weights`` where that has the mask's shape; an unknown layer fails with the list of known ones."""
    by_layer = {layer_name(name): name for name in masks}
    if layer not in by_layer:
        raise unknown_name("layer", layer, list(by_layer))
    mask = masks[by_layer[layer]].numpy()
    weight = weights.get(by_layer[layer])
    weight = weight.numpy() if weight is not None and tuple(weight.shape) == mask.shape else None
    return LayerView(
        layer=layer,
        mask=mask,
        weight=weight,
        spectrum=layer_spectrum(mask, weight, name=layer),
        classes=tuple(regular_subgraphs(mask, weight)),
        sigma=top_singular_values(mask, k=SINGULAR_VALUES_SHOWN),
        omega=top_singular_values(mask, weight, k=SINGULAR_VALUES_SHOWN) if weight is not None else None,
    )
