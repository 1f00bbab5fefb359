"""Dynamic sparse training with full-spectrum tracking (SPEC §6; ITOP, ICML 2021; FS23, NeurIPS 2023).

One trainer for ``dense``, ``static`` (a fixed mask), ``itop`` (ITOP-Rand/SET:
random growth) and ``rigl`` (gradient growth), resumable from its checkpoints.

Modules:

* :mod:`~fullspectrum.training.config`: ``TrainConfig`` and the dataset presets;
* :mod:`~fullspectrum.training.trainer`: ``train`` / ``resume``, every input checked before a run folder exists;
* :mod:`~fullspectrum.training.loop`: the loop (``Session``): steps, mask updates, snapshots, checkpoints;
* :mod:`~fullspectrum.training.initial`: where a run starts: data, resolved config, initial masks and weights;
* :mod:`~fullspectrum.training.sparse`: plain parameters plus a bool mask per Conv/Linear weight;
* :mod:`~fullspectrum.training.sparse_init`: sparse-aware initialisation (Evci et al. 2020): each unit's
  initial weights rescaled for the fan-in its mask keeps;
* :mod:`~fullspectrum.training.rewire`: prune/grow rules (plug-ins by name) and the prune-rate schedule;
* :mod:`~fullspectrum.training.snapshots`: each layer's full-spectrum row recorded off the loop's path;
* :mod:`~fullspectrum.training.spectra_worker`: whether those spectra are computed inline or in the
  spectra worker process (:mod:`fullspectrum.spectrum.worker`);
* :mod:`~fullspectrum.training.recording`: evaluation, mixed precision and divergence (``TrainingDiverged``);
* :mod:`~fullspectrum.training.checkpoint`: the training checkpoint a run resumes from.
"""

from fullspectrum.training.config import PRESETS, TrainConfig
from fullspectrum.training.recording import TrainingDiverged
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
    "TrainingDiverged",
    "layer_densities",
    "maskable_weights",
    "prune_rate",
    "random_masks",
    "resume",
    "rewire",
    "train",
]
