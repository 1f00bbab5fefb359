"""Reading the layers of a network, with their masks, for the analysis (SPEC §1).

Which tensors are layers is decided by :mod:`fullspectrum.layers.rule` (Conv/Linear weights,
attention and MLP projections included, fused q/k/v projections split into three layers);
this module applies that rule and turns every layer into a :class:`LayerRecord` ready for
``layer_spectrum`` (Hoang et al., ICLR 2023, NeurIPS 2023). Two readers share the records:

* :func:`layers_from_module` walks an ``nn.Module`` and knows each module's type;
  masks come from ``torch.nn.utils.prune`` (``<weight>_orig`` + ``<weight>_mask``).
* :func:`layers_from_state_dict` reads a bare state dict, where only names and shapes are
  known: every 2-D to 5-D weight not of a normalisation layer or an embedding is read as
  Linear/Conv, and a note says so.

Layers are named by module path (``layer1.0.conv1``: no ``.weight``, no
``module.`` prefix) everywhere; the three projections of a fused weight are
``<module>.q``, ``<module>.k``, ``<module>.v``.

>>> from torch import nn
>>> selection = layers_from_module(nn.Sequential(nn.MultiheadAttention(4, 2)))
>>> [(layer.name, layer.shape) for layer in selection.layers]
[('0.q', (4, 4)), ('0.k', (4, 4)), ('0.v', (4, 4)), ('0.out_proj', (4, 4))]
>>> [layer.name for layer in layers_from_state_dict(nn.MultiheadAttention(4, 2).state_dict()).layers]
['q', 'k', 'v', 'out_proj']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from fullspectrum.layers.names import ROOT_NAME, layer_name, split_attribute, strip_wrappers, weight_key
from fullspectrum.layers.rule import (
    KIND_BY_NDIM,
    REASON_EMBEDDING,
    REASON_TIED,
    SkippedTensor,
    find_layers,
    is_gpt2_layout,
    layer_views,
    state_dict_layout,
    state_dict_skip_reason,
)
from fullspectrum.spectrum.graph import check_mask, check_weight

REASON_UNMASKED = "no mask in a file that has masks (left dense or not prunable by the code that masked it)"
NOTE_BARE_STATE_DICT = (
    "read from a bare state dict: every 2-D to 5-D weight not of a normalisation layer or an embedding is "
    "taken as Linear/Conv by its shape (grouped or transposed convolutions cannot be told apart there); "
    "fused q/k/v projections are split by shape"
)
NOTE_GPT2 = (
    "a c_attn weight stored (d, 3d) marks HF GPT-2's Conv1D layout: c_attn, c_fc and c_proj weights "
    "are read input-major (transposed to (out, in))"
)


@dataclass(frozen=True)
class LayerRecord:
    """One prunable layer, ready for ``layer_spectrum``."""

    name: str
    """Module path, e.g. ``layer1.0.conv1`` (no ``.weight``, no ``module.`` prefix); ``attn.q`` for a
    projection of an attention module's own (fused or separate) weights."""
    kind: str
    """``Linear``, ``Conv1d``, ``Conv2d`` or ``Conv3d``."""
    shape: tuple[int, ...]
    """Weight shape ``(out, in, *kernel)``."""
    mask: torch.Tensor
    """Bool mask of that shape on the CPU (True = kept weight)."""
    weight: torch.Tensor | None
    """The weights (float, CPU), or None when only a mask is known."""
    parameter: str = ""
    """Parameter name of the weight the layer is (part of), wrappers dropped: the key of its mask
    (SPEC §8), ``attn.in_proj_weight`` for ``attn.q``."""


@dataclass(frozen=True)
class LayerSelection:
    """The layers of a network, the tensors skipped, and notes for the user."""

    layers: tuple[LayerRecord, ...]
    """Layers in network order."""
    skipped: tuple[SkippedTensor, ...]
    """Layer-like tensors left out, with their reason."""
    notes: tuple[str, ...]
    """Notes and warnings (how masks were read, collapsed layers)."""


