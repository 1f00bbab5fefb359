"""Dead paths across layers: where one layer's dead units make the next layer's kept weights useless.

Each layer is scored on its own graph (SPEC §1), but a signal crosses layers. An
output unit (a row; for a conv, an output channel) of layer ``l`` with no kept
weight always emits a constant, so the kept weights of layer ``l+1`` that read
that channel carry no information about the input; and an output unit of
``l`` that layer ``l+1`` never reads (its input channel there has no kept
weight) makes the kept weights *into* it useless. MGE24's unrolled,
input-aware view counts such paths exactly; this is the cheap pairwise check
on the masks alone.

Pairs are consecutive layers in the masks' order whose sizes match (layer
``l``'s outputs == layer ``l+1``'s input channels). That is exact for plain
sequential networks (MLP, LeNet, VGG, Conv-6 within their conv or linear
stacks); a residual block's skip connection or a flatten between conv and
linear layers breaks the pairing (sizes differ) or makes it an approximation.

>>> import numpy as np
>>> first = np.array([[1, 1], [0, 0], [1, 0]], dtype=bool)   # (out 3, in 2): output 1 is dead
>>> second = np.array([[1, 1, 0], [0, 1, 1]], dtype=bool)    # (out 2, in 3): reads channel 1 twice
>>> link = dead_links({"fc1.weight": first, "fc2.weight": second})[0]
>>> link.dead_outputs, link.useless_inputs, link.useless_weights
(1, 1, 2)
>>> link.sentence()
'1 dead output of `fc1` makes 1 input of `fc2` useless (2 kept weights there carry nothing)'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fullspectrum.layers.names import layer_name
from fullspectrum.spectrum.graph import check_mask

LINK_COLUMNS = (
    "upstream", "downstream", "dead_outputs", "useless_inputs", "useless_weights", "unread_outputs",
    "stranded_weights",
)  # fmt: skip
"""Columns of :func:`links_table`."""


@dataclass(frozen=True)
class DeadLink:
    """Two consecutive layers whose sizes match, and the kept weights that carry nothing between them."""

    upstream: str
    """Layer ``l`` (module path)."""
    downstream: str
    """Layer ``l+1``."""
    dead_outputs: int
    """Output units of ``l`` with no kept weight (they emit a constant)."""
    useless_inputs: int
    """Input channels of ``l+1`` fed by those dead outputs that still have kept weights."""
    useless_weights: int
    """Kept weights of ``l+1`` on those channels: a budget spent on a constant."""
    unread_outputs: int
    """Output units of ``l`` that still have kept weights but whose channel ``l+1`` never reads."""
    stranded_weights: int
    """Kept weights of ``l`` into those unread outputs: a budget spent on nothing downstream."""

    @property
    def wasted_weights(self) -> int:
        """Kept weights on no path through this pair (``useless_weights + stranded_weights``)."""
        return self.useless_weights + self.stranded_weights

    def sentence(self) -> str:
        """'67 dead outputs of `fc1` make 47 inputs of `fc2` useless (… kept weights there carry nothing)',
        and the unread outputs when there are any; empty when nothing is wasted."""
        parts = []
        if self.useless_inputs:
            verb = "makes" if self.dead_outputs == 1 else "make"
            parts.append(
                f"{_plural(self.dead_outputs, 'dead output')} of `{self.upstream}` {verb} "
                f"{_plural(self.useless_inputs, 'input')} of `{self.downstream}` useless "
                f"({_plural(self.useless_weights, 'kept weight')} there carry nothing)"
            )
        if self.unread_outputs:
            parts.append(
                f"{_plural(self.unread_outputs, 'output')} of `{self.upstream}` that `{self.downstream}` "
                f"never reads strand {_plural(self.stranded_weights, 'kept weight')}"
            )
        return "; ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _rows_alive(mask: np.ndarray) -> np.ndarray:
    """Per output unit of a ``(out, in, *k)`` mask: whether it keeps any weight. Shape (out,)."""
    return mask.reshape(mask.shape[0], -1).any(axis=1)


def _channel_weights(mask: np.ndarray) -> np.ndarray:
    """Per input channel of a ``(out, in, *k)`` mask: how many weights read it. Shape (in,)."""
    return np.moveaxis(mask, 1, 0).reshape(mask.shape[1], -1).sum(axis=1)


def dead_links(masks: Mapping) -> list[DeadLink]:
    """Every consecutive pair of ``masks`` (parameter names or module paths, in layer order) whose sizes
    match, with the weights its dead units waste (see the module docstring)."""
    named = [(layer_name(str(name)), check_mask(mask, name=str(name))) for name, mask in masks.items()]
    links = []
    for (up_name, up), (down_name, down) in zip(named, named[1:], strict=False):
        if up.shape[0] != down.shape[1]:
            continue  # not a sequential pair (a flatten, a skip connection or a head)
        alive = _rows_alive(up)  # (out_l,)
        reads = _channel_weights(down)  # (in_{l+1},) == (out_l,)
        per_unit = up.reshape(up.shape[0], -1).sum(axis=1)
        links.append(
            DeadLink(
                upstream=up_name,
                downstream=down_name,
                dead_outputs=int((~alive).sum()),
                useless_inputs=int(((~alive) & (reads > 0)).sum()),
                useless_weights=int(reads[~alive].sum()),
                unread_outputs=int((alive & (reads == 0)).sum()),
                stranded_weights=int(per_unit[alive & (reads == 0)].sum()),
            )
        )
    return links


def links_table(links: list[DeadLink]) -> pd.DataFrame:
    """The links as rows (:data:`LINK_COLUMNS`) plus ``wasted_weights``."""
    rows = [
        {**{c: getattr(link, c) for c in LINK_COLUMNS}, "wasted_weights": link.wasted_weights}
        for link in links
    ]
    return pd.DataFrame(rows, columns=[*LINK_COLUMNS, "wasted_weights"])


def wasted_weight_count(masks: Mapping) -> int:
    """Kept weights on no path through some consecutive pair of ``masks``: the union over pairs of the
    weights that read a dead output and the weights into an output the next layer never reads (a weight
    that is both counts once)."""
    named = [check_mask(mask, name=str(name)) for name, mask in masks.items()]
    wasted = [np.zeros(mask.shape, dtype=bool) for mask in named]
    for index, (up, down) in enumerate(zip(named, named[1:], strict=False)):
        if up.shape[0] != down.shape[1]:
            continue
        alive = _rows_alive(up)
        reads = _channel_weights(down)
        wasted[index + 1][:, ~alive] |= down[:, ~alive]  # reads a constant
        unread = alive & (reads == 0)
        wasted[index][unread] |= up[unread]  # feeds nothing
    return int(sum(w.sum() for w in wasted))
