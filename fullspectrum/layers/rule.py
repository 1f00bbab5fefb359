"""The one rule that decides which tensors of a network are layers (SPEC §1, §6).

A layer is a weight that is one bipartite graph of input units by output units in the
rolled encoding of Hoang et al. (ICLR 2023, NeurIPS 2023): the weight of a
``Conv1d/2d/3d`` with ``groups == 1`` or of a ``Linear``, the first convolution, 1×1
shortcuts and the classifier included (ITOP, Liu et al. ICML 2021, masks exactly
these), and in transformers the ``Linear`` projections of attention and MLP blocks
(``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``, ``gate_proj``, ``up_proj``,
``down_proj``, ``nn.MultiheadAttention``'s ``out_proj``, an ``lm_head``).

* A **fused projection** packs the query, key and value projections of an attention
  block in one ``(3d, d)`` weight: ``nn.MultiheadAttention.in_proj_weight``, or the
  weight of a ``Linear`` named ``qkv`` or ``c_attn`` whose output is three times its
  input. It is *masked* as the one parameter it is (its mask is keyed by its
  parameter name, SPEC §8) and *analysed* as three ``(d, d)`` layers, rows
  ``[0:d]``, ``[d:2d]``, ``[2d:3d]``, named ``<module>.q``, ``<module>.k``,
  ``<module>.v`` after the module that owns the weight (``attn.q`` for an
  ``nn.MultiheadAttention`` at ``attn``; ``attn.qkv.q`` for a ``Linear`` at
  ``attn.qkv``). A ``qkv`` weight of another shape (grouped-query attention) is
  one ``Linear`` layer. ``nn.MultiheadAttention`` with ``kdim``/``vdim`` different
  from ``embed_dim`` keeps three separate weights: they are the layers ``<module>.q``,
  ``<module>.k``, ``<module>.v``.
* **HF GPT-2's ``Conv1D``** (``transformers.pytorch_utils.Conv1D``) is a Linear layer
  that stores its weight input-major, ``(in, out)``. It is masked as stored and
  analysed transposed, as ``(out, in)``; its ``c_attn`` (``(d, 3d)`` stored) is split
  like any fused projection after the transposition. A module is taken for one when
  its class is named ``Conv1D`` and it has an ``nf`` (output size) attribute equal to
  its weight's second dimension. In a bare state dict a ``c_attn`` weight of shape
  ``(d, 3d)`` marks the GPT-2 layout: then every ``c_attn``, ``c_fc`` and ``c_proj``
  weight of that state dict is read as input-major.
* Grouped or depthwise convolutions, transposed convolutions, embeddings and a weight
  tied to an embedding or to an earlier layer are skipped with the reason. Biases and
  normalisation parameters are never layers.

>>> from torch import nn
>>> block = nn.Sequential(nn.Embedding(10, 4), nn.MultiheadAttention(4, 2), nn.Linear(4, 10))
>>> [entry.name for entry in maskable_parameters(block)]
['1.in_proj_weight', '1.out_proj.weight', '2.weight']
>>> found, skipped = find_layers(block)
>>> [(entry.name, entry.fused) for entry in found][0], skipped[0].name
(('1.in_proj_weight', True), '0')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from fullspectrum.errors import MaskError
from fullspectrum.layers.names import (
    FUSED_ATTRIBUTE,
    ROOT_NAME,
    SEPARATE_ATTRIBUTES,
    layer_name,
    split_attribute,
    split_names,
    strip_wrappers,
)

FUSED_MODULE_NAMES = ("qkv", "c_attn")
"""Names of ``Linear`` modules whose ``(3d, d)`` weight packs the q, k, v projections."""
GPT2_INPUT_MAJOR_NAMES = ("c_attn", "c_fc", "c_proj")
"""HF GPT-2's ``Conv1D`` modules, read input-major in a state dict of the GPT-2 layout."""
KIND_BY_NDIM = {2: "Linear", 3: "Conv1d", 4: "Conv2d", 5: "Conv3d"}
"""How a bare state dict's weight is read from its number of dimensions."""
_CONV_KINDS = ((nn.Conv1d, "Conv1d"), (nn.Conv2d, "Conv2d"), (nn.Conv3d, "Conv3d"))
_NORM_NAME = re.compile(r"(norm|^bn\d*$|^ln(_\w+)?\d*$|^gn\d*$)", re.IGNORECASE)
_EMBEDDING_NAME = re.compile(r"(embed|^embs?\d*$|^emb_|^wte$|^wpe$)", re.IGNORECASE)

REASON_GROUPED = "grouped/depthwise convolution (groups={groups}): not one input-by-output bipartite graph"
REASON_TRANSPOSED = (
    "transposed convolution: its weight is (in, out, *kernel), not a layer of the rolled encoding"
)
REASON_EMBEDDING = "embedding: a lookup table, not a layer of the rolled encoding"
REASON_TIED = "weight tied to {other} (an embedding or an earlier layer): not a layer of its own"
REASON_NORM = "normalisation layer (by its name or running statistics): never a layer"


