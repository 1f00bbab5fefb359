"""Which tensors of a network are layers of the rolled bipartite encoding (SPEC §1).

A layer is the weight of a ``Conv1d/2d/3d`` with ``groups == 1`` or of a
``Linear``, as in Hoang et al. (ICLR 2023, NeurIPS 2023) and ITOP (ICML 2021),
whose code masks exactly these. Grouped/depthwise and transposed convolutions,
embeddings and attention projections are not one bipartite graph of input by
output units in that encoding, so they are skipped with the reason. Biases and
normalisation parameters are never layers.

Two readers share the records they return:

* :func:`layers_from_module` walks an ``nn.Module`` and knows each module's type;
  masks come from ``torch.nn.utils.prune`` (``weight_orig`` + ``weight_mask``).
* :func:`layers_from_state_dict` reads a bare state dict, where only shapes are
  known: every 2-D to 5-D ``*.weight`` not of a normalisation layer is read as
  Linear/Conv, and a note says so.

Layers are named by module path (``layer1.0.conv1``: no ``.weight``, no
``module.`` prefix) everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from fullspectrum.layers.names import ROOT_NAME, layer_name, strip_wrappers
from fullspectrum.spectrum.graph import check_mask, check_weight

KIND_BY_NDIM = {2: "Linear", 3: "Conv1d", 4: "Conv2d", 5: "Conv3d"}
"""How a bare state dict's weight is read from its number of dimensions."""
_NORM_NAME = re.compile(r"(norm|^bn\d*$|^ln(_\w+)?\d*$|^gn\d*$)", re.IGNORECASE)
_EMBEDDING_NAME = re.compile(r"(embed|^embs?\d*$|^emb_|^wte$|^wpe$)", re.IGNORECASE)
_ATTENTION_PARAMS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")

REASON_GROUPED = "grouped/depthwise convolution (groups={groups}): not one input-by-output bipartite graph"
REASON_TRANSPOSED = (
    "transposed convolution: its weight is (in, out, *kernel), not a layer of the rolled encoding"
)
REASON_EMBEDDING = "embedding: a lookup table, not a layer of the rolled encoding"
REASON_ATTENTION = "attention projection (MultiheadAttention): skipped, as in FS23/ITOP"
REASON_UNMASKED = "no mask in a file that has masks (left dense or not prunable by the code that masked it)"
NOTE_BARE_STATE_DICT = (
    "read from a bare state dict: every 2-D to 5-D '*.weight' not of a normalisation layer is taken as "
    "Linear/Conv by its shape (grouped or transposed convolutions cannot be told apart there)"
)


@dataclass(frozen=True)
class LayerRecord:
    """One prunable layer, ready for ``layer_spectrum``."""

    name: str
    """Module path, e.g. ``layer1.0.conv1`` (no ``.weight``, no ``module.`` prefix)."""
    kind: str
    """``Linear``, ``Conv1d``, ``Conv2d`` or ``Conv3d``."""
    shape: tuple[int, ...]
    """Weight shape ``(out, in, *kernel)``."""
    mask: torch.Tensor
    """Bool mask of that shape on the CPU (True = kept weight)."""
    weight: torch.Tensor | None
    """The weights (float, CPU), or None when only a mask is known."""


@dataclass(frozen=True)
class SkippedTensor:
    """A weight that looks like a layer but is not one (SPEC §1)."""

    name: str
    """Module path (or parameter name) of the skipped tensor."""
    reason: str
    """Why it is not a layer."""


@dataclass(frozen=True)
class LayerSelection:
    """The layers of a network, the tensors skipped, and notes for the user."""

    layers: tuple[LayerRecord, ...]
    """Layers in network order."""
    skipped: tuple[SkippedTensor, ...]
    """Layer-like tensors left out, with their reason."""
    notes: tuple[str, ...]
    """Notes and warnings (how masks were read, collapsed layers)."""


