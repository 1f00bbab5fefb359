"""The sparse state of a network under training (SPEC §6; Liu et al., ITOP, ICML 2021).

The trainer keeps ordinary dense parameters and, beside them, one bool mask per
Conv/Linear weight: the first conv, 1×1 shortcuts and the classifier included;
biases and normalisation parameters never. After every optimiser step the
weights *and their momentum buffers* are multiplied by the masks, so a pruned
entry is exactly zero and carries no momentum into the step that may regrow it.
(The ``weight_orig``/``weight_mask`` reparametrisation is only an interchange
format: under it momentum and weight decay would move pruned entries.)

The *fired* masks are the running OR of every mask the run has had; their
fraction of all maskable weights is ITOP's in-time exploration rate ``R_s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from fullspectrum.errors import MaskError, unknown_name
from fullspectrum.layers import maskable_parameters
from fullspectrum.pruning.densities import erk_densities

INITS = ("uniform", "er", "erk")


def maskable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every Conv/Linear weight (``groups == 1``) by parameter name, in module order."""
    return {entry.name: entry.param for entry in maskable_parameters(model)}


def layer_densities(shapes: Mapping[str, tuple[int, ...]], density: float, init: str) -> dict[str, float]:
    """Per-layer density of the initial mask: ``uniform`` (every layer ``density``), ``er`` or ``erk``."""
    if init not in INITS:
        raise unknown_name("init", init, INITS)
    if init == "uniform":
        return {name: float(density) for name in shapes}
    return dict(erk_densities(dict(shapes), density, init))


def random_masks(
    shapes: Mapping[str, tuple[int, ...]], densities: Mapping[str, float], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Uniformly random masks with exactly ``round(density · numel)`` kept entries per layer."""
    masks = {}
    for name, shape in shapes.items():
        numel = math.prod(shape)
        keep = min(numel, max(0, round(densities[name] * numel)))
        flat = torch.zeros(numel, dtype=torch.bool)
        flat[torch.randperm(numel, generator=generator)[:keep]] = True
        masks[name] = flat.reshape(shape)
    return masks


@dataclass
class SparseState:
    """Masks and fired (ever-active) masks of the maskable weights; mutated in place while training."""

    masks: dict[str, torch.Tensor]
    """Current bool mask per weight, keyed by parameter name, on the weight's device."""
    fired: dict[str, torch.Tensor]
    """Running OR of every mask so far (ITOP's exploration), same keys and shapes."""

    @classmethod
    def from_masks(cls, masks: Mapping[str, torch.Tensor]) -> SparseState:
        masks = {name: mask.bool().clone() for name, mask in masks.items()}
        return cls(masks=masks, fired={name: mask.clone() for name, mask in masks.items()})

    @classmethod
    def dense(cls, weights: Mapping[str, torch.Tensor]) -> SparseState:
        return cls.from_masks({name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()})

    def check(self, weights: Mapping[str, torch.Tensor], source: str = "mask") -> None:
        """Raise MaskError unless the masks cover exactly these weights with matching shapes."""
        missing = [name for name in weights if name not in self.masks]
        extra = [name for name in self.masks if name not in weights]
        if missing or extra:
            raise MaskError(
                f"{source}: masks do not match the model (missing {missing[:3]}, unknown {extra[:3]})"
            )
        for name, weight in weights.items():
            if tuple(self.masks[name].shape) != tuple(weight.shape):
                raise MaskError(
                    f"{source}: mask of {name} has shape {tuple(self.masks[name].shape)}, "
                    f"the weight {tuple(weight.shape)}"
                )

    def to(self, device: torch.device | str) -> SparseState:
        self.masks = {name: mask.to(device) for name, mask in self.masks.items()}
        self.fired = {name: mask.to(device) for name, mask in self.fired.items()}
        return self

    @torch.no_grad()
    def apply(
        self, weights: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """Multiply every masked weight and its momentum buffer (if any) by its mask."""
        for name, weight in weights.items():
            mask = self.masks[name]
            weight.mul_(mask)
            if optimizer is not None:
                buffer = optimizer.state.get(weight, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.mul_(mask)

    def update_fired(self) -> None:
        for name, mask in self.masks.items():
            self.fired[name] |= mask

    def exploration_rate(self) -> float:
        """``R_s``: ever-active weights over all maskable weights."""
        fired = sum(int(mask.sum()) for mask in self.fired.values())
        total = sum(mask.numel() for mask in self.fired.values())
        return fired / total if total else 0.0

    def layer_exploration_rates(self) -> dict[str, float]:
        """``R_s`` of each layer, keyed by parameter name."""
        return {name: int(mask.sum()) / mask.numel() for name, mask in self.fired.items()}

    def density(self) -> float:
        kept = sum(int(mask.sum()) for mask in self.masks.values())
        return kept / sum(mask.numel() for mask in self.masks.values())

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Plain tensors only (``torch.load(weights_only=True)`` reads them back)."""
        return {
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
            "fired": {name: mask.cpu() for name, mask in self.fired.items()},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Mapping[str, torch.Tensor]]) -> SparseState:
        return cls(
            masks={name: mask.bool().clone() for name, mask in state["masks"].items()},
            fired={name: mask.bool().clone() for name, mask in state["fired"].items()},
        )
