"""Mask rewiring of dynamic sparse training: prune, grow, schedule (SPEC §6).

Every ``ΔT`` iterations each layer prunes ``k = ceil(p_t · nnz)`` of its active
weights with the smallest ``|w|`` and grows ``k`` inactive ones, so its density
never changes:

* **ITOP-Rand / SET** (Mocanu et al. 2018; Liu et al., ITOP, ICML 2021) grow
  uniformly at random;
* **RigL** (Evci et al., ICML 2020) grows where ``|∂L/∂w|`` of the current
  minibatch is largest.

Grown weights start at exactly 0 with zero momentum, even a weight pruned and
regrown in the same update. The prune rate decays with a cosine,
``p_t = p_min + (p_0 - p_min)(1 + cos(π t / T)) / 2``.

Prune and grow rules are plug-ins with one signature,
``select(candidates, k, context) -> chosen``: ``candidates`` is a bool tensor of
the entries the rule may pick, ``chosen`` a bool tensor with exactly ``k`` of
them. They are registered by name in :data:`PRUNE_FNS` and :data:`GROW_FNS`.

>>> prune_rate(0, 100), round(prune_rate(100, 100), 6)
(0.5, 0.005)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from fullspectrum.errors import unknown_name
from fullspectrum.layers.names import layer_name
from fullspectrum.training.sparse import SparseState

P_0 = 0.5
P_MIN = 0.005


@dataclass(frozen=True)
class RewireContext:
    """What a prune or grow rule may look at for one layer."""

    weight: torch.Tensor
    """The layer's current weights, shape ``(out, in, *kernel)``."""
    gradient: torch.Tensor | None
    """Dense ``∂L/∂w`` of the current minibatch (RigL), or None."""
    generator: torch.Generator
    """CPU generator for random choices (its state is checkpointed)."""


SelectFn = Callable[[torch.Tensor, int, RewireContext], torch.Tensor]


def _lowest(scores: torch.Tensor, candidates: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` candidates of lowest score, ties broken by index."""
    flat = torch.where(candidates.flatten(), scores.flatten().double(), math.inf)
    order = torch.argsort(flat, stable=True)[:k]
    chosen = torch.zeros(candidates.numel(), dtype=torch.bool, device=candidates.device)
    chosen[order] = True
    return chosen.reshape(candidates.shape)


def prune_magnitude(candidates: torch.Tensor, k: int, context: RewireContext) -> torch.Tensor:
    """The ``k`` active weights of smallest ``|w|`` (ties: lowest index first)."""
    return _lowest(context.weight.detach().abs(), candidates, k)


def grow_random(candidates: torch.Tensor, k: int, context: RewireContext) -> torch.Tensor:
    """``k`` inactive weights uniformly at random (ITOP-Rand / SET)."""
    index = candidates.flatten().nonzero().squeeze(1).cpu()
    picked = index[torch.randperm(index.numel(), generator=context.generator)[:k]]
    chosen = torch.zeros(candidates.numel(), dtype=torch.bool)
    chosen[picked] = True
    return chosen.reshape(candidates.shape).to(candidates.device)


def grow_gradient(candidates: torch.Tensor, k: int, context: RewireContext) -> torch.Tensor:
    """The ``k`` inactive weights of largest ``|∂L/∂w|`` on the current minibatch (RigL)."""
    if context.gradient is None:
        raise ValueError("gradient growth needs the dense gradient of the current minibatch")
    return _lowest(-context.gradient.detach().abs(), candidates, k)


PRUNE_FNS: Mapping[str, SelectFn] = {"magnitude": prune_magnitude}
GROW_FNS: Mapping[str, SelectFn] = {"random": grow_random, "gradient": grow_gradient}


@dataclass(frozen=True)
class Method:
    """A training method: which rules rewire its masks (None = masks never change)."""

    prune: str | None
    """Name in PRUNE_FNS."""
    grow: str | None
    """Name in GROW_FNS."""
    default_delta_t: int
    """ΔT of ITOP21's CIFAR runs (1500 for SET/ITOP-Rand, 4000 for RigL)."""

    @property
    def rewires(self) -> bool:
        return self.prune is not None

    @property
    def needs_gradient(self) -> bool:
        return self.grow == "gradient"


METHODS: Mapping[str, Method] = {
    "dense": Method(None, None, 0),
    "static": Method(None, None, 0),
    "itop": Method("magnitude", "random", 1500),
    "rigl": Method("magnitude", "gradient", 4000),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return METHODS[name]


def prune_rate(step: int, total_steps: int, p_0: float = P_0, p_min: float = P_MIN) -> float:
    """Cosine-decayed prune rate ``p_t`` at iteration ``step`` of ``total_steps``."""
    return p_min + (p_0 - p_min) * (1 + math.cos(math.pi * step / max(total_steps, 1))) / 2


@dataclass(frozen=True)
class LayerUpdate:
    """One layer's mask update (an ``events`` row)."""

    layer: str
    """Layer name (module path)."""
    pruned: int
    """Weights removed."""
    grown: int
    """Weights added (always equals ``pruned``)."""


def rewire_layer(mask: torch.Tensor, k: int, prune: SelectFn, grow: SelectFn, context: RewireContext):
    """New mask of one layer: ``k`` pruned by ``prune`` then ``k`` grown by ``grow``.

    Returns ``(new_mask, grown)``; ``grown`` may include entries just pruned.
    """
    pruned = prune(mask, k, context)
    kept = mask & ~pruned
    grown = grow(~kept, k, context)
    return kept | grown, grown


@torch.no_grad()
def rewire(
    state: SparseState,
    weights: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    *,
    rate: float,
    prune: str,
    grow: str,
    generator: torch.Generator,
    gradients: Mapping[str, torch.Tensor] | None = None,
) -> list[LayerUpdate]:
    """Rewire every layer in place: masks, fired masks, weights and momentum.

    A layer with no inactive weight (made dense by ERK) has nothing to explore
    and is left alone. Grown weights and their momentum are set to exactly 0.
    """
    if prune not in PRUNE_FNS:
        raise unknown_name("prune rule", prune, PRUNE_FNS)
    if grow not in GROW_FNS:
        raise unknown_name("grow rule", grow, GROW_FNS)
    updates = []
    for name, weight in weights.items():
        mask = state.masks[name]
        nnz = int(mask.sum())
        k = math.ceil(rate * nnz) if nnz < mask.numel() else 0
        if k == 0:
            updates.append(LayerUpdate(layer_name(name), 0, 0))
            continue
        gradient = gradients.get(name) if gradients is not None else None
        context = RewireContext(weight=weight, gradient=gradient, generator=generator)
        new_mask, grown = rewire_layer(mask, k, PRUNE_FNS[prune], GROW_FNS[grow], context)
        state.masks[name] = new_mask
        weight.mul_(new_mask)
        weight.masked_fill_(grown, 0.0)
        if optimizer is not None:
            buffer = optimizer.state.get(weight, {}).get("momentum_buffer")
            if buffer is not None:
                buffer.mul_(new_mask).masked_fill_(grown, 0.0)
        updates.append(LayerUpdate(layer_name(name), k, int(grown.sum())))
    state.update_fired()
    return updates
