"""Per-layer selection of PAGS / PEGS (SPEC §5 step 4; Hoang et al., NeurIPS 2023, "FS23").

Every layer keeps the best mask seen so far, starting from the base mask and
visiting candidates in index order. A *rule* is a small callable
``(candidate, kept) -> bool`` over two ``LayerPoint``\\ s that says whether the
candidate's layer replaces the kept one:

* ``fs23`` (FS23's rule): replace when the candidate's ``delta_r_imdb`` and its
  score ``||u||`` are both ``>=`` the kept ones, NaN counting as ``-inf`` (so
  the kept ``delta_r_imdb`` never decreases);
* ``max-norm``: replace when the score is strictly larger (the first maximiser
  of ``||u||`` in index order, the base mask first, wins ties).

>>> kept = LayerPoint(candidate=-1, delta_r_imdb=float("nan"), score=1.0)
>>> SELECTION_RULES["fs23"](LayerPoint(0, 0.5, 1.0), kept), SELECTION_RULES["max-norm"](LayerPoint(0, 0.5, 1.0), kept)
(True, False)
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from fullspectrum.errors import unknown_name


class LayerPoint(NamedTuple):
    """What a rule compares about one layer of one candidate."""

    candidate: int
    """Candidate index (``-1`` = the base mask)."""
    delta_r_imdb: float
    """FS23's iterative mean difference of bound of the layer (may be NaN)."""
    score: float
    """``||u||`` of the layer (or its distance from the base mask's ``u``); always finite."""


SelectionRule = Callable[[LayerPoint, LayerPoint], bool]


def _neg_inf_if_nan(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def fs23_rule(candidate: LayerPoint, kept: LayerPoint) -> bool:
    """FS23: ``delta_r_imdb`` and score both at least the kept ones (NaN = ``-inf``)."""
    return _neg_inf_if_nan(candidate.delta_r_imdb) >= _neg_inf_if_nan(kept.delta_r_imdb) and _neg_inf_if_nan(
        candidate.score
    ) >= _neg_inf_if_nan(kept.score)


def max_norm_rule(candidate: LayerPoint, kept: LayerPoint) -> bool:
    """Maximise the score alone: strictly larger replaces, so ties keep the earlier layer."""
    return _neg_inf_if_nan(candidate.score) > _neg_inf_if_nan(kept.score)


SELECTION_RULES: Mapping[str, SelectionRule] = types.MappingProxyType(
    {"fs23": fs23_rule, "max-norm": max_norm_rule}
)
"""Every per-layer selection rule by name."""


def get_rule(name: str) -> SelectionRule:
    """The rule called ``name``, or the standard unknown-name error listing the valid ones."""
    if name not in SELECTION_RULES:
        raise unknown_name("selection rule", name, SELECTION_RULES)
    return SELECTION_RULES[name]


class LayerWinners:
    """The running per-layer winners of a sampling, fed candidates in index order.

    ``offer`` returns the layers a candidate takes over; ``winners`` maps each
    layer to the index of the candidate that holds it (``-1`` = base mask).
    """

    def __init__(self, base: Mapping[str, LayerPoint], rule: str) -> None:
        self._rule = get_rule(rule)
        self.kept: dict[str, LayerPoint] = dict(base)
        """Layer name -> the point that currently holds the layer."""
        self._last = -1

    def offer(self, points: Mapping[str, LayerPoint]) -> list[str]:
        """Compare one candidate's layers with the kept ones; the layers it wins, in layer order."""
        index = next(iter(points.values())).candidate
        if index <= self._last:
            raise ValueError(
                f"candidates must be offered in increasing index order ({index} after {self._last})"
            )
        self._last = index
        taken = [name for name, point in points.items() if self._rule(point, self.kept[name])]
        for name in taken:
            self.kept[name] = points[name]
        return taken

    @property
    def winners(self) -> dict[str, int]:
        """Layer name -> index of the candidate that won it (``-1``: the base mask kept it)."""
        return {name: point.candidate for name, point in self.kept.items()}


def select(base: Mapping[str, LayerPoint], candidates: Iterable[Mapping[str, LayerPoint]], rule: str) -> dict:
    """Winners of every layer after offering ``candidates`` (in index order) against ``base``."""
    selection = LayerWinners(base, rule)
    for points in candidates:
        selection.offer(points)
    return selection.winners
