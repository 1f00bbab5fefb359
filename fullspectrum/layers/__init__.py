"""Which tensors of a network are layers, and what they are called (SPEC §1, §6).

Modules:

* :mod:`~fullspectrum.layers.rule`: the one rule that decides which weights are layers (Conv/Linear,
  attention and MLP projections included; fused q/k/v projections analysed as three layers), with
  the reason for every tensor it skips, and the maskable weights that pruning and training use;
* :mod:`~fullspectrum.layers.selection`: the readers that apply it to an ``nn.Module`` or a bare
  state dict and return every layer's mask and weight, ready for ``layer_spectrum``;
* :mod:`~fullspectrum.layers.groups`: a layer's block (``model.layers.3``) and projection
  (``down_proj``, ``q``, ``conv1``), so repeated blocks read as a grid;
* :mod:`~fullspectrum.layers.nm`: N:M sparsity of a mask (``nm_pattern``: ``"2:4"``, or ``""``);
* :mod:`~fullspectrum.layers.names`: parameter name (``layer1.0.conv1.weight``) <-> layer name
  (``layer1.0.conv1``, ``attn.q``), and the wrapper prefixes (``module.``, ``_orig_mod.``) they drop.
"""

from fullspectrum.layers.names import (
    ROOT_NAME,
    layer_name,
    parameter_name,
    split_names,
    strip_wrappers,
    weight_key,
)
from fullspectrum.layers.rule import (
    LayerParameter,
    MaskableParameter,
    SkippedTensor,
    find_layers,
    layer_views,
    maskable_parameters,
)
from fullspectrum.layers.selection import (
    LayerRecord,
    LayerSelection,
    layers_from_module,
    layers_from_state_dict,
)

__all__ = [
    "ROOT_NAME",
    "LayerParameter",
    "LayerRecord",
    "LayerSelection",
    "MaskableParameter",
    "SkippedTensor",
    "find_layers",
    "layer_name",
    "layer_views",
    "layers_from_module",
    "layers_from_state_dict",
    "maskable_parameters",
    "parameter_name",
    "split_names",
    "strip_wrappers",
    "weight_key",
]
