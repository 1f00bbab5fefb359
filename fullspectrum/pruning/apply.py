"""Installing masks on a model the ``torch.nn.utils.prune`` way, for interchange.

``apply_masks`` registers each mask with ``prune.custom_from_mask``: the module
gets ``weight_orig`` (a parameter) and ``weight_mask`` (a buffer), and
``weight`` becomes their product, recomputed before every forward. This is the
form other pruning code reads and writes; our own trainer keeps plain weights
and multiplies by the mask after each step instead (SPEC §6), because momentum
and weight decay would otherwise move pruned entries of ``weight_orig``.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn
from torch.nn.utils import prune

from fullspectrum.errors import MaskError
from fullspectrum.layers import maskable_parameters


def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Install ``masks`` (parameter name -> 0/1 tensor) on ``model`` in place and return it.

    Every name must be a maskable weight of ``model`` and every mask its shape;
    layers without a mask are left dense.
    """
    layers = {name: (module, param) for name, module, param in maskable_parameters(model)}
    for name, mask in masks.items():
        if name not in layers:
            raise MaskError(f"mask {name!r} matches no Conv/Linear weight of {type(model).__name__}")
        module, param = layers[name]
        if tuple(mask.shape) != tuple(param.shape):
            raise MaskError(f"mask {name!r} has shape {tuple(mask.shape)}, the weight {tuple(param.shape)}")
        if mask.is_floating_point() and not bool(((mask == 0) | (mask == 1)).all()):
            raise MaskError(f"mask {name!r} is not binary")
    for name, mask in masks.items():
        module, param = layers[name]
        prune.custom_from_mask(module, name.rpartition(".")[2], mask.to(param))  # param's dtype, device
    return model
