"""Which tensors of a network are layers, and what they are called (SPEC §1).

Modules:

* :mod:`~fullspectrum.layers.selection`: the one rule that decides which weights are layers
  of the rolled bipartite encoding, for an ``nn.Module`` and for a bare state dict, with the
  reason for every tensor it skips;
* :mod:`~fullspectrum.layers.names`: parameter name (``layer1.0.conv1.weight``) <-> layer name
  (``layer1.0.conv1``), and the wrapper prefixes (``module.``, ``_orig_mod.``) they drop.
"""

from fullspectrum.layers.names import ROOT_NAME, layer_name, parameter_name, strip_wrappers
from fullspectrum.layers.selection import (
    LayerRecord,
    LayerSelection,
    SkippedTensor,
    layers_from_module,
    layers_from_state_dict,
)

__all__ = [
    "ROOT_NAME",
    "LayerRecord",
    "LayerSelection",
    "SkippedTensor",
    "layers_from_module",
    "layers_from_state_dict",
    "layer_name",
    "parameter_name",
    "strip_wrappers",
]
