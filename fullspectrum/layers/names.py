"""Parameter names and layer names, converted in one place (SPEC §1, §8).

A layer is named by its module path (``layer1.0.conv1``: no ``.weight``, no ``module.`` prefix)
in tables, exports and the app; masks and state dicts are keyed by parameter name
(``layer1.0.conv1.weight``). A fused attention projection is analysed as three layers named
``<module>.q``, ``<module>.k`` and ``<module>.v``.

>>> layer_name("module.layer1.0.conv1.weight")
'layer1.0.conv1'
>>> parameter_name("layer1.0.conv1")
'layer1.0.conv1.weight'
>>> parameter_name(layer_name("weight"))
'weight'
"""

from __future__ import annotations

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes added by DataParallel/DistributedDataParallel and ``torch.compile``."""
ROOT_NAME = "(root)"
"""Name of a layer that is the whole model (a state dict with a bare ``weight`` key)."""


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


def layer_name(param_name: str) -> str:
    """``module.layer1.0.conv1.weight`` -> ``layer1.0.conv1`` (a module path stays as is)."""
    name = strip_wrappers(param_name)
    if name in ("weight", "weight_mask", "weight_orig"):
        return ROOT_NAME
    for suffix in (".weight", ".weight_mask", ".weight_orig"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parameter_name(layer: str) -> str:
    """``layer1.0.conv1`` -> ``layer1.0.conv1.weight``: the key of a layer's mask and weight."""
    return "weight" if layer == ROOT_NAME else f"{layer}.weight"
