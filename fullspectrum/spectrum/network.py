"""Full-spectrum analysis of a whole sparse network: ``analyze`` (SPEC §1–4).

Each prunable layer (SPEC §1) becomes one row of a table holding every
``LayerSpectrum`` field of Hoang et al. (ICLR 2023, NeurIPS 2023): Ramanujan
gap, weighted spectral gap, and the iterative means over nested regular
subgraphs. ``network_summary`` turns the table into the network-level values.

>>> import torch
>>> from torch import nn
>>> df = analyze(nn.Sequential(nn.Linear(4, 3)))
>>> list(df["layer"]), list(df["kind"]), list(df["shape"])
(['0'], ['Linear'], ['3x4'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from fullspectrum.checkpoints import SparseCheckpoint, interpret_checkpoint, load_sparse_checkpoint
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers import (
    LayerSelection,
    layer_name,
    layers_from_module,
    layers_from_state_dict,
    parameter_name,
)
from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectrum
from fullspectrum.spectrum.metrics import check_convention

TABLE_COLUMNS: tuple[str, ...] = ("layer", "kind", "shape", *SPECTRUM_FIELDS)
"""Columns of ``analyze``'s table, in order (the CLI's machine formats write exactly these)."""


def analyze(
    source,
    *,
    convention: str = "fs23",
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per layer: ``layer`` (module path), ``kind``, ``shape``, then every ``LayerSpectrum`` field.

    ``source`` is one of:

    * an ``nn.Module`` carrying masks the ``torch.nn.utils.prune`` way (or none:
      nonzero weights define the mask);
    * a state dict (``torch.nn.utils.prune`` form or plain), a mapping of masks
      (name -> mask), a mapping of ``(mask, weight)`` pairs, or a
      ``{"masks": ..., "state_dict": ...}`` mapping;
    * a checkpoint path (``str``/``Path``, any format ``load_sparse_checkpoint`` reads)
      or a :class:`SparseCheckpoint`.

    ``shape`` is written ``out x in x kernel...`` (``64x3x3x3``). ``df.attrs``
    holds ``"skipped"`` (a list of ``(name, reason)``), ``"notes"`` (notes and
    warnings, collapsed layers included) and ``"format"`` (how the source was read).
    ``progress(done, total)`` is called after each layer.
    """
    check_convention(convention)
    selection, fmt = _select(source)
    total = len(selection.layers)
    rows = []
    for done, layer in enumerate(selection.layers, start=1):
        spectrum = layer_spectrum(layer.mask, layer.weight, convention=convention, name=layer.name)
        rows.append({"layer": layer.name, "kind": layer.kind, "shape": format_shape(layer.shape)})
        rows[-1].update(spectrum.as_dict())
        if progress is not None:
            progress(done, total)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table.attrs["skipped"] = [(s.name, s.reason) for s in selection.skipped]
    table.attrs["notes"] = list(selection.notes)
    table.attrs["format"] = fmt
    return table


def format_shape(shape: tuple[int, ...]) -> str:
    """``(64, 3, 3, 3)`` -> ``"64x3x3x3"``."""
    return "x".join(str(int(s)) for s in shape)


def _select(source) -> tuple[LayerSelection, str]:
    if isinstance(source, nn.Module):
        selection = layers_from_module(source, source="model")
        if not selection.layers:
            raise FullSpectrumError("model: no Conv/Linear layers found")
        return selection, "module"
    if isinstance(source, str | Path):
        return _from_checkpoint(load_sparse_checkpoint(source))
    if isinstance(source, SparseCheckpoint):
        return _from_checkpoint(source)
    if isinstance(source, Mapping):
        if source and all(_is_pair(value) for value in source.values()):
            return _from_pairs(source), "pairs"
        converted = {k: _to_tensor(v) for k, v in source.items()}
        return _from_checkpoint(interpret_checkpoint(converted, source="state dict"))
    raise FullSpectrumError(
        f"cannot analyze a {type(source).__name__}: give an nn.Module, a state dict, a mapping of masks "
        "or a checkpoint path"
    )


def _from_checkpoint(checkpoint: SparseCheckpoint) -> tuple[LayerSelection, str]:
    return LayerSelection(checkpoint.layers, checkpoint.skipped, checkpoint.notes), checkpoint.format


def _from_pairs(pairs: Mapping) -> LayerSelection:
    masks = {name: _to_tensor(pair[0]) for name, pair in pairs.items()}
    weights = {
        parameter_name(layer_name(name)): _to_tensor(pair[1])
        for name, pair in pairs.items()
        if pair[1] is not None
    }
    selection = layers_from_state_dict(weights, masks, source="pairs")
    if not selection.layers:
        raise FullSpectrumError("pairs: no layers found (no 2-D to 5-D masks)")
    return selection


def _is_pair(value) -> bool:
    return isinstance(value, tuple | list) and len(value) == 2


def _to_tensor(value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, Mapping):
        return {k: _to_tensor(v) for k, v in value.items()}
    return value
