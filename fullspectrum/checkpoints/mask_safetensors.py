"""SPEC §8's mask checkpoint as a ``.safetensors`` file, for language-model tooling.

The same three parts as the ``torch.save`` form, flattened into one safetensors file:

* ``masks.<param_name>``: every mask as a ``uint8`` tensor of 0/1 (safetensors tools handle
  ``uint8`` everywhere; ``bool`` less so);
* ``state_dict.<param_name>``: the weights the masks were made for, in their own dtypes;
* the file's metadata (a string -> string mapping by the format's definition): every ``meta``
  entry as its text (``str(value)``; floats as their shortest round-tripping text), plus
  ``format`` = ``pt`` (the Hugging Face convention) and :data:`META_TYPES_KEY`, a JSON object
  naming each entry's type (``str``, ``int``, ``float``, ``bool``) so that reading gives back the
  very values written.

Nothing in it is pickled, so it is safe to read from anyone; headers are checked before any data
is read (:func:`fullspectrum.checkpoints.sharded.header_shapes`).

>>> import torch
>>> blob = encode({"fc.weight": torch.tensor([[True, False]])}, {}, {"generator": "nm", "density": 0.5})
>>> masks, state, meta = decode_bytes(blob, source="mask.safetensors")
>>> masks["fc.weight"].tolist(), meta == {"generator": "nm", "density": 0.5}
([[1, 0]], True)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from fullspectrum.checkpoints.sharded import header_shapes, safetensors_handle
from fullspectrum.errors import CheckpointError, FullSpectrumError

SUFFIX = ".safetensors"
"""A mask checkpoint whose path ends so is written in this form."""
MASK_PREFIX, STATE_PREFIX = "masks.", "state_dict."
"""Prefixes of the flattened tensor names."""
META_TYPES_KEY = "fullspectrum.meta_types"
"""Metadata entry holding the JSON ``{meta key: type name}`` that restores each value's type."""
RESERVED_KEYS = ("format", META_TYPES_KEY)
"""Metadata keys the file itself uses: a ``meta`` entry may not have these names."""
_TYPES = {"str": str, "int": int, "float": float, "bool": lambda text: text == "True"}


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` names a ``.safetensors`` file (by its suffix)."""
    return Path(path).suffix == SUFFIX


def encode(masks: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], meta: Mapping) -> bytes:
    """The safetensors bytes of a validated mask checkpoint (masks bool, meta strings and numbers)."""
    tensors = {f"{MASK_PREFIX}{name}": mask.to(torch.uint8).contiguous() for name, mask in masks.items()}
    # clone: safetensors refuses tensors that share storage (tied weights), and wants them contiguous
    tensors.update(
        {f"{STATE_PREFIX}{name}": t.detach().cpu().contiguous().clone() for name, t in state_dict.items()}
    )
    metadata = {"format": "pt"}
    types: dict[str, str] = {}
    for key, value in meta.items():
        if key in RESERVED_KEYS:
            raise FullSpectrumError(
                f"meta key {key!r} is reserved in a .safetensors mask checkpoint; rename it"
            )
        types[key] = type(value).__name__
        metadata[key] = repr(value) if isinstance(value, float) else str(value)
    metadata[META_TYPES_KEY] = json.dumps(types, sort_keys=True)
    return save_bytes(tensors, metadata=metadata)


def decode_meta(metadata: Mapping[str, str] | None) -> dict:
    """A file's metadata back as ``meta``: typed by :data:`META_TYPES_KEY` when present, else strings."""
    metadata = dict(metadata or {})
    metadata.pop("format", None)
    try:
        types = json.loads(metadata.pop(META_TYPES_KEY, "{}"))
    except ValueError:
        types = {}
    types = types if isinstance(types, dict) else {}
    meta = {}
    for key, text in metadata.items():
        convert = _TYPES.get(types.get(key, "str"), str)
        try:
            meta[key] = convert(text)
        except ValueError:
            meta[key] = text  # a type that does not parse: keep the text rather than fail
    return meta


def split_tensors(tensors: Mapping[str, torch.Tensor], *, source: str) -> tuple[dict, dict]:
    """``masks.*`` and ``state_dict.*`` tensors as two dicts; any other name is not a mask checkpoint."""
    masks, state = {}, {}
    for key, value in tensors.items():
        if key.startswith(MASK_PREFIX):
            masks[key[len(MASK_PREFIX) :]] = value
        elif key.startswith(STATE_PREFIX):
            state[key[len(STATE_PREFIX) :]] = value
        else:
            raise CheckpointError(
                f"{source}: tensor {key} is neither masks.* nor state_dict.*: not a mask checkpoint"
            )
    if not masks:
        raise CheckpointError(f"{source}: no masks.* tensors: not a mask checkpoint")
    return masks, state


def decode_file(path: str | Path) -> tuple[dict, dict, dict]:
    """``(masks, state_dict, meta)`` of a ``.safetensors`` mask checkpoint (masks as stored: 0/1 ``uint8``)."""
    path = Path(path)
    header_shapes(path)  # the shapes against the size limit, before any data is read
    try:
        with safetensors_handle(path) as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            metadata = handle.metadata()
    except FullSpectrumError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"{path}: corrupt or truncated safetensors file ({type(error).__name__})"
        ) from None
    masks, state = split_tensors(tensors, source=str(path))
    return masks, state, decode_meta(metadata)


def decode_bytes(blob: bytes, *, source: str) -> tuple[dict, dict, dict]:
    """:func:`decode_file` of bytes in memory (a tiny file; the header is not size-checked here)."""
    tensors = load_bytes(blob)
    metadata = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")]).get("__metadata__")
    masks, state = split_tensors(tensors, source=source)
    return masks, state, decode_meta(metadata)