@dataclass(frozen=True)
class SkippedTensor:
    """A weight that looks like a layer but is not one (SPEC §1)."""

    name: str
    """Module path (or parameter name) of the skipped tensor."""
    reason: str
    """Why it is not a layer."""


class LayerParameter(NamedTuple):
    """One weight that holds a layer (or, when ``fused``, three), as the rule found it."""

    name: str
    """Parameter name as in ``model.state_dict()``, e.g. ``layer1.0.conv1.weight`` (wrappers kept)."""
    module: nn.Module
    """The module that owns the weight."""
    attribute: str
    """The weight's attribute on ``module``: ``weight``, ``in_proj_weight``, ``q_proj_weight``..."""
    kind: str
    """``Linear``, ``Conv1d``, ``Conv2d`` or ``Conv3d``."""
    fused: bool
    """True when the weight packs the q, k, v projections (analysed as three layers)."""
    input_major: bool
    """True when the weight is stored ``(in, out)`` (HF ``Conv1D``) and is analysed transposed."""

    @property
    def pruned(self) -> bool:
        """True when ``torch.nn.utils.prune`` reparametrised it (``<attribute>_orig``)."""
        return f"{self.attribute}_orig" in self.module._parameters

    @property
    def param(self) -> nn.Parameter:
        """The weight (``<attribute>_orig`` when pruned the ``torch.nn.utils.prune`` way)."""
        params = self.module._parameters
        return params[f"{self.attribute}_orig"] if self.pruned else params[self.attribute]


class MaskableParameter(NamedTuple):
    """One maskable weight: its parameter name, its module, and the parameter itself."""

    name: str
    """Parameter name as in ``model.state_dict()``, e.g. ``layer1.0.conv1.weight``."""
    module: nn.Module
    """The ``Conv*d`` / ``Linear`` / attention module that owns it."""
    param: nn.Parameter
    """The weight tensor (never modified by this package)."""

    @property
    def attribute(self) -> str:
        """The weight's attribute on ``module`` (``weight``, ``in_proj_weight``, ...)."""
        return self.name.rpartition(".")[2]


def find_layers(model: nn.Module) -> tuple[list[LayerParameter], list[SkippedTensor]]:
    """Every weight of ``model`` that holds a layer, in module order, and what was skipped and why.

    Modules already pruned the ``torch.nn.utils.prune`` way are included (``pruned``).
    A parameter shared by several modules counts once, at its first owner.
    """
    owners = {
        id(module.weight): strip_wrappers(name) or ROOT_NAME
        for name, module in model.named_modules()
        if isinstance(module, nn.Embedding | nn.EmbeddingBag)
    }
    found: list[LayerParameter] = []
    skipped: list[SkippedTensor] = []
    for module_name, module in model.named_modules():
        label = strip_wrappers(module_name) or ROOT_NAME
        reason = module_skip_reason(module)
        if reason is not None:
            skipped.append(SkippedTensor(label, reason))
            continue
        prefix = f"{module_name}." if module_name else ""
        for attribute, kind, fused, input_major in _layer_weights(module, module_name):
            entry = LayerParameter(f"{prefix}{attribute}", module, attribute, kind, fused, input_major)
            other = owners.get(id(entry.param))
            if other is not None:
                skipped.append(
                    SkippedTensor(layer_name(strip_wrappers(entry.name)), REASON_TIED.format(other=other))
                )
                continue
            owners[id(entry.param)] = layer_name(strip_wrappers(entry.name))
            found.append(entry)
    return found, skipped


def _layer_weights(module: nn.Module, module_name: str) -> list[tuple[str, str, bool, bool]]:
    """``(attribute, kind, fused, input_major)`` of each layer weight ``module`` owns directly."""
    params = module._parameters
    present = [a for a in params if params[a] is not None]
    if isinstance(module, nn.MultiheadAttention):
        fused = [(FUSED_ATTRIBUTE, "Linear", True, False)]
        candidates = fused + [(a, "Linear", False, False) for a in SEPARATE_ATTRIBUTES]
    elif isinstance(module, nn.Linear) or _is_input_major_linear(module):
        input_major = not isinstance(module, nn.Linear)
        weight = _own_weight(module)
        if weight is None or weight.dim() != 2:
            return []
        out_features, in_features = weight.shape[::-1] if input_major else weight.shape
        packs_qkv = module_name.rpartition(".")[2] in FUSED_MODULE_NAMES and out_features == 3 * in_features
        candidates = [("weight", "Linear", packs_qkv, input_major)]
    else:
        kind = next((name for cls, name in _CONV_KINDS if isinstance(module, cls)), None)
        candidates = [] if kind is None else [("weight", kind, False, False)]
    return [c for c in candidates if c[0] in present or f"{c[0]}_orig" in present]


