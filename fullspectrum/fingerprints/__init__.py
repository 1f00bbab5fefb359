"""Graphon fingerprints of pruning methods (G25, SPEC §7b): estimates over seeds and widths.

G25 (Pham et al., NeurIPS 2025, *The Graphon Limit Hypothesis*) postulate that the masks
a pruning method draws converge, as width grows, to a graphon: the method's fingerprint.
Every estimate here is SPEC §7b's sorting-and-smoothing estimate at ``K`` blocks per side;
``K = 64`` is this project's default, not G25's (the paper states none).

Modules:

* :mod:`~fullspectrum.fingerprints.estimates`: ``layer_graphons``, every layer of a set of
  masks estimated at ``K`` (``LayerGraphons``);
* :mod:`~fullspectrum.fingerprints.fingerprint`: ``generator_fingerprint``, a generator's mean
  estimate over seeds per layer (``Fingerprint``), and ``dataset_batch`` for the data-driven
  generators;
* :mod:`~fullspectrum.fingerprints.width`: ``width_convergence``, the distances between
  estimates of successive widths and to the widest (``WidthConvergence``).
"""

from __future__ import annotations

from fullspectrum.fingerprints.estimates import DEFAULT_K, LayerGraphons, layer_graphons
from fullspectrum.fingerprints.fingerprint import (
    Fingerprint,
    dataset_batch,
    draw_estimates,
    draw_masks,
    generator_fingerprint,
    mask_seed,
    mean_estimates,
)
from fullspectrum.fingerprints.width import WidthConvergence, block_distance, width_convergence

__all__ = [
    "DEFAULT_K",
    "Fingerprint",
    "LayerGraphons",
    "WidthConvergence",
    "block_distance",
    "dataset_batch",
    "draw_estimates",
    "draw_masks",
    "generator_fingerprint",
    "layer_graphons",
    "mask_seed",
    "mean_estimates",
    "width_convergence",
]
