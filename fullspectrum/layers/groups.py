"""Layer names grouped by block and projection, so a transformer's hundreds of layers read as a grid.

A transformer repeats one block (``model.layers.3``, ``transformer.h.0``, ``encoder.layer.5``)
holding the same projections (``q_proj`` ... ``down_proj``); a ResNet repeats residual blocks
(``layer1.0``) holding ``conv1``, ``conv2``, ``shortcut.0``. From a layer's module path:

* **block**: the path up to its last numeric component that is not the last component
  (``model.layers.3.mlp.down_proj`` -> ``model.layers.3``); ``""`` when there is none
  (``lm_head``, ``fc``, ``features.3``).
* **projection**: the shortest tail of the path after the block that names one thing across the
  network's layers, and does not end in a bare number: ``down_proj`` for LLaMA, ``q`` for a fused
  ``c_attn`` split, ``conv1`` in a ResNet; GPT-2's ``attn.c_proj`` and ``mlp.c_proj`` keep their
  parent because ``c_proj`` alone would mix two different projections; ``shortcut.0`` rather than
  ``0``. A layer outside any block is its own projection (its whole name).

Because of the uniqueness rule the projection depends on the other layers' names: give
:func:`layer_groups` all of the network's layers (before any filtering), so a projection's name
does not change with the selection.

>>> names = ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head"]
>>> [(group.block, group.projection) for group in layer_groups(names)]
[('model.layers.0', 'q_proj'), ('model.layers.0', 'down_proj'), ('', 'lm_head')]
>>> [group.projection for group in layer_groups(["h.0.attn.c_proj", "h.0.mlp.c_proj", "h.0.attn.c_attn.q"])]
['attn.c_proj', 'mlp.c_proj', 'q']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class LayerGroup(NamedTuple):
    """Where a layer sits in a network of repeated blocks."""

    block: str
    """Module path of the repeated block holding the layer (``model.layers.3``), ``""`` if none."""
    projection: str
    """The layer's name inside its block (``down_proj``, ``q``, ``conv1``); the whole name outside one."""


def block_of(name: str) -> tuple[str, str]:
    """``(block, rest)``: ``name`` split after its last numeric component that is not its last one.

    >>> block_of("model.layers.3.mlp.down_proj"), block_of("features.3"), block_of("fc")
    (('model.layers.3', 'mlp.down_proj'), ('', 'features.3'), ('', 'fc'))
    """
    parts = name.split(".")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index].isdigit():
            return ".".join(parts[: index + 1]), ".".join(parts[index + 1 :])
    return "", name


def layer_groups(names: Sequence[str]) -> list[LayerGroup]:
    """The :class:`LayerGroup` of every layer of ``names`` (all of a network's layers, in any order)."""
    split = [block_of(name) for name in names]
    rests = {rest for block, rest in split if block}
    groups = []
    for block, rest in split:
        if not block:
            groups.append(LayerGroup("", rest))
            continue
        parts = rest.split(".")
        for size in range(1, len(parts) + 1):
            tail = ".".join(parts[-size:])
            if parts[-size].isdigit() and size < len(parts):
                continue  # a bare number names nothing on its own: take its parent too
            if all(other == rest or not _ends_with(other, tail) for other in rests):
                break
        groups.append(LayerGroup(block, tail))
    return groups


def _ends_with(path: str, tail: str) -> bool:
    """Whether ``path``'s last components are ``tail``'s (``mlp.c_proj`` ends with ``c_proj``)."""
    return path == tail or path.endswith(f".{tail}")
