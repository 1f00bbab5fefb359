"""Which tensors of a model are masked, and how many weights a density keeps.

SPEC §6: every ``Conv1d/2d/3d`` weight with ``groups == 1`` and every ``Linear``
weight is maskable: the first convolution, 1×1 shortcuts and the classifier
included; biases and normalisation parameters never are. Masks are keyed by the
parameter's name, ``layer1.0.conv1.weight`` (SPEC §8), in the model's module
order, which is also the "layer order" that breaks ties between equal scores.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> [name for name, _, _ in maskable_parameters(net)]
['0.weight', '2.weight']
>>> target_count(0.1, 55)
6
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from fullspectrum.errors import MaskError

MASKABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""Module types whose ``weight`` is a layer (transposed convolutions are not subclasses of these)."""


class MaskableParameter(NamedTuple):
    """One maskable weight: its parameter name, its module, and the parameter itself."""

    name: str
    """Parameter name as in ``model.state_dict()``, e.g. ``layer1.0.conv1.weight``."""
    module: nn.Module
    """The ``Conv*d`` / ``Linear`` module that owns it."""
    param: nn.Parameter
    """The weight tensor (never modified by this package)."""


def maskable_parameters(model: nn.Module) -> list[MaskableParameter]:
    """Every maskable weight of ``model`` in module order (SPEC §6).

    Grouped and depthwise convolutions are skipped (SPEC §1); a module that
    already carries a ``torch.nn.utils.prune`` mask (``weight_orig``) is refused,
    because its ``weight`` is no longer a parameter that can be scored.
    """
    found = []
    for module_name, module in model.named_modules():
        if not isinstance(module, MASKABLE_TYPES):
            continue
        if getattr(module, "groups", 1) != 1:
            continue
        if "weight_orig" in module._parameters:
            raise MaskError(
                f"layer {module_name!r} already has a torch.nn.utils.prune mask; "
                "call torch.nn.utils.prune.remove on it or pass an unpruned model"
            )
        param = module._parameters.get("weight")
        if param is None:
            continue
        prefix = f"{module_name}." if module_name else ""
        found.append(MaskableParameter(f"{prefix}weight", module, param))
    return found


def target_count(density: float, total: int) -> int:
    """Kept weights for a density: ``round(density * total)`` (SPEC §6b)."""
    return int(round(density * total))


def check_density(density: float) -> float:
    """``density`` as a float in ``(0, 1]``, or a one-line ``MaskError``."""
    try:
        value = float(density)
    except (TypeError, ValueError):
        raise MaskError(f"density must be a number in (0, 1], got {density!r}") from None
    if not 0.0 < value <= 1.0:
        raise MaskError(f"density must be in (0, 1] (the fraction of weights kept), got {density!r}")
    return value