def make_record(name: str, kind: str, mask, weight, *, source: str = "") -> LayerRecord:
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
    )


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
    """Layers of an ``nn.Module``; masks the ``torch.nn.utils.prune`` way, else nonzeros."""
    layers: list[LayerRecord] = []
    skipped: list[SkippedTensor] = []
    unmasked: list[str] = []
    attention_children: set[str] = set()
    for raw_name, module in model.named_modules():
        name = strip_wrappers(raw_name) or ROOT_NAME
        if raw_name in attention_children:
            skipped.append(SkippedTensor(name, REASON_ATTENTION))
            continue
        if isinstance(module, nn.MultiheadAttention):
            prefix = f"{raw_name}." if raw_name else ""
            attention_children.update(f"{prefix}{child}" for child, _ in module.named_children())
            for param in _ATTENTION_PARAMS:
                if getattr(module, param, None) is not None or hasattr(module, f"{param}_orig"):
                    skipped.append(SkippedTensor(f"{name}.{param}", REASON_ATTENTION))
            continue
        reason = _module_skip_reason(module)
        if reason is not None:
            skipped.append(SkippedTensor(name, reason))
            continue
        if not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            continue
        weight = getattr(module, "weight_orig", None)
        weight = module.weight if weight is None else weight
        mask = getattr(module, "weight_mask", None)
        if mask is None:
            unmasked.append(name)
            mask = weight.detach() != 0
        layers.append(make_record(name, type(module).__name__, mask, weight, source=source))
    notes = _unmasked_notes(unmasked, total=len(layers))
    return LayerSelection(tuple(layers), tuple(skipped), tuple(notes + collapsed_notes(tuple(layers))))


def _module_skip_reason(module: nn.Module) -> str | None:
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return REASON_TRANSPOSED
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.groups != 1:
        return REASON_GROUPED.format(groups=module.groups)
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return REASON_EMBEDDING
    return None


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
    pair ``X.weight_orig`` + ``X.weight_mask`` is one masked layer ``X``.
    ``masks`` (optional) maps parameter names or module paths to masks
    (``{"masks": ...}`` of a SPEC §8 mask checkpoint or sparselearning/ITOP).
    When the state dict carries no mask at all, the nonzeros of each weight
    define its mask (with a note). When it does, the masked tensors are the
    layers (the code that made the masks chose them) and other weights are
    listed as skipped: grouped convolutions or embeddings cannot be told from a
    Linear/Conv by shape.
    Layers without weights (``masks`` only) are analysed without weights.
    """
    tensors = {
        strip_wrappers(k): v
        for k, v in (state_dict or {}).items()
        if isinstance(k, str) and isinstance(v, torch.Tensor)
    }
    given = {layer_name(str(k)): torch.as_tensor(v) for k, v in (masks or {}).items()}
    weights: dict[str, torch.Tensor] = {}
    prune_masks: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}  # name -> reason, in order
    for key, value in tensors.items():
        parent, _, param = key.rpartition(".")
        base = param[: -len("_orig")] if param.endswith("_orig") else param
        base = base[: -len("_mask")] if base.endswith("_mask") else base
        if base in _ATTENTION_PARAMS:
            skipped[f"{parent}.{base}" if parent else base] = REASON_ATTENTION
            continue
        if base != "weight":
            continue
        path = parent or ROOT_NAME
        if param == "weight_mask":
            prune_masks[path] = value
        elif param == "weight_orig" or path not in weights:
            weights[path] = value
    order = list(dict.fromkeys([*weights, *prune_masks, *given]))
    layers: list[LayerRecord] = []
    unmasked: list[str] = []
    for path in order:
        weight = weights.get(path)
        mask = given.get(path, prune_masks.get(path))
        reference = mask if mask is not None else weight
        if reference.dim() < 2 or reference.dim() > 5:
            continue  # biases and normalisation weights are 1-D: never layers
        reason = _state_dict_skip_reason(path, reference.dim(), tensors)
        if reason is not None:
            skipped[path] = reason
            continue
        if mask is None and (given or prune_masks):
            skipped[path] = REASON_UNMASKED
            continue
        if mask is None:
            unmasked.append(path)
            mask = weight.detach() != 0
        layers.append(make_record(path, KIND_BY_NDIM[reference.dim()], mask, weight, source=source))
    notes = [NOTE_BARE_STATE_DICT] if layers else []
    notes += _unmasked_notes(unmasked, total=len(layers))
    return LayerSelection(
        tuple(layers),
        tuple(SkippedTensor(name, reason) for name, reason in skipped.items()),
        tuple(notes + collapsed_notes(tuple(layers))),
    )


def _state_dict_skip_reason(path: str, ndim: int, tensors: Mapping[str, torch.Tensor]) -> str | None:
    last = path.rpartition(".")[2]
    if last in _ATTENTION_PARAMS:
        return REASON_ATTENTION
    if f"{path}.running_mean" in tensors or f"{path}.running_var" in tensors or _NORM_NAME.search(last):
        return "normalisation layer (by its name or running statistics): never a layer"
    if ndim == 2 and _EMBEDDING_NAME.search(last):
        return REASON_EMBEDDING + " (by its name)"
    parent = path.rpartition(".")[0]
    siblings = (f"{parent}.{p}" if parent else p for p in _ATTENTION_PARAMS)
    if last == "out_proj" and any(s in tensors or f"{s}_orig" in tensors for s in siblings):
        return REASON_ATTENTION
    return None
