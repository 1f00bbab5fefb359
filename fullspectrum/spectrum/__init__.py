"""The full-spectrum engine: per-layer graph metrics of sparse masks (SPEC §1–4)."""

from fullspectrum.spectrum.coordinate import (
    PLOT_AXES,
    VECTOR_AXES,
    full_spectrum_vector,
    moving_distance,
    network_summary,
    network_summary_by_step,
)
from fullspectrum.spectrum.layer import SPECTRUM_FIELDS, LayerSpectrum, layer_spectrum, top_singular_values
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
    "layer_spectrum",
    "moving_distance",
    "network_summary",
    "network_summary_by_step",
    "regular_subgraphs",
    "top_singular_values",
    "axis_title",
    "metric_label",
    "metric_symbol",
]
