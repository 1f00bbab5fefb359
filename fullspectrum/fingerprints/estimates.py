"""Graphon estimates of every layer of a set of masks at one resolution (G25, SPEC §7b).

Each layer is estimated on its own by :func:`fullspectrum.spectrum.graphon.graphon_estimate`
(sorting and smoothing: units sorted by degree on each side, ``K`` equal blocks, each
block's edge density). ``K = 64`` is this project's default resolution, not G25's (the
paper states none); a side with fewer than ``K`` units keeps one block per unit.

>>> import torch
>>> masks = {"a.weight": torch.ones(4, 6, dtype=torch.bool), "b.weight": torch.zeros(2, 4, dtype=torch.bool)}
>>> estimates = layer_graphons(masks, K=2)
>>> estimates.layers, estimates.values("a.weight").tolist(), estimates.densities["b.weight"]
(('a.weight', 'b.weight'), [[1.0, 1.0], [1.0, 1.0]], 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from fullspectrum.errors import MaskError
from fullspectrum.spectrum.graphon import MAX_BLOCKS, Graphon, graphon_estimate

DEFAULT_K = MAX_BLOCKS
"""Blocks per side: 64, this project's default (G25 state no resolution)."""


@dataclass(frozen=True)
class LayerGraphons:
    """The graphon estimate of every layer of one set of masks."""

    K: int
    """The resolution asked for: at most ``K`` blocks per side (fewer where a side has fewer units)."""
    layers: tuple[str, ...]
    """Layer (parameter) names, in the masks' order."""
    graphons: Mapping[str, Graphon]
    """Each layer's estimate (block values, unit orders, block edges)."""
    densities: Mapping[str, float]
    """Each layer's mask density (kept / total)."""

    def values(self, layer: str) -> np.ndarray:
        """The ``(K_out, K_in)`` block densities of ``layer``."""
        if layer not in self.graphons:
            raise MaskError(f"no layer {layer!r} in these estimates; layers: {', '.join(self.layers)}")
        return self.graphons[layer].values

    def as_dict(self) -> dict:
        """Plain JSON-able values: ``K``, and per layer its block values, shape and density."""
        return {
            "K": self.K,
            "layers": {
                name: {
                    "values": self.values(name).tolist(),
                    "shape": list(self.values(name).shape),
                    "density": float(self.densities[name]),
                }
                for name in self.layers
            },
        }


def _as_array(mask, name: str) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.ndim < 2:
        raise MaskError(
            f"{name} mask must have at least 2 dimensions (out, in, ...); got shape {array.shape}"
        )
    return array


def layer_graphons(masks: Mapping[str, object], K: int = DEFAULT_K) -> LayerGraphons:
    """The graphon estimate of every layer of ``masks`` (``{name: bool mask (out, in, *kernel)}``) at ``K``.

    ``K = 64`` is this project's default, not G25's (they state none). A non-binary or
    one-dimensional mask raises :class:`fullspectrum.errors.MaskError` naming the layer.
    """
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise MaskError(f"K (blocks per side) must be a positive integer; got {K!r}")
    if not masks:
        raise MaskError("no masks to estimate: pass {layer name: bool mask}")
    graphons, densities = {}, {}
    for name, mask in masks.items():
        array = _as_array(mask, name)
        graphons[name] = graphon_estimate(array, max_blocks=int(K), name=name)
        densities[name] = float(array.astype(bool).mean())
    return LayerGraphons(K=int(K), layers=tuple(masks), graphons=graphons, densities=densities)
