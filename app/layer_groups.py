"""A run's per-layer table with where each layer sits (``block``, ``projection``) and its N:M pattern.

A transformer's hundreds of layers read as a grid of repeated blocks × projections
(``fullspectrum.layers.groups``). A model-folder analysis run stores each layer's block, projection
and ``nm_pattern`` in ``run.json`` (:data:`app.model_folders.GROUPS_KEY`); for any other run the
block and projection follow from the layer names alone, and the N:M pattern is not known (empty).
Pure pandas: the pages filter with :func:`filter_layers` and draw ``app.charts.blocks``.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from app.model_folders import GROUPS_KEY
from fullspectrum.layers.groups import layer_groups

GROUP_COLUMNS = ("block", "projection", "nm_pattern")
NM_SENTENCE = (
    "This layer is {pattern} sparse: every output unit's inputs come in fixed groups of {m} consecutive "
    "weights, and exactly {n} of each group are kept (the pattern sparse tensor cores run fast)."
)
"""The inspector's one line for an N:M layer (SPEC §1, ``nm_pattern``)."""


def grouped_layers(layers: pd.DataFrame, info: dict) -> pd.DataFrame:
    """``layers`` (a run's ``layers`` table) with ``block``, ``projection`` and ``nm_pattern`` columns."""
    stored = info.get(GROUPS_KEY) or {}
    names = list(dict.fromkeys(layers["layer"].astype(str)))
    derived = dict(zip(names, layer_groups(names), strict=True))
    groups = {
        name: tuple(stored[name]) if name in stored else (derived[name].block, derived[name].projection, "")
        for name in names
    }
    table = layers.copy()
    for index, column in enumerate(GROUP_COLUMNS):
        table[column] = table["layer"].map(lambda name, i=index: groups[str(name)][i])
    return table


def has_blocks(table: pd.DataFrame) -> bool:
    """Whether the layers come in several repeated blocks (the filters and the heat map help then)."""
    return "block" in table.columns and table.loc[table["block"] != "", "block"].nunique() > 1


def block_order(blocks: Collection[str]) -> list[str]:
    """Blocks in model order: numbers compared as numbers (``layers.2`` before ``layers.10``)."""
    return sorted(set(blocks), key=_natural_key)


def _natural_key(name: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split(".")]


def projection_order(table: pd.DataFrame) -> list[str]:
    """The projections of the layers inside blocks, in first-seen order."""
    return list(dict.fromkeys(table.loc[table["block"] != "", "projection"]))


def filter_layers(
    table: pd.DataFrame, blocks: Collection[str] = (), projections: Collection[str] = ()
) -> pd.DataFrame:
    """The rows in any of ``blocks`` and any of ``projections`` (an empty choice keeps all)."""
    keep = pd.Series(True, index=table.index)
    if blocks:
        keep &= table["block"].isin(list(blocks))
    if projections:
        keep &= table["projection"].isin(list(projections))
    return table[keep]


def nm_sentence(pattern: str) -> str | None:
    """The one line explaining an ``N:M`` pattern, None for none."""
    if not pattern:
        return None
    n, m = pattern.split(":")
    return NM_SENTENCE.format(pattern=pattern, n=n, m=m)
