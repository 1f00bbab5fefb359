"""The full-spectrum engine: per-layer graph metrics of sparse masks (SPEC §1–4)."""

from fullspectrum.spectrum.coordinate import (
    PLOT_AXES,
    VECTOR_AXES,
    full_spectrum_vector,
    moving_distance,
    network_summary,
)
from fullspectrum.spectrum.layer import SPECTRUM_FIELDS, LayerSpectrum, layer_spectrum, top_singular_values
from fullspectrum.spectrum.subgraphs import DegreeClass, regular_subgraphs

__all__ = [
    "PLOT_AXES",
    "VECTOR_AXES",
    "SPECTRUM_FIELDS",
    "DegreeClass",
    "LayerSpectrum",
    "full_spectrum_vector",
    "layer_spectrum",
    "moving_distance",
    "network_summary",
    "regular_subgraphs",
    "top_singular_values",
]