def _own_weight(module: nn.Module) -> torch.Tensor | None:
    """The module's ``weight`` parameter (``weight_orig`` when pruned), None if it has none."""
    weight = module._parameters.get("weight")
    return module._parameters.get("weight_orig") if weight is None else weight


def _is_input_major_linear(module: nn.Module) -> bool:
    """HF ``Conv1D``: a Linear layer whose weight is stored ``(in, out)``, with ``nf`` outputs."""
    weight, nf = _own_weight(module), getattr(module, "nf", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(nf, int)
        and weight is not None
        and weight.dim() == 2
        and weight.shape[1] == nf
    )


def module_skip_reason(module: nn.Module) -> str | None:
    """Why a layer-like module is not a layer (None when it is one or holds none)."""
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return REASON_TRANSPOSED
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.groups != 1:
        return REASON_GROUPED.format(groups=module.groups)
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return REASON_EMBEDDING
    return None


def maskable_parameters(model: nn.Module) -> list[MaskableParameter]:
    """Every maskable weight of ``model`` in module order (SPEC §6): the weights :func:`find_layers` finds.

    A fused projection is one maskable parameter (``attn.in_proj_weight``). A module that
    already carries a ``torch.nn.utils.prune`` mask (``weight_orig``) is refused, because
    its weight is no longer a parameter that can be scored.
    """
    found, _ = find_layers(model)
    for entry in found:
        if entry.pruned:
            module_name = entry.name.rpartition(".")[0]
            raise MaskError(
                f"layer {module_name!r} already has a torch.nn.utils.prune mask; "
                "call torch.nn.utils.prune.remove on it or pass an unpruned model"
            )
    return [MaskableParameter(entry.name, entry.module, entry.param) for entry in found]


def state_dict_skip_reason(path: str, ndim: int, tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Why a 2-D to 5-D weight of a bare state dict is not a layer, from its module path's name."""
    last = path.rpartition(".")[2]
    if f"{path}.running_mean" in tensors or f"{path}.running_var" in tensors or _NORM_NAME.search(last):
        return REASON_NORM
    if ndim == 2 and _EMBEDDING_NAME.search(last):
        return REASON_EMBEDDING + " (by its name)"
    return None


def is_gpt2_layout(shapes: Mapping[str, tuple[int, ...]]) -> bool:
    """True when a state dict (parameter name -> shape) holds a ``c_attn`` weight stored ``(d, 3d)``."""
    for key, shape in shapes.items():
        module, attribute = split_attribute(key)
        if attribute == "weight" and module.rpartition(".")[2] == "c_attn" and len(shape) == 2:
            if shape[1] == 3 * shape[0] > 0:
                return True
    return False


def state_dict_layout(key: str, shape: tuple[int, ...], *, gpt2: bool) -> tuple[bool, bool]:
    """``(fused, input_major)`` of a state dict's weight ``key`` of ``shape`` (the bare-state-dict rule)."""
    module, attribute = split_attribute(key)
    last = module.rpartition(".")[2]
    if attribute == FUSED_ATTRIBUTE:
        return len(shape) == 2 and shape[0] == 3 * shape[1], False
    if attribute != "weight" or len(shape) != 2:
        return False, False
    input_major = gpt2 and last in GPT2_INPUT_MAJOR_NAMES
    out_features, in_features = shape[::-1] if input_major else shape
    return last in FUSED_MODULE_NAMES and out_features == 3 * in_features, input_major


def layer_views(
    key: str, tensor: torch.Tensor, *, fused: bool, input_major: bool
) -> list[tuple[str, torch.Tensor]]:
    """The layers a weight (or its mask) ``key`` holds: ``[(layer name, (out, in, *kernel) tensor)]``.

    An input-major weight is transposed; a fused one is split into rows ``[0:d]``, ``[d:2d]``,
    ``[2d:3d]`` named ``<module>.q``, ``<module>.k``, ``<module>.v``.

    >>> [(name, tuple(t.shape)) for name, t in layer_views("attn.in_proj_weight", torch.ones(6, 2),
    ...                                                     fused=True, input_major=False)]
    [('attn.q', (2, 2)), ('attn.k', (2, 2)), ('attn.v', (2, 2))]
    """
    key = strip_wrappers(key)
    tensor = tensor.T if input_major else tensor  # (out, in)
    if not fused:
        return [(layer_name(key), tensor)]
    rows = tensor.shape[0] // 3
    parts = (tensor[:rows], tensor[rows : 2 * rows], tensor[2 * rows :])  # (d, d) each
    return list(zip(split_names(split_attribute(key)[0]), parts))
