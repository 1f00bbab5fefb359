"""Sparse-aware initialisation: each unit's initial weights rescaled for the fan-in its mask keeps.

Evci et al., *Gradient Flow in Sparse Neural Networks and How Lottery Tickets Win*
(AAAI 2022; arXiv 2010.03533, 2020) show that a sparse network initialised like
a dense one starts with a vanishing signal: a unit that keeps ``k`` of its
``fan_in`` inputs sums ``k`` terms instead of ``fan_in``, so the variance of its
pre-activation shrinks by ``k / fan_in`` at every sparse layer, and a deep
network without normalisation layers (LeNet-5, Conv-6, an MLP) starts with
outputs, and gradients, close to zero. Their fix is the sparse variant of the
Kaiming/He scaling: draw each output unit ``i``'s weights with
``std = sqrt(2 / k_i)``, ``k_i`` being the fan-in its mask keeps.

What :func:`rescale_for_masks_` does, per maskable weight ``W`` of shape
``(out, in, *kernel)`` (a Linear's ``(out, in)``) and its mask ``M``:

* ``fan_in = in · prod(kernel)`` (the dense fan-in of one output unit),
  ``k_i = M[i].sum()`` (the kept fan-in of output unit / channel ``i``);
* every kept entry of row ``i`` is multiplied by ``sqrt(fan_in / k_i)``; pruned
  entries and rows that keep nothing are left untouched (the trainer zeroes them
  when it applies the masks).

It rescales the model's own initial weights rather than drawing new ones, so
the draw (and every seed) stays as it was and a dense mask leaves the weights
bit for bit unchanged. Within a layer the result has ``std_i ∝ 1 / sqrt(k_i)``,
Evci et al.'s rule: for a Kaiming fan-in initialisation (``std = sqrt(2 /
fan_in)``) it is exactly their ``sqrt(2 / k_i)``; for another one (PyTorch's
default Linear, ``std = 1 / sqrt(3 fan_in)``; the zoo's Kaiming fan-out convs)
it is that initialisation made sparse, i.e. ``std_dense · sqrt(fan_in / k_i)``.
Either way each unit's pre-activation at step 0 has the variance it would have
in the dense network (``k_i · std_i² = fan_in · std_dense²``), which is what
keeps the signal from shrinking layer after layer. The scale is per output unit,
not per layer, because random and ERK masks give the units of one layer
different kept fan-ins.

When it is used (``TrainConfig.sparse_init``, ``fullspectrum train
--sparse-init / --no-sparse-init``): by default on for models without
normalisation layers and off for those with (BatchNorm renormalises every unit's
pre-activation, so there ITOP21's plain setting is kept), and off when a mask
file brings its own weights (they are kept as saved: a generator's, PEGS's
warmed-up or a lottery ticket's rewound weights; ``--sparse-init`` rescales
them too, e.g. ``prune``'s initial weights for a static LeNet run). Dense runs
need nothing: a full mask leaves the weights as they are. A run's ``run.json``
records the resolved choice; a run recorded before the option existed reads as
``False``, which is how it was trained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

NORM_LAYERS: tuple[type[nn.Module], ...] = tuple(
    cls
    for cls in (
        nn.modules.batchnorm._NormBase,  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d
        nn.GroupNorm,
        nn.LayerNorm,
        getattr(nn, "RMSNorm", None),
    )
    if cls is not None
)
"""Modules that renormalise activations; a model with one keeps ITOP21's plain initialisation."""


def has_normalisation(model: nn.Module) -> bool:
    """True if ``model`` holds a normalisation layer (BatchNorm, GroupNorm, LayerNorm, ...)."""
    return any(isinstance(module, NORM_LAYERS) for module in model.modules())


def default_sparse_init(model: nn.Module, method: str) -> bool:
    """The preset of ``sparse_init``: on for a sparse run of a model without normalisation layers."""
    return method != "dense" and not has_normalisation(model)


def kept_fan_in(mask: torch.Tensor) -> torch.Tensor:
    """``k_i``: kept entries of each output unit (row ``i`` of the mask), shape ``(out,)``."""
    return mask.reshape(mask.shape[0], -1).sum(dim=1)


def unit_scales(mask: torch.Tensor) -> torch.Tensor:
    """``sqrt(fan_in / k_i)`` per output unit, shape ``(out,)``; 1 where a unit keeps nothing."""
    fan_in = math.prod(mask.shape[1:])
    kept = kept_fan_in(mask).to(torch.float64)
    return torch.where(kept > 0, (fan_in / kept.clamp(min=1)).sqrt(), torch.ones_like(kept))


@torch.no_grad()
def rescale_for_masks_(weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    """Multiply each kept entry of ``weights[name]`` by its unit's ``sqrt(fan_in / k_i)``, in place.

    >>> w = torch.ones(2, 4)
    >>> m = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    >>> rescale_for_masks_({"w": w}, {"w": m})
    >>> w
    tensor([[2., 1., 1., 1.],
            [1., 1., 1., 1.]])
    """
    for name, weight in weights.items():
        mask = masks[name].to(weight.device).bool()
        shape = (-1,) + (1,) * (weight.dim() - 1)  # (out, 1, ..., 1): one factor per output unit
        scales = unit_scales(mask).to(device=weight.device, dtype=weight.dtype).reshape(shape)
        weight.copy_(torch.where(mask, weight * scales, weight))
