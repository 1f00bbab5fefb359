"""Sharded Hugging Face safetensors models, read one layer at a time (SPEC §1, §8).

Today's pruned language models (Wanda, Sun et al. ICLR 2024; SparseGPT, Frantar & Alistarh
ICML 2023; 2:4 for sparse tensor cores) ship as a folder of ``.safetensors`` shards with a
``model.safetensors.index.json`` whose ``weight_map`` names the shard of every tensor. A 7B
model is 13–27 GB: it is never loaded whole. :func:`open_sharded` reads only the index and each
shard's header (names, shapes, dtypes: every shape checked against the size limit of
:mod:`~fullspectrum.checkpoints.limits` before any data is read), decides from names and shapes
alone which tensors are layers (the bare-state-dict rule of :mod:`fullspectrum.layers.rule`:
embeddings and norms skipped, fused q/k/v split, GPT-2's input-major layout), and
:meth:`ShardedCheckpoint.records` then yields the layer records weight by weight, each tensor
read through ``safetensors.safe_open`` (memory-mapped) when it is needed and dropped by the
caller once analysed. A folder holding a single ``model.safetensors`` is read the same way.

Pruned weights are exact zeros (nonzeros define the mask), or ``torch.nn.utils.prune`` pairs
(``X.weight_orig`` + ``X.weight_mask``) when the file carries them. Layers are listed in name
order with numbers compared as numbers (``model.layers.2`` before ``model.layers.10``): shards
do not keep the model's order. A missing shard, an index that is not JSON or names a tensor its
shard lacks, a header over :data:`MAX_HEADER_BYTES`: one-line CheckpointErrors naming the file.
"""

from __future__ import annotations

import json
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from fullspectrum.checkpoints.limits import check_shape
from fullspectrum.errors import CheckpointError, FullSpectrumError
from fullspectrum.layers import LayerRecord, SkippedTensor, layer_name
from fullspectrum.layers.names import ROOT_NAME, split_attribute, split_names
from fullspectrum.layers.rule import (
    KIND_BY_NDIM,
    is_gpt2_layout,
    state_dict_layout,
    state_dict_skip_reason,
)
from fullspectrum.layers.selection import (
    NOTE_BARE_STATE_DICT,
    NOTE_GPT2,
    REASON_UNMASKED,
    records_of_weight,
)

INDEX_NAME = "model.safetensors.index.json"
"""The index file of a sharded Hugging Face model."""
SINGLE_NAME = "model.safetensors"
"""The one file of an unsharded Hugging Face model folder."""
MAX_HEADER_BYTES = 100 * 2**20
"""Largest safetensors header read (the safetensors library's own limit, 100 MB)."""
MAX_INDEX_BYTES = 64 * 2**20
"""Largest index file read: a 405B model's index is about 200 kB."""
NOTE_ORDER = (
    "sharded safetensors keep tensors in name order, not the model's: layers are listed in name order "
    "(numbers compared as numbers)"
)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a sharded model, as its shard's header describes it."""

    name: str
    """Tensor name (``model.layers.0.mlp.down_proj.weight``)."""
    shard: Path
    """The shard file holding it."""
    shape: tuple[int, ...]
    """Its shape."""


@dataclass(frozen=True)
class PlannedWeight:
    """A weight that holds a layer (three when fused), planned from names and shapes alone."""

    parameter: str
    """Parameter name the layer is keyed by (``...q_proj.weight``; ``X.weight`` for a prune pair)."""
    weight: TensorEntry
    """The tensor of its weights (``X.weight_orig`` for a ``torch.nn.utils.prune`` pair)."""
    mask: TensorEntry | None
    """Its mask tensor (``X.weight_mask``), None when nonzeros define the mask."""
    kind: str
    """``Linear`` or ``Conv1d/2d/3d``, by the number of dimensions."""
    fused: bool
    """True when it packs q, k, v (analysed as three layers)."""
    input_major: bool
    """True for GPT-2's ``Conv1D`` layout (stored ``(in, out)``, analysed transposed)."""
    names: tuple[str, ...]
    """The layer names it yields, in order."""


