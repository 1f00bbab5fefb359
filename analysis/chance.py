"""Did a run learn anything? Chance-level accuracy of the datasets the project trains on.

A classifier that guesses scores ``1 / classes`` on balanced test sets. A run
whose final test accuracy is within :data:`CHANCE_MARGIN` of that (relative) has
learned nothing worth correlating or comparing: live training with too few
epochs, a mask with a dead layer, a diverged learning rate. Cross-run views
leave such runs out by default and say how many; a run page says it plainly.

>>> chance_accuracy("digits"), at_chance(0.1003, "digits"), at_chance(0.92, "digits")
(0.1, True, False)
>>> at_chance(0.011, "cifar100"), at_chance(float("nan"), "digits")
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

CLASSES: Mapping[str, int] = MappingProxyType(
    {"digits": 10, "mnist1d": 10, "cifar10": 10, "cifar100": 100, "synthetic": 10}
)
"""Dataset name -> number of classes (``fullspectrum.data``; ``synthetic`` at its default)."""
DEFAULT_CLASSES = 10
"""Classes assumed for a dataset not in :data:`CLASSES`."""
CHANCE_MARGIN = 0.25
"""A run is *at chance* when its accuracy is at most ``(1 + CHANCE_MARGIN) / classes``."""


def chance_accuracy(data: str | None) -> float:
    """The accuracy of guessing on dataset ``data``: ``1 / classes``."""
    return 1.0 / CLASSES.get(str(data), DEFAULT_CLASSES)


def at_chance(accuracy, data: str | None) -> bool:
    """Whether ``accuracy`` is no better than guessing on ``data`` (False when it is not a number)."""
    try:
        value = float(accuracy)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and value <= (1 + CHANCE_MARGIN) * chance_accuracy(data)


def chance_sentence(accuracy, data: str | None) -> str | None:
    """A one-line warning when ``accuracy`` is at chance on ``data``, else None."""
    if not at_chance(accuracy, data):
        return None
    return (
        f"This run ended at chance: test accuracy {float(accuracy):.3f}, guessing scores "
        f"{chance_accuracy(data):.3f} on {data} — it learned nothing (too few epochs, a dead layer, "
        "or a learning rate that diverged)."
    )
