"""The full-spectrum engine: per-layer graph metrics of sparse masks (SPEC §1–4), and the network views.

Where a metric is computed:

* :mod:`~fullspectrum.spectrum.layer`: ``layer_spectrum``, one layer's ``LayerSpectrum``
  (Δr ``delta_r``, Δs ``delta_s``, λ ``lambda_w``, the iterative means, counts), and
  ``layer_spectra``, many layers solved in one batch;
* :mod:`~fullspectrum.spectrum.metrics`: the gap formulas of SPEC §2 on one graph;
* :mod:`~fullspectrum.spectrum.subgraphs`: the nested left-regular subgraphs (degree classes) and
  ``delta_r_imdb`` / ``lambda_imsg`` (SPEC §3);
* :mod:`~fullspectrum.spectrum.graph`: a mask as a bipartite graph (dead units removed), input checks;
* :mod:`~fullspectrum.spectrum.classes`: a layer's degree classes sliced in one pass;
* :mod:`~fullspectrum.spectrum.plan`: which graphs each layer needs, stacked across layers, values read back;
* :mod:`~fullspectrum.spectrum.stack`: exact top singular values of many graphs at once (components,
  batched dense calls, one Lanczos run);
* :mod:`~fullspectrum.spectrum.blocks`: a Lanczos run's diagonal blocks, made, joined and split;
* :mod:`~fullspectrum.spectrum.components`: a layer graph's connected components, a slice of rows at a time;
* :mod:`~fullspectrum.spectrum.dense`: batched dense top values (padded buckets; column groups of a layer);
* :mod:`~fullspectrum.spectrum.gram_lanczos`: lockstep Lanczos on ``A Aᵀ`` (shorter side), under a proven bound;
* :mod:`~fullspectrum.spectrum.dense_products`: a large lone block's products on a dense copy, in row pieces;
* :mod:`~fullspectrum.spectrum.kernels`: the compiled (numba) loops: byte products, one whole Lanczos step,
  the Grams' LAPACK call;
* :mod:`~fullspectrum.spectrum.lanczos`: the lockstep Golub–Kahan–Lanczos run over many blocks (numpy);
* :mod:`~fullspectrum.spectrum.backends`: numpy on the CPU or torch on a device, chosen per call;
* :mod:`~fullspectrum.spectrum.torch_backend`: the same kernels in torch, float64, on any device;
* :mod:`~fullspectrum.spectrum.singular`: exact largest singular values of one matrix;
* :mod:`~fullspectrum.spectrum.gram`: the Gram-matrix shortcut, taken only under a proven error bound;
* :mod:`~fullspectrum.spectrum.threads`: one BLAS thread while the engine runs, and its own threads
  for independent pieces of work (``run_all``);
* :mod:`~fullspectrum.spectrum.coordinate`: the coordinate ``v``, the vector ``u``, the ℓ2-moving
  distance and network means (SPEC §4);
* :mod:`~fullspectrum.spectrum.symbols`: the papers' symbols and chart axis titles of each metric;
* :mod:`~fullspectrum.spectrum.worker`: the torch-free spectra worker process beside a training loop;
* :mod:`~fullspectrum.spectrum.network`: ``analyze``, every layer of a model, checkpoint or state dict;
* :mod:`~fullspectrum.spectrum.graphon`: the graphon estimate of a mask (G25).
"""

from fullspectrum.spectrum.coordinate import (
    PLOT_AXES,
    VECTOR_AXES,
    full_spectrum_vector,
    moving_distance,
    network_summary,
    network_summary_by_step,
)
from fullspectrum.spectrum.gram_lanczos import load_compiled_kernels
from fullspectrum.spectrum.layer import (
    SPECTRUM_FIELDS,
    LayerSpectrum,
    layer_spectra,
    layer_spectrum,
    top_singular_values,
)
from fullspectrum.spectrum.subgraphs import DegreeClass, regular_subgraphs
from fullspectrum.spectrum.symbols import (
    AXIS_TITLES,
    COUNT_LABELS,
    SYMBOLS,
    axis_title,
    metric_label,
    metric_symbol,
)

__all__ = [
    "AXIS_TITLES",
    "COUNT_LABELS",
    "PLOT_AXES",
    "SYMBOLS",
    "VECTOR_AXES",
    "SPECTRUM_FIELDS",
    "DegreeClass",
    "LayerSpectrum",
    "full_spectrum_vector",
    "layer_spectra",
    "layer_spectrum",
    "load_compiled_kernels",
    "moving_distance",
    "network_summary",
    "network_summary_by_step",
    "regular_subgraphs",
    "top_singular_values",
    "axis_title",
    "metric_label",
    "metric_symbol",
]