def make_record(name: str, kind: str, mask, weight, *, source: str = "", parameter: str = "") -> LayerRecord:
    """Validate a mask (binary) and weight (same shape, finite) and build the record.

    ``source`` (a file name) prefixes error messages, so they name file and layer.
    """
    label = f"{source}: layer {name}" if source else f"layer {name}"
    mask_array = check_mask(mask, name=label)
    if weight is not None:
        check_weight(weight, mask_array.shape, name=label)
        weight = _as_cpu_tensor(weight)
        weight = weight if weight.is_floating_point() else weight.double()
    return LayerRecord(
        name=name,
        kind=kind,
        shape=tuple(int(s) for s in mask_array.shape),
        mask=torch.from_numpy(mask_array.copy()),
        weight=weight,
        parameter=parameter,
    )


def records_of_weight(
    key: str, kind: str, mask, weight, *, fused: bool, input_major: bool, source: str = ""
) -> list[LayerRecord]:
    """The layer records one weight ``key`` (a parameter name) holds, validated as a whole first.

    An input-major weight (HF ``Conv1D``) is transposed to ``(out, in)``; a fused q/k/v weight
    becomes three records ``<module>.q``, ``<module>.k``, ``<module>.v`` (rows ``[0:d]``,
    ``[d:2d]``, ``[2d:3d]`` of the mask and the weight).
    """
    whole = make_record(layer_name(key), kind, mask, weight, source=source, parameter=key)
    if not fused and not input_major:
        return [whole]
    masks = layer_views(key, whole.mask, fused=fused, input_major=input_major)
    weights = (
        [w for _, w in layer_views(key, whole.weight, fused=fused, input_major=input_major)]
        if whole.weight is not None
        else [None] * len(masks)
    )
    return [
        LayerRecord(
            name=name,
            kind=kind,
            shape=tuple(int(s) for s in part.shape),
            mask=part.contiguous(),
            weight=None if w is None else w.contiguous(),
            parameter=key,
        )
        for (name, part), w in zip(masks, weights)
    ]


def _as_cpu_tensor(value) -> torch.Tensor:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def collapsed_notes(layers: tuple[LayerRecord, ...]) -> list[str]:
    """A warning for each all-zero (collapsed) layer: not an error, reported with SPEC §2's values."""
    return [
        f"warning: layer {layer.name} is collapsed (all-zero mask): edges = 0, metrics NaN"
        for layer in layers
        if not bool(layer.mask.any())
    ]


def layers_from_module(model: nn.Module, *, source: str = "") -> LayerSelection:
    """Layers of an ``nn.Module`` (:func:`~fullspectrum.layers.rule.find_layers`); masks the
    ``torch.nn.utils.prune`` way, else nonzeros."""
    found, skipped = find_layers(model)
    layers: list[LayerRecord] = []
    unmasked: list[str] = []
    for entry in found:
        key = strip_wrappers(entry.name)
        mask = getattr(entry.module, f"{entry.attribute}_mask", None)
        if mask is None:
            unmasked.append(layer_name(key))
            mask = entry.param.detach() != 0
        layers += records_of_weight(
            key,
            entry.kind,
            mask,
            entry.param,
            fused=entry.fused,
            input_major=entry.input_major,
            source=source,
        )
    notes = _unmasked_notes(unmasked, total=len(found))
    return LayerSelection(tuple(layers), tuple(skipped), tuple(notes + collapsed_notes(tuple(layers))))


