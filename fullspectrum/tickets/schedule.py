"""IMP's pruning schedule in whole weights (Frankle & Carbin, ICLR 2019; open_lth's ``sparse_global``).

Each level prunes 20% of the weights still kept, rounded up as open_lth does
(``ceil(0.2 · c)``), so the counts are integers and never stall: ``c_0 = N``,
``c_r = c_{r-1} - ceil(0.2 · c_{r-1})``. Where that would reach the target
``round(d · N)`` or fall below it, the level prunes to exactly the target and is
the last (SPEC §9). At ``d = 0.01`` that is 21 pruning levels after the dense
level 0, since ``0.8^20 ≈ 0.0115 > 0.01 > 0.8^21 ≈ 0.0092``. The product is
taken in exact rationals: in floating point ``0.2 · 15`` is
``3.0000000000000004`` and its ceiling 4, not 3.

>>> imp_levels(100, 0.5)
(100, 80, 64, 51, 50)
>>> imp_levels(15, 0.5)
(15, 12, 9, 8)
>>> len(imp_levels(1_000_000, 0.01)) - 1, imp_levels(1_000_000, 0.01)[-1]
(21, 10000)
"""

from __future__ import annotations

import math
from fractions import Fraction

from fullspectrum.errors import FullSpectrumError

PRUNE_FRACTION = 0.2
"""Share of the remaining prunable weights each level removes (open_lth's ``pruning_fraction``)."""


def target_count(n: int, density: float) -> int:
    """``round(density · n)``: the prunable weights the last level keeps (at least 1, fewer than ``n``)."""
    if not 0.0 < density < 1.0:
        raise FullSpectrumError(f"density must be in (0, 1) for pruning, got {density}")
    if n < 2:
        raise FullSpectrumError(f"cannot prune a network of {n} prunable weights")
    target = round(density * n)
    if target < 1:
        raise FullSpectrumError(
            f"density {density:g} keeps round({density:g} · {n}) = 0 of the {n} prunable weights; "
            f"give at least {1 / n:.2g}"
        )
    if target >= n:
        raise FullSpectrumError(
            f"density {density:g} keeps all {n} prunable weights (round({density:g} · {n}) = {target}); "
            "give a smaller density"
        )
    return target


def imp_levels(n: int, density: float, fraction: float = PRUNE_FRACTION) -> tuple[int, ...]:
    """Kept prunable weights at each level ``(c_0 = n, c_1, ..., c_L = round(density · n))``.

    ``len(result) - 1`` is the number of pruning levels (each one a full training after the dense one).
    """
    if not 0.0 < fraction < 1.0:
        raise FullSpectrumError(f"prune fraction must be in (0, 1), got {fraction}")
    target = target_count(n, density)
    exact = Fraction(repr(float(fraction)))  # 0.2 as 1/5, the fraction as written
    counts = [int(n)]
    while counts[-1] > target:
        following = counts[-1] - math.ceil(exact * counts[-1])
        counts.append(max(following, target))
    return tuple(counts)
