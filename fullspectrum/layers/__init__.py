"""Which tensors of a network are layers, and what they are called (SPEC §1).

Modules:

* :mod:`~fullspectrum.layers.selection`: the one rule that decides which weights are layers
  of the rolled bipartite encoding, for an ``nn.Module`` and for a bare state dict, with the
  reason for every tensor it skips.
"""

from fullspectrum.layers.selection import (
    LayerRecord,
    LayerSelection,
    SkippedTensor,
    layers_from_module,
    layers_from_state_dict,
    module_path,
    strip_wrappers,
)

__all__ = [
    "LayerRecord",
    "LayerSelection",
    "SkippedTensor",
    "layers_from_module",
    "layers_from_state_dict",
    "module_path",
    "strip_wrappers",
]