def _unmasked_notes(unmasked: list[str], *, total: int) -> list[str]:
    if not unmasked:
        return []
    where = (
        "no layer carries a mask" if len(unmasked) == total else f"layers without a mask: {_few(unmasked)}"
    )
    return [
        f"{where}; nonzero weights define the mask, so weights that dynamic sparse training grew "
        "at exactly zero look pruned"
    ]


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def layers_from_state_dict(
    state_dict: Mapping[str, torch.Tensor] | None,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    source: str = "",
) -> LayerSelection:
    """Layers of a bare state dict (SPEC §1), with masks given separately or inside it.

    ``state_dict`` maps parameter names to tensors; a ``torch.nn.utils.prune``
    pair ``X.weight_orig`` + ``X.weight_mask`` is one masked weight ``X.weight``.
    ``masks`` (optional) maps parameter names or module paths to masks
    (``{"masks": ...}`` of a SPEC §8 mask checkpoint or sparselearning/ITOP).
    When the state dict carries no mask at all, the nonzeros of each weight
    define its mask (with a note). When it does, the masked tensors are the
    layers (the code that made the masks chose them) and other weights are
    listed as skipped: grouped convolutions or embeddings cannot be told from a
    Linear/Conv by shape. Fused q/k/v weights (``in_proj_weight``, a ``(3d, d)``
    ``qkv``/``c_attn`` weight) are split into three layers, as by the module reader.
    Layers without weights (``masks`` only) are analysed without weights.
    """
    tensors = {
        strip_wrappers(k): v
        for k, v in (state_dict or {}).items()
        if isinstance(k, str) and isinstance(v, torch.Tensor)
    }
    given = {weight_key(str(k)): torch.as_tensor(v) for k, v in (masks or {}).items()}
    weights: dict[str, torch.Tensor] = {}
    prune_masks: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        module, attribute = split_attribute(key)
        if not attribute:
            continue  # biases, buffers, parameters of other names: never layers
        param = f"{module}.{attribute}" if module else attribute
        if key.endswith("_mask"):
            prune_masks[param] = value
        elif key.endswith("_orig") or param not in weights:
            weights[param] = value
    order = list(dict.fromkeys([*weights, *prune_masks, *given]))
    shapes = {key: tuple(value.shape) for key, value in {**weights, **prune_masks, **given}.items()}
    gpt2 = is_gpt2_layout(shapes)
    owners = {  # tensors of embeddings, by storage: a Linear tied to one is no layer of its own
        _storage(weight): layer_name(param)
        for param, weight in weights.items()
        if REASON_EMBEDDING in (_skip_reason(param, weight, tensors) or "")
    }
    layers: list[LayerRecord] = []
    skipped: dict[str, str] = {}  # name -> reason, in order
    unmasked: list[str] = []
    read = 0  # weights read as layers (a fused one gives three records)
    for param in order:
        weight = weights.get(param)
        mask = given.get(param, prune_masks.get(param))
        reference = mask if mask is not None else weight
        if reference.dim() < 2 or reference.dim() > 5:
            continue  # biases and normalisation weights are 1-D: never layers
        reason = _skip_reason(param, reference, tensors)
        storage = None if weight is None else _storage(weight)
        other = owners.get(storage) if storage is not None else None
        if reason is None and other is not None and other != layer_name(param):
            reason = REASON_TIED.format(other=other)
        if reason is not None:
            skipped[layer_name(param)] = reason
            continue
        if storage is not None:
            owners[storage] = layer_name(param)
        if mask is None and (given or prune_masks):
            skipped[layer_name(param)] = REASON_UNMASKED
            continue
        if mask is None:
            unmasked.append(layer_name(param))
            mask = weight.detach() != 0
        fused, input_major = state_dict_layout(param, tuple(reference.shape), gpt2=gpt2)
        kind = KIND_BY_NDIM[reference.dim()]
        read += 1
        layers += records_of_weight(
            param, kind, mask, weight, fused=fused, input_major=input_major, source=source
        )
    notes = [NOTE_BARE_STATE_DICT] if layers else []
    notes += [NOTE_GPT2] if layers and gpt2 else []
    notes += _unmasked_notes(unmasked, total=read)
    return LayerSelection(
        tuple(layers),
        tuple(SkippedTensor(name, reason) for name, reason in skipped.items()),
        tuple(notes + collapsed_notes(tuple(layers))),
    )


def _skip_reason(param: str, reference: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> str | None:
    return state_dict_skip_reason(split_attribute(param)[0] or ROOT_NAME, reference.dim(), tensors)


def _storage(tensor: torch.Tensor) -> tuple | None:
    """Identity of a tensor's data, so that tied weights (one storage under two names) are found."""
    if tensor.numel() == 0 or tensor.device.type == "meta":
        return None
    return (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
