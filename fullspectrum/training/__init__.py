"""Dynamic sparse training with full-spectrum tracking (SPEC §6; ITOP, ICML 2021; FS23, NeurIPS 2023).

One trainer for ``dense``, ``static`` (a fixed mask), ``itop`` (ITOP-Rand/SET:
random growth) and ``rigl`` (gradient growth). It keeps plain parameters and a
bool mask per Conv/Linear weight (:mod:`~fullspectrum.training.sparse`),
rewires masks every ``ΔT`` iterations with plug-in prune/grow rules
(:mod:`~fullspectrum.training.rewire`), and records every layer's
full-spectrum coordinate into a run directory as it trains
(:mod:`~fullspectrum.training.trainer`), resumable from its checkpoints.
"""

from fullspectrum.training.config import PRESETS, TrainConfig
from fullspectrum.training.rewire import (
    GROW_FNS,
    METHODS,
    PRUNE_FNS,
    LayerUpdate,
    RewireContext,
    prune_rate,
    rewire,
)
from fullspectrum.training.sparse import SparseState, layer_densities, maskable_weights, random_masks
from fullspectrum.training.trainer import TrainResult, resume, train

__all__ = [
    "GROW_FNS",
    "METHODS",
    "PRESETS",
    "PRUNE_FNS",
    "LayerUpdate",
    "RewireContext",
    "SparseState",
    "TrainConfig",
    "TrainResult",
    "layer_densities",
    "maskable_weights",
    "prune_rate",
    "random_masks",
    "resume",
    "rewire",
    "train",
]
