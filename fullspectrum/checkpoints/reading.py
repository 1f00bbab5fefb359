"""Reading the sparse checkpoints users already have, safely (SPEC §1, §8).

Sparse networks reach the project as files written by other code:
``torch.nn.utils.prune`` state dicts (``weight_orig`` + ``weight_mask``), plain
state dicts of dynamic sparse training runs (ITOP, Liu et al. ICML 2021; RigL;
SET), where pruned weights are exact zeros, sparselearning-style
``{"state_dict": ..., "masks": ...}`` files, the project's own mask checkpoints
(SPEC §8), DataParallel ``module.`` prefixes, state dicts nested under
``state_dict``/``model``/``net``, and ``.safetensors`` files.

Every file is read with ``torch.load(..., weights_only=True,
map_location="cpu")``: pickled code never runs. Research checkpoints often
carry an ``argparse.Namespace`` of arguments and numpy scalars; those harmless
globals are allowed (:data:`SAFE_GLOBALS`). Anything else that needs unpickling
globals is refused with a message naming the globals and how to re-save the file,
and so is a pickle protocol the safe loader cannot read (4 and 5). Every tensor a
file yields is checked before anything is made of it (:mod:`~fullspectrum.checkpoints.limits`:
no expanded view bigger than its storage, nothing over the size limit); a
``.safetensors`` header's shapes are checked before its data is read.
"""

from __future__ import annotations

import argparse
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from fullspectrum.checkpoints.limits import check_loaded_tensors, check_shape, check_zip_entries
from fullspectrum.checkpoints.mask_safetensors import META_TYPES_KEY, decode_meta
from fullspectrum.checkpoints.pickles import PickleFacts, is_zip_file, scan_torch_file
from fullspectrum.errors import CheckpointError, FullSpectrumError
from fullspectrum.layers import LayerRecord, SkippedTensor, layers_from_state_dict
from fullspectrum.layers.names import split_attribute

NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "network")
"""Keys under which checkpoints commonly nest their state dict, tried in this order."""
MASK_KEYS = ("masks", "mask")
"""Keys under which a checkpoint keeps a mapping of masks (SPEC §8, sparselearning/ITOP)."""
FORMATS: dict[str, str] = {
    "prune": "torch.nn.utils.prune state dict (weight_orig + weight_mask)",
    "plain": "plain state dict (nonzero weights define the mask)",
    "mask_checkpoint": "fullspectrum mask checkpoint (masks + state_dict + meta, SPEC §8)",
    "masks_and_state_dict": "sparselearning/ITOP-style {'state_dict', 'masks'} checkpoint",
    "masks": "masks only (no weights)",
}
"""Detected formats, by the name :attr:`SparseCheckpoint.format` uses."""
RESAVE_HINT = (
    "re-save it with tensors only, e.g. torch.save(model.state_dict(), 'model.pt') or "
    "torch.save({'state_dict': model.state_dict(), 'masks': masks}, 'model.pt')"
)


def _numpy_safe_globals() -> list:
    """numpy scalars need ``multiarray.scalar`` (under its numpy 1 and 2 names), ``dtype`` and dtype classes."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list = [np.dtype, scalar, (scalar, "numpy.core.multiarray.scalar")]
    allowed.append((scalar, "numpy._core.multiarray.scalar"))
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes through their classes
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name) for name in dtypes.__all__ if isinstance(getattr(dtypes, name), type)
        ]
    return allowed


SAFE_GLOBALS: list = [argparse.Namespace, *_numpy_safe_globals()]
"""Globals allowed while unpickling: an ``argparse.Namespace`` of run arguments and numpy scalars."""


@dataclass(frozen=True)
class SparseCheckpoint:
    """The layers of a sparse checkpoint, keyed by module path (SPEC §1)."""

    path: str
    """The file read (or a label such as ``state dict`` for an in-memory object)."""
    format: str
    """Detected format: a key of :data:`FORMATS`."""
    container: str
    """``torch`` (a ``torch.save`` file or in-memory object) or ``safetensors``."""
    layers: tuple[LayerRecord, ...]
    """Layers in file order, each with its bool mask and weights (or None)."""
    skipped: tuple[SkippedTensor, ...] = ()
    """Layer-like tensors that are not layers, with their reason."""
    notes: tuple[str, ...] = ()
    """Notes and warnings for the user (how masks were read, collapsed layers)."""
    meta: dict = field(default_factory=dict)
    """The checkpoint's ``meta`` (mask checkpoints, safetensors metadata); empty otherwise."""

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Module path -> bool mask."""
        return {layer.name: layer.mask for layer in self.layers}

    @property
    def weights(self) -> dict[str, torch.Tensor | None]:
        """Module path -> weights (None when the file holds masks only)."""
        return {layer.name: layer.weight for layer in self.layers}


def load_sparse_checkpoint(path: str | Path) -> SparseCheckpoint:
    """Read a sparse checkpoint file in any supported format (see the module docstring).

    Raises :class:`fullspectrum.errors.CheckpointError` (missing, corrupt, unsafe,
    no layers) or :class:`fullspectrum.errors.MaskError` (non-binary mask, shape
    mismatch, NaN/Inf weights), one line naming the file and the layer.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        obj, meta = _load_safetensors(path)
        checkpoint = interpret_checkpoint(obj, source=str(path), container="safetensors", meta=meta)
        note = "safetensors keeps tensors in name order, not the model's: layers are listed in name order"
        return replace(checkpoint, notes=(*checkpoint.notes, note))
    return interpret_checkpoint(safe_torch_load(path), source=str(path))


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path, or a CheckpointError if it is missing or not a file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    return path


