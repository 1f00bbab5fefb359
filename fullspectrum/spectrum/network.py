"""Full-spectrum analysis of a whole sparse network: ``analyze`` (SPEC §1–4).

Each prunable layer (SPEC §1) becomes one row of a table holding every
``LayerSpectrum`` field of Hoang et al. (ICLR 2023, NeurIPS 2023): Ramanujan
gap, weighted spectral gap, and the iterative means over nested regular
subgraphs. ``network_summary`` turns the table into the network-level values.

``analyze`` hands the engine its layers in the engine's own batches
(``layer_spectra`` gathers consecutive layers up to its backend's ``batch_edges``
kept weights; :func:`edge_batches` is that grouping): one call per batch, so
``progress`` follows the batches, the values are exactly those of one
``layer_spectra`` call for all layers, and a checkpoint read from a file lets go
of each batch's tensors once it is solved. Memory is bounded by the network's
tensors plus the engine's work on one batch (under 50 bytes per kept weight on a large layer: a 7B
model's 224 layers never meet in one batch). A sharded Hugging Face model
(:mod:`~fullspectrum.checkpoints.sharded`) is never held whole: its weights are
read one at a time into the same batches, and a batch no later layer can join is
solved before the next weight is read, so memory is one batch's tensors plus the
engine's work on it. Training snapshots and PAGS scoring, which hold their
layers anyway, give ``layer_spectra`` all of them at once. Each row also says
where the layer sits (``block``, ``projection``) and its N:M pattern.

>>> import torch
>>> from torch import nn
>>> df = analyze(nn.Sequential(nn.Linear(4, 3)))
>>> list(df["layer"]), list(df["kind"]), list(df["shape"])
(['0'], ['Linear'], ['3x4'])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from fullspectrum.checkpoints import SparseCheckpoint, interpret_checkpoint, load_sparse_checkpoint
from fullspectrum.checkpoints.sharded import ShardedCheckpoint, is_sharded_source, open_sharded
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers import (
    LayerSelection,
    layer_name,
    layers_from_module,
    layers_from_state_dict,
    parameter_name,
)
from fullspectrum.layers.groups import LayerGroup, layer_groups
from fullspectrum.layers.nm import nm_pattern
from fullspectrum.layers.selection import collapsed_notes
from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectra
from fullspectrum.spectrum.backends import backend_for
from fullspectrum.spectrum.metrics import check_convention

GROUP_COLUMNS: tuple[str, ...] = ("block", "projection", "nm_pattern")
"""Where a layer sits (:mod:`~fullspectrum.layers.groups`) and its N:M pattern (:mod:`~fullspectrum.layers.nm`)."""
TABLE_COLUMNS: tuple[str, ...] = ("layer", "kind", "shape", *SPECTRUM_FIELDS, *GROUP_COLUMNS)
"""Columns of ``analyze``'s table, in order (the CLI's machine formats write exactly these)."""


def batch_edges(device=None) -> int:
    """Kept weights the engine solves per batch on ``device`` (its backend's ``batch_edges``)."""
    return backend_for(device).batch_edges


def edge_batches(edges: Sequence[int], limit: int) -> list[range]:
    """Runs of consecutive layers holding at most ``limit`` edges together; a bigger layer goes alone
    (``layer_spectra``'s grouping at its backend's ``batch_edges``; layers without edges join any run).

    >>> edge_batches([3, 4, 2, 9, 1], 7)
    [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    """
    batches, start, held = [], 0, 0
    for index, count in enumerate(edges):
        if index > start and held + count > limit:
            batches.append(range(start, index))
            start, held = index, 0
        held += count
    if len(edges) > start:
        batches.append(range(start, len(edges)))
    return batches


def analyze(
    source,
    *,
    convention: str = "fs23",
    progress: Callable[[int, int], None] | None = None,
    device=None,
    layers: str | None = None,
) -> pd.DataFrame:
    """One row per layer: ``layer`` (module path), ``kind``, ``shape``, every ``LayerSpectrum`` field,
    then ``block``, ``projection`` (:func:`~fullspectrum.layers.groups.layer_groups`, over all of the
    network's layers) and ``nm_pattern`` (``"2:4"``, or ``""``: :func:`~fullspectrum.layers.nm.nm_pattern`).

    ``source`` is one of:

    * an ``nn.Module`` carrying masks the ``torch.nn.utils.prune`` way (or none:
      nonzero weights define the mask);
    * a state dict (``torch.nn.utils.prune`` form or plain), a mapping of masks
      (name -> mask), a mapping of ``(mask, weight)`` pairs, or a
      ``{"masks": ..., "state_dict": ...}`` mapping;
    * a checkpoint path (``str``/``Path``, any format ``load_sparse_checkpoint`` reads)
      or a :class:`SparseCheckpoint`;
    * a Hugging Face model folder (``model.safetensors.index.json`` and its shards, or one
      ``model.safetensors``), its index file, or a :class:`ShardedCheckpoint`: read weight by
      weight (:mod:`~fullspectrum.checkpoints.sharded`), each batch's tensors dropped once solved,
      so memory holds one batch, never the model.

    ``layers`` (a regular expression, ``re.search`` on the layer name) picks a subset; a
    sharded model's other weights are not even read.

    ``shape`` is written ``out x in x kernel...`` (``64x3x3x3``). ``df.attrs``
    holds ``"skipped"`` (a list of ``(name, reason)``), ``"notes"`` (notes and
    warnings, collapsed layers included) and ``"format"`` (how the source was read).
    Layers are solved in batches (``edge_batches``); ``progress(done, total)`` is
    called after each batch, ``done`` counting the layers finished (``total`` at the
    end). ``device`` says where the arithmetic runs (``"cpu"``, ``"cuda"``,
    ``"cuda:N"``; default the CPU); the values agree across devices to 1e-9.
    """
    check_convention(convention)
    keep = layer_filter(layers)
    if isinstance(source, ShardedCheckpoint) or is_sharded_source(source):
        sharded = source if isinstance(source, ShardedCheckpoint) else open_sharded(source)
        return _analyze_sharded(sharded, keep, layers, convention, progress, device)
    selection, fmt = _select(source)
    skipped, notes = selection.skipped, selection.notes
    # Records held here alone (a checkpoint read from a file) go as soon as their batch is solved:
    # on a ResNet-18 at density 0.2 (bench_memory.py) the peak is then ~106 MB above the imports for
    # its 53 MB file, ~122 MB with every layer held to the end.
    records: list = list(selection.layers)
    del selection
    groups = _groups([layer.name for layer in records])
    if keep is not None:
        _check_matches(layers, [layer.name for layer in records], keep)
        records = [layer for layer in records if keep(layer.name)]
    total = len(records)
    edges = [_edges(layer.mask) for layer in records]
    limit = batch_edges(device)  # an unknown device fails here, before any work
    rows: list[dict] = []
    for batch in edge_batches(edges, limit):
        rows += _batch_rows([records[i] for i in batch], convention, device, groups)
        for index in batch:
            records[index] = None
        if progress is not None:
            progress(batch.stop, total)
    return _table(rows, skipped, notes, fmt)


def _analyze_sharded(
    checkpoint: ShardedCheckpoint, keep, pattern: str | None, convention: str, progress, device
) -> pd.DataFrame:
    """``analyze`` of a sharded model: weights read one at a time, solved in ``edge_batches``' runs."""
    names = checkpoint.layer_names
    groups = _groups(names)
    if keep is not None:
        _check_matches(pattern, names, keep)
    total = sum(1 for name in names if keep is None or keep(name))
    limit = batch_edges(device)
    rows: list[dict] = []
    notes = list(checkpoint.notes)
    pending: list = []  # records of the batch being gathered, not solved yet
    held = 0  # edges of the batch being gathered (solved or not)
    open_batch = False  # a batch has layers (solved or not) whose progress is not reported yet
    for records in checkpoint.records(keep):
        notes += collapsed_notes(tuple(records))
        for record in records:
            count = _edges(record.mask)
            if open_batch and held + count > limit:  # the grouping of edge_batches, decided as layers arrive
                if pending:
                    rows += _batch_rows(pending, convention, device, groups)
                pending, held = [], 0
                if progress is not None:
                    progress(len(rows), total)
            pending.append(record)
            held += count
            open_batch = True
            if held > limit:  # no later layer can join this batch: solve it before the next is read
                rows += _batch_rows(pending, convention, device, groups)
                pending = []
        record = None
        del records
    if pending:
        rows += _batch_rows(pending, convention, device, groups)
    if open_batch:
        if progress is not None:
            progress(len(rows), total)
    return _table(rows, checkpoint.skipped, notes, checkpoint.format)


def _table(rows: list[dict], skipped, notes, fmt: str) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table.attrs["skipped"] = [(s.name, s.reason) for s in skipped]
    table.attrs["notes"] = list(notes)
    table.attrs["format"] = fmt
    return table


def layer_filter(pattern: str | None):
    """``name -> bool`` for a ``layers`` regular expression (``re.search``), None for all layers."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise FullSpectrumError(f"layers {pattern!r}: not a regular expression ({error})") from None
    return lambda name: compiled.search(name) is not None


def _check_matches(pattern: str | None, names: list[str], keep) -> None:
    if not any(keep(name) for name in names):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise FullSpectrumError(f"layers {pattern!r} matches none of the {len(names)} layers ({shown})")


def _groups(names: list[str]) -> dict[str, LayerGroup]:
    return dict(zip(names, layer_groups(names)))


def _batch_rows(records: list, convention: str, device, groups: dict[str, LayerGroup]) -> list[dict]:
    """Table rows of one batch of layer records (the records are held only while this runs)."""
    jobs = [(layer.mask, layer.weight, layer.name) for layer in records]
    spectra = layer_spectra(jobs, convention=convention, device=device)
    return [
        {
            "layer": layer.name,
            "kind": layer.kind,
            "shape": format_shape(layer.shape),
            **spectrum.as_dict(),
            "block": groups[layer.name].block,
            "projection": groups[layer.name].projection,
            "nm_pattern": nm_pattern(layer.mask),
        }
        for layer, spectrum in zip(records, spectra, strict=True)
    ]


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


def _edges(mask) -> int:
    """Kept weights of a mask (torch tensor or array; any nonzero counts, as the engine will check)."""
    if hasattr(mask, "count_nonzero"):
        return int(mask.count_nonzero())
    return int(np.count_nonzero(mask))


def _is_pair(value) -> bool:
    return isinstance(value, tuple | list) and len(value) == 2


def _to_tensor(value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, Mapping):
        return {k: _to_tensor(v) for k, v in value.items()}
    return value
