"""Pruning-at-initialisation mask generators (SPEC §6b) and mask interchange.

``generate_masks(model, method, density, data=..., seed=...)`` returns a
``MaskResult`` with a bool mask for every maskable weight keeping exactly
``round(density·N)`` weights. Generators: ``random``, ``er``, ``erk`` (RigL /
ITOP layer densities), ``magnitude``, ``snip`` (Lee et al. 2019), ``iter_snip``
(FORCE, de Jorge et al. 2021), ``grasp`` (Wang et al. 2020), ``synflow``
(Tanaka et al. 2020), ``nm`` (magnitude N:M, e.g. 2:4, at density ``N/M``). ``compute_scores`` exposes the scores before
thresholding, for PAGS (FS23). ``save_mask_checkpoint`` /
``load_mask_checkpoint`` (from ``fullspectrum.checkpoints.mask_file``) read and write
SPEC §8's mask files. Which weights are masked is :mod:`fullspectrum.layers.rule`'s rule
(``maskable_parameters``, re-exported here).

Modules:

* :mod:`~fullspectrum.pruning.generate`: the generator registry, ``generate_masks`` and
  ``compute_scores``;
* :mod:`~fullspectrum.pruning.scores`: the scoring rule of each generator;
* :mod:`~fullspectrum.pruning.nm`: the ``nm`` generator, N of every M consecutive input weights by magnitude;
* :mod:`~fullspectrum.pruning.scoring`: what scoring shares (data budget, functional forward pass);
* :mod:`~fullspectrum.pruning.densities`: ER/ERK per-layer densities;
* :mod:`~fullspectrum.pruning.topk`: thresholding scores into masks with exact counts;
* :mod:`~fullspectrum.pruning.budget`: how many weights a density keeps;
* :mod:`~fullspectrum.pruning.apply`: installing masks the ``torch.nn.utils.prune`` way.
"""

from __future__ import annotations

import importlib

from fullspectrum.layers.rule import MaskableParameter, maskable_parameters
from fullspectrum.pruning.apply import apply_masks
from fullspectrum.pruning.budget import target_count
from fullspectrum.pruning.densities import erk_densities, layer_score
from fullspectrum.pruning.generate import (
    GENERATOR_NAMES,
    GENERATORS,
    LayerCollapseWarning,
    MaskGenerator,
    MaskResult,
    compute_scores,
    generate_masks,
    get_generator,
)
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
    "get_generator",
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
