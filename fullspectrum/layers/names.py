"""Parameter names and layer names, converted in one place (SPEC §1, §8).

A layer is named by its module path (``layer1.0.conv1``: no ``.weight``, no ``module.`` prefix)
in tables, exports and the app; masks and state dicts are keyed by parameter name
(``layer1.0.conv1.weight``). Attention projections that are parameters of the attention module
itself (``nn.MultiheadAttention``) are named ``<module>.q``, ``<module>.k`` and ``<module>.v``:
``attn.q_proj_weight`` is the layer ``attn.q``, and a fused ``attn.in_proj_weight`` packs the three
layers ``attn.q``, ``attn.k``, ``attn.v`` (:func:`split_names`).

>>> layer_name("module.layer1.0.conv1.weight")
'layer1.0.conv1'
>>> parameter_name("layer1.0.conv1")
'layer1.0.conv1.weight'
>>> parameter_name(layer_name("weight"))
'weight'
>>> layer_name("attn.k_proj_weight_orig")
'attn.k'
>>> split_names("blocks.0.attn")
('blocks.0.attn.q', 'blocks.0.attn.k', 'blocks.0.attn.v')
>>> weight_key("module.attn.in_proj_weight_mask"), weight_key("layer1.0.conv1")
('attn.in_proj_weight', 'layer1.0.conv1.weight')
"""

from __future__ import annotations

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes added by DataParallel/DistributedDataParallel and ``torch.compile``."""
ROOT_NAME = "(root)"
"""Name of a layer that is the whole model (a state dict with a bare ``weight`` key)."""
SPLIT_SUFFIXES = ("q", "k", "v")
"""Names of the three projections a fused attention projection packs, in row order."""
FUSED_ATTRIBUTE = "in_proj_weight"
"""``nn.MultiheadAttention``'s fused ``(3d, d)`` query/key/value projection."""
SEPARATE_ATTRIBUTES = {"q_proj_weight": "q", "k_proj_weight": "k", "v_proj_weight": "v"}
"""``nn.MultiheadAttention``'s separate projections (``kdim``/``vdim`` != ``embed_dim``) -> layer suffix."""
WEIGHT_ATTRIBUTES = ("weight", FUSED_ATTRIBUTE, *SEPARATE_ATTRIBUTES)
"""Attribute names under which a module keeps the weight of a layer."""
_PRUNE_SUFFIXES = ("_orig", "_mask")


def strip_wrappers(name: str) -> str:
    """Remove DataParallel/DDP (``module.``) and ``torch.compile`` prefixes from a name."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
        if name in ("module", "_orig_mod"):
            name = ""
    return name


def split_attribute(param_name: str) -> tuple[str, str]:
    """``attn.in_proj_weight_orig`` -> ``("attn", "in_proj_weight")``: owning module and weight attribute.

    The attribute is ``""`` when the name does not end in one of :data:`WEIGHT_ATTRIBUTES`
    (with or without a ``torch.nn.utils.prune`` ``_orig``/``_mask`` suffix).
    """
    name = strip_wrappers(param_name)
    parent, _, last = name.rpartition(".")
    for suffix in _PRUNE_SUFFIXES:
        if last.endswith(suffix) and last[: -len(suffix)] in WEIGHT_ATTRIBUTES:
            last = last[: -len(suffix)]
    return (parent, last) if last in WEIGHT_ATTRIBUTES else (name, "")


def layer_name(param_name: str) -> str:
    """``module.layer1.0.conv1.weight`` -> ``layer1.0.conv1`` (a module path stays as is).

    ``attn.q_proj_weight`` -> ``attn.q`` (likewise ``k``, ``v``). A fused ``attn.in_proj_weight``
    holds three layers (:func:`split_names`) and keeps its parameter name here.
    """
    module, attribute = split_attribute(param_name)
    if attribute == "weight":
        return module or ROOT_NAME
    if attribute in SEPARATE_ATTRIBUTES:
        suffix = SEPARATE_ATTRIBUTES[attribute]
        return f"{module}.{suffix}" if module else suffix
    if attribute == FUSED_ATTRIBUTE:
        return f"{module}.{attribute}" if module else attribute
    return module


def parameter_name(layer: str) -> str:
    """``layer1.0.conv1`` -> ``layer1.0.conv1.weight``: the key of a layer's mask and weight.

    For a layer split out of a fused projection (``attn.q``) this is the key of that layer's
    own mask (``attn.q.weight``), as analysis outputs write it; the model's parameter is the
    fused one.
    """
    return "weight" if layer == ROOT_NAME else f"{layer}.weight"


def weight_key(name: str) -> str:
    """Any name of a layer's weight -> the parameter name its mask is keyed by (SPEC §8).

    A parameter name stays (wrappers and ``_orig``/``_mask`` suffixes dropped); a module path or
    layer name gets ``.weight``.
    """
    module, attribute = split_attribute(name)
    if attribute:
        return f"{module}.{attribute}" if module else attribute
    return parameter_name(module or ROOT_NAME)


def split_names(module: str) -> tuple[str, str, str]:
    """The layer names of the query, key and value projections packed in ``module``'s fused weight."""
    prefix = f"{module}." if module and module != ROOT_NAME else ""
    return tuple(f"{prefix}{suffix}" for suffix in SPLIT_SUFFIXES)  # type: ignore[return-value]
