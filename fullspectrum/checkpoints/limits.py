"""How big a tensor read from a file may be, checked before anything is made of it (SPEC §8).

A checkpoint is someone else's file, and a tensor in it is only a claim until it is used: a
1.5 kB ``.pt`` can hold a stride-0 (expanded) view whose one-element storage claims a
200000 × 200000 weight, and the first step made of it (the mask ``weight != 0``, a float64
copy) would allocate the claimed 40–320 GB. So every tensor a file yields is checked as soon as
it is loaded, before it is copied, compared or converted:

* its storage must hold it: a tensor whose elements need more bytes than its storage has is an
  expanded or overlapping view, which a file of weights never needs;
* it must be an ordinary dense tensor: a sparse, nested or quantized one is refused with how
  to re-save it;
* it may have at most :func:`max_tensor_elements` elements: :data:`MAX_TENSOR_ELEMENTS`, or the
  value of the environment variable ``FULLSPECTRUM_MAX_TENSOR_ELEMENTS``.

A ``.safetensors`` header gives every shape before any data is read: :func:`check_shape` checks
them there. A zip file is checked before torch opens it (:func:`check_zip_entries`): ``torch.save``
stores its entries uncompressed, and torch allocates an entry's declared size before inflating
it, so an entry that inflates more than :data:`MAX_INFLATION` times (a zip bomb) is refused.

>>> import torch
>>> check_loaded_tensors({"fc.weight": torch.ones(3, 4)}, source="model.pt")
>>> check_loaded_tensors({"state_dict": {"fc.weight": torch.zeros(1).expand(3, 4)}}, source="model.pt")
Traceback (most recent call last):
...
fullspectrum.errors.CheckpointError: model.pt: tensor state_dict/fc.weight claims shape (3, 4) (48 bytes) but its storage holds 4 bytes: an expanded or overlapping view, not a weight; save tensor.clone() instead
"""

from __future__ import annotations

import argparse
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from fullspectrum.errors import CheckpointError, FullSpectrumError

MAX_TENSOR_ELEMENTS = 2**31
"""Default largest tensor a file may hold, in elements: over 2·10⁹, so the largest projection of
today's language models fits (Llama 3.1 405B's output layer, 128256 × 16384, has 2.10·10⁹)."""
MAX_TENSOR_ELEMENTS_ENV = "FULLSPECTRUM_MAX_TENSOR_ELEMENTS"
"""Environment variable that replaces :data:`MAX_TENSOR_ELEMENTS` (a whole number, ``4e9`` allowed)."""


MAX_INFLATION = 64
"""Largest ratio of an entry's declared size to its compressed size in a zip checkpoint."""
INFLATION_FLOOR_BYTES = 2**24
"""Entries of at most this many bytes (16 MiB) may inflate any amount: too small to matter."""


def max_tensor_elements() -> int:
    """The limit in force: ``FULLSPECTRUM_MAX_TENSOR_ELEMENTS`` if set, else :data:`MAX_TENSOR_ELEMENTS`."""
    text = os.environ.get(MAX_TENSOR_ELEMENTS_ENV, "").strip()
    if not text:
        return MAX_TENSOR_ELEMENTS
    try:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        value = 0
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise FullSpectrumError(
            f"{MAX_TENSOR_ELEMENTS_ENV}={text!r}: not a positive whole number of elements; unset it "
            f"(default {MAX_TENSOR_ELEMENTS}) or give e.g. {MAX_TENSOR_ELEMENTS_ENV}={2 * MAX_TENSOR_ELEMENTS}"
        )
    return int(value)


def check_shape(shape: tuple[int, ...], *, name: str, source: str, limit: int | None = None) -> None:
    """Refuse a tensor ``name`` of ``shape`` over the limit (``limit``, else :func:`max_tensor_elements`)."""
    limit = max_tensor_elements() if limit is None else limit
    elements = math.prod(int(size) for size in shape)
    if elements > limit:
        raise CheckpointError(
            f"{source}: tensor {name} has shape {tuple(int(s) for s in shape)} ({elements} elements), over "
            f"the limit of {limit} elements per tensor; if this file is meant to hold it, set "
            f"{MAX_TENSOR_ELEMENTS_ENV} to a larger number"
        )


def check_tensor(tensor: torch.Tensor, *, name: str, source: str, limit: int | None = None) -> None:
    """Refuse a loaded tensor that is not dense, claims more than its storage holds, or is over the limit."""
    label = f"{source}: tensor {name}"
    if tensor.is_quantized:
        raise CheckpointError(
            f"{label} is quantized ({tensor.dtype}); save its real values instead: tensor.dequantize()"
        )
    if tensor.is_nested or tensor.layout != torch.strided:
        kind = "nested" if tensor.is_nested else str(tensor.layout).removeprefix("torch.")
        raise CheckpointError(f"{label} is a {kind} tensor; save weights as dense tensors: tensor.to_dense()")
    if tensor.is_meta:
        raise CheckpointError(
            f"{label} is a meta tensor: it has a shape but no values; save the real weights"
        )
    shape = tuple(int(s) for s in tensor.shape)
    needed = tensor.numel() * tensor.element_size()
    try:
        held = tensor.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):  # a tensor without a readable storage
        raise CheckpointError(f"{label} has no readable storage; save it as a plain tensor") from None
    if needed > held:
        raise CheckpointError(
            f"{label} claims shape {shape} ({needed} bytes) but its storage holds {held} bytes: an expanded "
            "or overlapping view, not a weight; save tensor.clone() instead"
        )
    check_shape(shape, name=name, source=source, limit=limit)


def check_loaded_tensors(obj, *, source: str) -> None:
    """Check every tensor in ``obj`` (what ``torch.load`` returned), at any depth, in file order.

    Tensors are named by their path of keys (``state_dict/fc.weight``; list items by index).
    """
    limit = max_tensor_elements()
    seen: set[int] = set()
    stack: list[tuple[str, object]] = [("", obj)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, torch.Tensor):
            check_tensor(value, name=where or "(the whole file)", source=source, limit=limit)
            continue
        if id(value) in seen:  # a pickle may hold one object twice, or a cycle
            continue
        seen.add(id(value))
        if isinstance(value, Mapping):
            items = list(value.items())
        elif isinstance(value, list | tuple | set | frozenset):
            items = list(enumerate(value))
        elif isinstance(value, argparse.Namespace):
            items = list(vars(value).items())
        else:
            continue
        stack.extend((f"{where}/{key}" if where else str(key), item) for key, item in reversed(items))


def check_zip_entries(path: str | Path) -> None:
    """Refuse a zip file with an entry that claims far more bytes than it occupies (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError):  # unreadable: torch.load says what is wrong
        return
    for entry in entries:
        size, packed = entry.file_size, max(entry.compress_size, 1)
        if size > INFLATION_FLOOR_BYTES and size > MAX_INFLATION * packed:
            raise CheckpointError(
                f"{path}: zip entry {entry.filename} inflates {packed} bytes to {size} (over {MAX_INFLATION} "
                "times): a zip bomb or a re-compressed checkpoint; save it with torch.save, which does "
                "not compress"
            )
