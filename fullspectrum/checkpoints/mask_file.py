"""The project's mask checkpoint file (SPEC §8): masks, the weights they were made for, and meta.

Written by ``prune --out`` and by PAGS/PEGS (FS23, Hoang et al. NeurIPS 2023)
as ``pags_mask.pt`` / ``base_mask.pt``; read by ``analyze`` and ``train --mask``.
The file is ``torch.save`` of::

    {"masks": {param_name: bool tensor}, "state_dict": {...}, "meta": {...}}

with ``param_name`` like ``layer1.0.conv1.weight``, ``state_dict`` the weights
the masks were made for (the initialisation, or PEGS's warmed-up weights) and
``meta`` only strings and numbers (generator, density, seed, versions), so it
loads with ``torch.load(..., weights_only=True)``. A path ending in ``.safetensors``
is written and read in the safetensors form instead (masks as ``uint8`` tensors,
``meta`` in the file's metadata: :mod:`~fullspectrum.checkpoints.mask_safetensors`),
for language-model tooling; ``.pt`` stays the default. Files are written atomically
(a temporary file in the same folder, then ``os.replace``), so a reader never
sees half a file.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from fullspectrum.checkpoints import mask_safetensors
from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.checkpoints.reading import existing_file, safe_torch_load
from fullspectrum.errors import CheckpointError, FullSpectrumError, MaskError
from fullspectrum.spectrum.graph import check_mask, check_weight

MetaValue = str | int | float | bool


@dataclass(frozen=True)
class MaskCheckpoint:
    """A loaded mask checkpoint (SPEC §8)."""

    masks: dict[str, torch.Tensor]
    """Parameter name (``layer1.0.conv1.weight``) -> bool mask on the CPU."""
    state_dict: dict[str, torch.Tensor]
    """The weights the masks were made for (CPU tensors)."""
    meta: dict[str, MetaValue]
    """Strings and numbers only: generator, density, seed, versions..."""


def save_mask_checkpoint(
    path: str | Path,
    masks: Mapping[str, torch.Tensor],
    state_dict: Mapping[str, torch.Tensor],
    meta: Mapping[str, object] | None = None,
) -> Path:
    """Validate and write a mask checkpoint atomically; returns the path written.

    Masks must be binary and, where ``state_dict`` holds the same name, of its
    weight's shape; ``meta`` values must be strings or numbers (numpy scalars are
    converted). Bad input raises a :class:`fullspectrum.errors.FullSpectrumError`.
    """
    path = Path(path)
    payload = {
        "masks": _clean_masks(masks, source=str(path)),
        "state_dict": _clean_state_dict(state_dict, source=str(path)),
        "meta": _clean_meta(meta or {}, source=str(path)),
    }
    _check_shapes(payload["masks"], payload["state_dict"], source=str(path))
    _refuse_nan(payload["state_dict"], source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if mask_safetensors.is_safetensors(path):
        blob = mask_safetensors.encode(payload["masks"], payload["state_dict"], payload["meta"])
        write_atomic(path, lambda file: file.write(blob))
    else:
        write_atomic(path, lambda file: torch.save(payload, file))
    return path


def load_mask_checkpoint(path: str | Path) -> MaskCheckpoint:
    """Read a mask checkpoint with ``weights_only=True`` (or a ``.safetensors`` one, nothing pickled);
    a file of another layout is a CheckpointError."""
    source = str(path)
    if mask_safetensors.is_safetensors(path):
        masks, state, meta = mask_safetensors.decode_file(existing_file(path))
        obj = {"masks": masks, "state_dict": state, "meta": meta}
    else:
        obj = safe_torch_load(path)
    if not isinstance(obj, Mapping) or not {"masks", "state_dict", "meta"} <= set(obj):
        raise CheckpointError(
            f"{source}: not a mask checkpoint (expected the keys 'masks', 'state_dict' and 'meta'); "
            "use load_sparse_checkpoint for other sparse checkpoints"
        )
    for key in ("masks", "state_dict", "meta"):
        if not isinstance(obj[key], Mapping):
            raise CheckpointError(f"{source}: '{key}' is a {type(obj[key]).__name__}, not a mapping")
    masks = _clean_masks(obj["masks"], source=source)
    state_dict = _clean_state_dict(obj["state_dict"], source=source)
    _check_shapes(masks, state_dict, source=source)
    _refuse_nan(state_dict, source=source)
    return MaskCheckpoint(masks=masks, state_dict=state_dict, meta=_clean_meta(obj["meta"], source=source))


def _clean_masks(masks: Mapping, *, source: str) -> dict[str, torch.Tensor]:
    cleaned: dict[str, torch.Tensor] = {}
    for name, mask in masks.items():
        if not isinstance(name, str):
            raise MaskError(f"{source}: mask name {name!r} is not a string")
        if not isinstance(mask, torch.Tensor):
            raise MaskError(f"{source}: mask {name} is a {type(mask).__name__}, not a tensor")
        check_mask(mask, name=f"{source}: mask {name}")
        cleaned[name] = mask.detach().to(device="cpu", dtype=torch.bool).contiguous()
    return cleaned


def _clean_state_dict(state_dict: Mapping, *, source: str) -> dict[str, torch.Tensor]:
    cleaned: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{source}: state_dict entry {name!r} is not a named tensor")
        cleaned[name] = tensor.detach().cpu()
    return cleaned


def _refuse_nan(state_dict: dict[str, torch.Tensor], *, source: str) -> None:
    """NaN in any tensor of the state dict (a bias, a running mean) is refused, naming it."""
    for name, tensor in state_dict.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and bool(torch.isnan(tensor).any()):
            raise CheckpointError(f"{source}: state_dict {name} holds NaN values")


def _clean_meta(meta: Mapping, *, source: str) -> dict[str, MetaValue]:
    cleaned: dict[str, MetaValue] = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise FullSpectrumError(f"{source}: meta key {key!r} is not a string")
        if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy / 0-d torch scalar
            value = value.item() if getattr(value, "ndim", 0) == 0 else value
        if not isinstance(value, str | numbers.Real):
            raise FullSpectrumError(
                f"{source}: meta {key!r} is a {type(value).__name__}; meta holds only strings and numbers"
            )
        cleaned[str(key)] = _plain(value)
    return cleaned


def _plain(value: str | numbers.Real) -> MetaValue:
    """Subclasses (``torch.__version__``'s TorchVersion, numpy scalars) as plain built-ins.

    A subclass would pickle as a global that ``weights_only=True`` refuses.
    """
    for kind in (str, bool, int):
        if isinstance(value, kind):
            return kind(value)
    return float(value)


def _check_shapes(
    masks: dict[str, torch.Tensor], state_dict: dict[str, torch.Tensor], *, source: str
) -> None:
    """Each mask has its weight in ``state_dict``, of its shape, real and finite (when weights are given)."""
    if not state_dict:
        return
    for name, mask in masks.items():
        key = name if name in state_dict else f"{name}_orig"  # plain or torch.nn.utils.prune form
        weight = state_dict.get(key)
        if weight is None:
            raise MaskError(f"{source}: mask {name} has no weight of that name in the state_dict")
        if tuple(weight.shape) != tuple(mask.shape):
            raise MaskError(
                f"{source}: mask {name} has shape {tuple(mask.shape)} but its weight has {tuple(weight.shape)}"
            )
        check_weight(weight, tuple(mask.shape), name=f"{source}: state_dict {key}")
