"""How many weights a density keeps (SPEC §6b), and the check of a density.

A density is the fraction of maskable weights kept (which weights are maskable is
:func:`fullspectrum.layers.maskable_parameters`'s rule, SPEC §1, §6). Every generator keeps
exactly ``round(density · N)`` of the ``N`` maskable weights.

>>> target_count(0.1, 55)
6
>>> check_density("0.5")
0.5
"""

from __future__ import annotations

from fullspectrum.errors import MaskError


def target_count(density: float, total: int) -> int:
    """Kept weights for a density: ``round(density * total)`` (SPEC §6b)."""
    return int(round(density * total))


def check_density(density: float) -> float:
    """``density`` as a float in ``(0, 1]``, or a one-line ``MaskError``."""
    try:
        value = float(density)
    except (TypeError, ValueError):
        raise MaskError(f"density must be a number in (0, 1], got {density!r}") from None
    if not 0.0 < value <= 1.0:
        raise MaskError(f"density must be in (0, 1] (the fraction of weights kept), got {density!r}")
    return value
