"""Pruning-at-initialisation mask generators (SPEC §6b) and mask interchange.

``generate_masks(model, method, density, data=..., seed=...)`` returns a
``MaskResult`` with a bool mask for every Conv/Linear weight keeping exactly
``round(density·N)`` weights. Generators: ``random``, ``er``, ``erk`` (RigL /
ITOP layer densities), ``magnitude``, ``snip`` (Lee et al. 2019), ``iter_snip``
(FORCE, de Jorge et al. 2021), ``grasp`` (Wang et al. 2020), ``synflow``
(Tanaka et al. 2020). ``compute_scores`` exposes the scores before
thresholding, for PAGS (FS23). ``save_mask_checkpoint`` /
``load_mask_checkpoint`` (from ``fullspectrum.checkpoints.mask_file``) read and write
SPEC §8's mask files.
"""

from __future__ import annotations

import importlib

from fullspectrum.pruning.apply import apply_masks
from fullspectrum.pruning.densities import erk_densities, layer_score
from fullspectrum.pruning.generate import (
    GENERATOR_NAMES,
    GENERATORS,
    LayerCollapseWarning,
    MaskGenerator,
    MaskResult,
    compute_scores,
    generate_masks,
)
from fullspectrum.pruning.layers import MaskableParameter, maskable_parameters, target_count
from fullspectrum.pruning.topk import apportion, top_k_global, top_k_per_layer

_CHECKPOINT_NAMES = ("save_mask_checkpoint", "load_mask_checkpoint")

__all__ = [
    "GENERATORS",
    "GENERATOR_NAMES",
    "LayerCollapseWarning",
    "MaskGenerator",
    "MaskResult",
    "MaskableParameter",
    "apply_masks",
    "apportion",
    "compute_scores",
    "erk_densities",
    "generate_masks",
    "layer_score",
    "load_mask_checkpoint",
    "maskable_parameters",
    "save_mask_checkpoint",
    "target_count",
    "top_k_global",
    "top_k_per_layer",
]


def __getattr__(name: str):
    # imported on first use: fullspectrum.checkpoints.mask_file is a separate module
    if name in _CHECKPOINT_NAMES:
        return getattr(importlib.import_module("fullspectrum.checkpoints.mask_file"), name)
    raise AttributeError(f"module 'fullspectrum.pruning' has no attribute {name!r}")