def safe_torch_load(path: str | Path):
    """``torch.load(path, weights_only=True, map_location="cpu")`` with :data:`SAFE_GLOBALS` allowed.

    Every tensor loaded is checked (:mod:`~fullspectrum.checkpoints.limits`: it fits its storage and
    the size limit) before it is returned. A legacy (non-zip) file whose pickle claims a storage
    larger than the file is refused before torch allocates it. Unsafe globals, pickle protocols the
    safe loader cannot read, and empty, corrupt or truncated files become one-line CheckpointErrors;
    torch's warnings about the file's pickle stay inside this call.
    """
    path = existing_file(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        zip_format = is_zip_file(path)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror or error})") from None
    if zip_format:
        check_zip_entries(path)
    facts = None if zip_format else scan_torch_file(path)
    if facts is not None:
        _refuse_impossible_storages(path, facts, size)
    with warnings.catch_warnings(record=True):  # e.g. "Detected pickle protocol 3": noise for the user
        warnings.simplefilter("always")
        try:
            with torch.serialization.safe_globals(SAFE_GLOBALS):
                obj = torch.load(path, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as error:
            raise _refusal(path, error, facts or scan_torch_file(path)) from None
        except Exception as error:  # torch raises RuntimeError, EOFError, KeyError... for damaged files
            raise CheckpointError(f"{path}: {_DAMAGED} ({_first_line(error)})") from None
    check_loaded_tensors(obj, source=str(path))
    return obj


def _refuse_impossible_storages(path: Path, facts: PickleFacts, size: int) -> None:
    """Every element takes at least a byte: a storage claiming more elements than the file has bytes is false."""
    for key, elements in facts.storages:
        if elements > size:
            raise CheckpointError(
                f"{path}: storage {key} claims {elements} elements but the whole file has {size} bytes: "
                "the file is corrupt or made to exhaust memory, not a checkpoint"
            )


def _refusal(path: Path, error: Exception, facts: PickleFacts) -> CheckpointError:
    """Why the weights-only unpickler refused ``path``: unsafe globals, a pickle protocol, or damage."""
    message = str(error)
    names = _unsafe_globals(path, message, facts)
    if names:
        shown = ", ".join(names[:_NAMES_SHOWN]) + (
            f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
        )
        return CheckpointError(
            f"{path}: needs unsafe pickled globals ({shown}), refused because unpickling "
            f"them could run code; {RESAVE_HINT}"
        )
    if facts.protocol >= 4:
        return CheckpointError(
            f"{path}: written with pickle protocol {facts.protocol}, which the safe loader (torch.load with weights_only=True) "
            "cannot read; re-save it with torch.save's default protocol (no pickle_protocol argument), "
            "e.g. torch.save(model.state_dict(), 'model.pt')"
        )
    return CheckpointError(f"{path}: {_DAMAGED} ({_first_line(error)})")


_NAMES_SHOWN = 6


def _unsafe_globals(path: Path, message: str, facts: PickleFacts) -> list[str]:
    allowed = _allowed_globals()
    names: list[str] = []
    if allowed is not None:
        names = [name for name in facts.globals if name not in allowed]
    elif facts.zip_format:
        try:  # torch's own scan reads protocol-2 zip files only
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:
            pass
    names += re.findall(r"Unsupported global: GLOBAL (\S+)", message)
    names += re.findall(r"unsupported GLOBAL (\S+)", message)
    names += re.findall(r"but got <class '([^']+)'>", message)
    return [name for name in dict.fromkeys(names) if allowed is None or name not in allowed]


def _allowed_globals() -> set[str] | None:
    """Globals the weights-only unpickler accepts here (its own list and :data:`SAFE_GLOBALS`); None if unknown."""
    try:
        from torch import _weights_only_unpickler  # torch's list is private: read it defensively

        builtin = set(_weights_only_unpickler._get_allowed_globals())
    except Exception:
        return None
    extra = [*SAFE_GLOBALS, *torch.serialization.get_safe_globals()]
    return builtin | {_qualified_name(entry) for entry in extra}


def _qualified_name(entry) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


_DAMAGED = "corrupt, truncated or not a PyTorch checkpoint"


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")
"""Lines of torch's weights-only refusal that say nothing about the file (one advises weights_only=False)."""


def _first_line(error: Exception) -> str:
    text = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = [line for line in text if not line.startswith(_TORCH_BOILERPLATE)] or text[:1]
    line = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return line if len(line) <= 120 else line[:117] + "..."


def _load_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    path = existing_file(path)
    try:
        with (
            warnings.catch_warnings(record=True),
            safe_open(str(path), framework="pt", device="cpu") as handle,
        ):
            warnings.simplefilter("always")
            keys = list(handle.keys())
            for key in keys:  # the header's shapes, before any data is read
                check_shape(tuple(handle.get_slice(key).get_shape()), name=key, source=str(path))
            tensors = {key: handle.get_tensor(key) for key in keys}
            meta = dict(handle.metadata() or {})
    except FullSpectrumError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"{path}: corrupt or truncated safetensors file ({_first_line(error)})"
        ) from None
    meta.pop("format", None)  # safetensors' own "pt" marker
    if tensors and all(
        k.startswith(("masks.", "state_dict.")) for k in tensors
    ):  # a flattened mask checkpoint
        nested: dict[str, dict] = {"masks": {}, "state_dict": {}}
        for key, value in tensors.items():
            group, _, name = key.partition(".")
            nested[group][name] = value
        if META_TYPES_KEY in meta:  # written by save_mask_checkpoint: SPEC §8's mask checkpoint, typed meta
            nested["meta"] = decode_meta(meta)
        return nested, meta
    return tensors, meta