@dataclass(frozen=True)
class ShardedCheckpoint:
    """A sharded (or single-file) safetensors model folder, its layers planned, nothing loaded."""

    path: str
    """What was given: the folder or the index file."""
    tensors: dict[str, TensorEntry]
    """Every tensor of the index (or the single file), by name."""
    weights: tuple[PlannedWeight, ...]
    """Layer weights in name order (numbers compared as numbers)."""
    skipped: tuple[SkippedTensor, ...] = ()
    """Layer-like tensors that are not layers, with their reason."""
    notes: tuple[str, ...] = ()
    """How the tensors were read (bare state dict, GPT-2 layout, order)."""
    meta: dict = field(default_factory=dict)
    """The index's ``metadata`` (``total_size``...) as strings."""

    @property
    def layer_names(self) -> list[str]:
        """Every layer's name, in order (a fused weight gives three)."""
        return [name for weight in self.weights for name in weight.names]

    @property
    def format(self) -> str:
        """``prune`` when the file carries ``torch.nn.utils.prune`` masks, else ``plain``."""
        return "prune" if any(weight.mask is not None for weight in self.weights) else "plain"

    def records(self, keep=None) -> Iterator[list[LayerRecord]]:
        """The layer records of each planned weight, read one weight at a time.

        ``keep(name) -> bool`` picks layers: a weight none of whose layers is kept is not read.
        Each tensor is read through a handle of its own (:func:`read_tensor`), and nothing of a
        weight is held here once its records are yielded.
        """
        for planned in self.weights:
            if keep is not None and not any(keep(name) for name in planned.names):
                continue
            weight = read_tensor(planned.weight)
            mask = weight != 0 if planned.mask is None else read_tensor(planned.mask)
            records = records_of_weight(
                planned.parameter,
                planned.kind,
                mask,
                weight,
                fused=planned.fused,
                input_major=planned.input_major,
                source=self.path,
            )
            del weight, mask
            kept = [record for record in records if keep is None or keep(record.name)]
            del records
            yield kept
            del kept  # the caller holds the records now, and drops them once solved


def is_sharded_source(path) -> bool:
    """True for a folder, or a ``*.index.json`` file: what :func:`open_sharded` reads."""
    if not isinstance(path, str | Path):
        return False
    path = Path(path)
    return path.is_dir() or path.name.endswith(".index.json")


def open_sharded(path: str | Path) -> ShardedCheckpoint:
    """Read the index (or the single file's header) of a model folder and plan its layers."""
    path = Path(path)
    if path.is_dir():
        index = path / INDEX_NAME
        if index.is_file():
            entries, meta = _read_index(index)
        elif (path / SINGLE_NAME).is_file():
            entries, meta = _single_file(path / SINGLE_NAME), {}
        else:
            raise CheckpointError(
                f"{path}: not a file, and a folder without {INDEX_NAME} or {SINGLE_NAME}; give a "
                "checkpoint file or a Hugging Face model folder"
            )
    elif not path.exists():
        raise CheckpointError(f"{path}: no such file")
    else:
        entries, meta = _read_index(path)
    return _plan(str(path), entries, meta)


def _read_index(index: Path) -> tuple[dict[str, TensorEntry], dict]:
    size = index.stat().st_size
    if size > MAX_INDEX_BYTES:
        raise CheckpointError(f"{index}: index of {size} bytes, over {MAX_INDEX_BYTES}: not a model index")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{index}: not a readable JSON index ({_short(error)})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no 'weight_map' (tensor name -> shard file) in the index")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not _plain_file_name(shard):
            raise CheckpointError(
                f"{index}: tensor {name} is mapped to {shard!r}, not a file name in the index's folder"
            )
        shards.setdefault(shard, []).append(name)
    entries: dict[str, TensorEntry] = {}
    for shard, names in shards.items():
        file = index.parent / shard
        if not file.is_file():
            raise CheckpointError(
                f"{index}: shard {shard} (holding {names[0]}) is missing from {index.parent}"
            )
        shapes = header_shapes(file)
        for name in names:
            if name not in shapes:
                raise CheckpointError(f"{index}: tensor {name} is mapped to {shard}, which does not hold it")
            entries[name] = TensorEntry(name, file, shapes[name])
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return entries, {str(key): str(value) for key, value in meta.items()}


def _single_file(file: Path) -> dict[str, TensorEntry]:
    return {name: TensorEntry(name, file, shape) for name, shape in header_shapes(file).items()}


