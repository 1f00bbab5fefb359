"""Per-layer densities of the Erdős–Rényi initialisations (SPEC §6).

ER (SET / RigL, Evci et al. 2020) gives a layer with ``n_in`` inputs and
``n_out`` outputs the score ``r_l = (n_in + n_out) / (n_in * n_out)``, kernel
ignored; ERK (RigL, used by ITOP21 and FS23) includes the kernel dims:
``r_l = sum(shape) / prod(shape)``. The density of layer ``l`` is ``ε·r_l``,
with ε chosen so that the kept weights total ``d·N``. A layer with ``ε·r_l > 1``
cannot be denser than 1: it is made dense and ε recomputed over the rest,
until no layer exceeds 1. Small first convolutions often end dense.

The trainer's ``--init er|erk`` and the ``er`` / ``erk`` mask generators share
this function.

>>> d = erk_densities({"conv": (4, 1, 3, 3), "fc": (10, 400)}, 0.5)
>>> d["conv"], round(d["fc"], 4)  # the conv's ε·r_l is 1.46, so it is made dense
(1.0, 0.4955)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fullspectrum.errors import unknown_name
from fullspectrum.pruning.budget import check_density

ERK_KINDS = ("er", "erk")
"""The two layer-score rules: ``er`` ignores kernel dims, ``erk`` includes them."""


def layer_score(shape: Sequence[int], kind: str = "erk") -> float:
    """The layer score ``r_l`` of SPEC §6 for a weight of ``shape = (out, in, *kernel)``."""
    if kind == "erk":
        return sum(shape) / math.prod(shape)
    if kind == "er":
        n_out, n_in = shape[0], shape[1]
        return (n_in + n_out) / (n_in * n_out)
    raise unknown_name("ER kind", kind, ERK_KINDS)


def erk_densities(shapes: Mapping[str, Sequence[int]], density: float, kind: str = "erk") -> dict[str, float]:
    """Density of every layer under ER / ERK for a global density (SPEC §6).

    ``shapes`` maps layer (or parameter) names to weight shapes, in layer
    order; the result has the same keys. ``sum(density_l * numel_l)`` equals
    ``density * N`` up to rounding; dense layers get exactly 1.0.
    """
    density = check_density(density)
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    scores = {name: layer_score(tuple(shape), kind) for name, shape in shapes.items()}
    total = sum(sizes.values())
    dense: set[str] = set()
    epsilon = 0.0
    while True:
        sparse = [name for name in shapes if name not in dense]
        budget = density * total - sum(sizes[name] for name in dense)
        divisor = sum(scores[name] * sizes[name] for name in sparse)
        if not sparse or divisor <= 0:
            break
        epsilon = budget / divisor
        too_dense = {name for name in sparse if epsilon * scores[name] > 1.0}
        if not too_dense:
            break
        dense |= too_dense  # epsilon only grows as layers turn dense, so this reaches a fixed point
    return {name: 1.0 if name in dense else epsilon * scores[name] for name in shapes}