def interpret_checkpoint(
    obj, *, source: str = "state dict", container: str = "torch", meta: dict | None = None
) -> SparseCheckpoint:
    """Find the layers in a loaded checkpoint object (any format of :data:`FORMATS`)."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{source}: holds a {type(obj).__name__}, not a state dict or a {{'state_dict', 'masks'}} mapping"
        )
    masks = next((obj[k] for k in MASK_KEYS if isinstance(obj.get(k), Mapping)), None)
    if masks is not None and not masks:
        raise CheckpointError(f"{source}: no layers found (its mapping of masks is empty)")
    if masks is not None:
        _check_tensors(masks, source=source, what="masks")
        state = find_state_dict({k: v for k, v in obj.items() if k not in MASK_KEYS})
        _check_weights_are_tensors(state or {}, source=source)
        file_meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else None
        fmt = "mask_checkpoint" if file_meta is not None else "masks_and_state_dict"
        selection = layers_from_state_dict(state, masks, source=source)
        meta = dict(file_meta or meta or {})
    else:
        state = find_state_dict(obj)
        if state is None:
            raise CheckpointError(
                f"{source}: no state dict found (looked for tensors at the top level and under "
                f"{', '.join(repr(k) for k in NESTING_KEYS)})"
            )
        _check_weights_are_tensors(state, source=source)
        fmt = _state_dict_format(state)
        if fmt == "masks":
            masks_only = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
            selection = layers_from_state_dict(None, masks_only, source=source)
        else:
            selection = layers_from_state_dict(state, source=source)
    if not selection.layers:
        raise CheckpointError(f"{source}: no layers found (no 2-D to 5-D '*.weight' tensor of a Conv/Linear)")
    return SparseCheckpoint(
        path=source,
        format=fmt,
        container=container,
        layers=selection.layers,
        skipped=selection.skipped,
        notes=(f"read as {FORMATS[fmt]}", *selection.notes),
        meta=dict(meta or {}),
    )


def find_state_dict(obj, depth: int = 0) -> Mapping | None:
    """The state dict inside ``obj``: under a :data:`NESTING_KEYS` key, else ``obj`` if it holds tensors."""
    if not isinstance(obj, Mapping) or depth > 3:
        return None
    for key in NESTING_KEYS:
        found = find_state_dict(obj.get(key), depth + 1) if key in obj else None
        if found is not None:
            return found
    if any(isinstance(value, torch.Tensor) for value in obj.values()):
        return obj
    return None


def _state_dict_format(state: Mapping) -> str:
    keys = [k for k in state if isinstance(k, str)]
    if any(k.endswith("_mask") and f"{k[: -len('_mask')]}_orig" in state for k in keys):
        return "prune"
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor) and v.dim() >= 2]
    if tensors and all(_is_binary(t) for t in tensors):
        return "masks"
    return "plain"


def _is_binary(tensor: torch.Tensor) -> bool:
    if tensor.dtype == torch.bool:
        return True
    if tensor.is_floating_point() or tensor.dtype in (torch.int8, torch.uint8, torch.int32, torch.int64):
        return bool(((tensor == 0) | (tensor == 1)).all())
    return False


def _check_weights_are_tensors(state: Mapping, *, source: str) -> None:
    """A value under a weight's name (``fc.weight``, ``fc.weight_orig``...) must be a tensor; others may be anything."""
    for key, value in state.items():
        if isinstance(key, str) and split_attribute(key)[1] and not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: {key} is a {type(value).__name__}, not a tensor; save weights as tensors "
                "(model.state_dict() does)"
            )


def _check_tensors(mapping: Mapping, *, source: str, what: str) -> None:
    for key, value in mapping.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: {what} entry {key!r} is a {type(value).__name__}, not a tensor")