def _plain_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def header_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors file's header, each shape checked against the size
    limit before any data is read (a header over :data:`MAX_HEADER_BYTES` is refused unread)."""
    try:
        with file.open("rb") as handle:
            head = handle.read(8)
        size = file.stat().st_size
    except OSError as error:
        raise CheckpointError(f"{file}: cannot be read ({error.strerror or error})") from None
    if len(head) < 8:
        raise CheckpointError(f"{file}: {size} bytes, too short for a safetensors file")
    (length,) = struct.unpack("<Q", head)
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{file}: safetensors header of {length} bytes, over the {MAX_HEADER_BYTES // 2**20} MB limit: "
            "corrupt or not a safetensors file"
        )
    if length > size - 8:
        raise CheckpointError(f"{file}: header claims {length} bytes but the file has {size}: truncated")
    try:
        with safetensors_handle(file) as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except FullSpectrumError:
        raise
    except Exception as error:
        raise CheckpointError(f"{file}: corrupt or truncated safetensors file ({_short(error)})") from None
    for key, shape in shapes.items():
        check_shape(shape, name=key, source=str(file))
    return shapes


def _plan(source: str, entries: dict[str, TensorEntry], meta: dict) -> ShardedCheckpoint:
    """Which tensors are layers (the bare-state-dict rule, from names and shapes only)."""
    weights: dict[str, TensorEntry] = {}
    masks: dict[str, TensorEntry] = {}
    for name in sorted(entries, key=_natural_key):
        module, attribute = split_attribute(name)
        if not attribute:
            continue  # biases, buffers: never layers
        param = f"{module}.{attribute}" if module else attribute
        if name.endswith("_mask"):
            masks[param] = entries[name]
        elif name.endswith("_orig") or param not in weights:
            weights[param] = entries[name]
    gpt2 = is_gpt2_layout({param: entry.shape for param, entry in weights.items()})
    planned: list[PlannedWeight] = []
    skipped: dict[str, str] = {}
    for param in sorted(weights, key=_natural_key):
        entry, mask = weights[param], masks.get(param)
        ndim = len(entry.shape)
        if not 2 <= ndim <= 5:
            continue  # norms' weights are 1-D: never layers
        reason = state_dict_skip_reason(split_attribute(param)[0] or ROOT_NAME, ndim, entries)
        if reason is None and masks and mask is None:
            reason = REASON_UNMASKED
        if reason is not None:
            skipped[layer_name(param)] = reason
            continue
        fused, input_major = state_dict_layout(param, entry.shape, gpt2=gpt2)
        names = split_names(split_attribute(param)[0]) if fused else (layer_name(param),)
        planned.append(PlannedWeight(param, entry, mask, KIND_BY_NDIM[ndim], fused, input_major, names))
    if not planned:
        raise CheckpointError(f"{source}: no layers found (no 2-D to 5-D '*.weight' tensor of a Conv/Linear)")
    notes = [NOTE_BARE_STATE_DICT, *([NOTE_GPT2] if gpt2 else []), NOTE_ORDER]
    if not masks:
        notes.append(
            "no layer carries a mask; nonzero weights define the mask, so weights that dynamic sparse "
            "training grew at exactly zero look pruned"
        )
    return ShardedCheckpoint(
        path=source,
        tensors=entries,
        weights=tuple(planned),
        skipped=tuple(SkippedTensor(name, reason) for name, reason in skipped.items()),
        notes=tuple(notes),
        meta=meta,
    )


def _natural_key(name: str) -> list:
    """``layers.10`` after ``layers.2``: digit runs compared as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def read_tensor(entry: TensorEntry) -> torch.Tensor:
    """One tensor, read through a handle opened for it alone: a handle kept open keeps every page it
    has read mapped and resident (RSS grew by the whole model over a 4-block read), one closed at
    once lets them go."""
    try:
        with safetensors_handle(entry.shard) as handle:
            tensor = handle.get_tensor(entry.name)
    except Exception as error:
        raise CheckpointError(
            f"{entry.shard}: tensor {entry.name} cannot be read ({_short(error)})"
        ) from None
    if tuple(tensor.shape) != entry.shape:
        raise CheckpointError(f"{entry.shard}: tensor {entry.name} changed shape since its header was read")
    return tensor


def safetensors_handle(file: Path):
    """``safe_open(file)`` on the CPU, memory-mapped (a context manager), its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return safe_open(str(file), framework="pt", device="cpu")


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return line if len(line) <= 120 else line[:117] + "..."
