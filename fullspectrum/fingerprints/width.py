"""Width convergence of graphon estimates: G25's hypothesis made visible (SPEC §7b).

For one method and an MLP family whose hidden width ``n`` grows at a fixed density, every
layer is estimated at the same ``K`` for every width; the distance between two estimates
is the mean absolute difference of their block densities (a cut-norm proxy). If the masks
converge to a graphon, the distance between successive widths, and the distance to the
widest, fall as ``n`` grows.

>>> a, b, c = np.zeros((2, 2)), np.full((2, 2), 0.5), np.full((2, 2), 0.75)
>>> wc = width_convergence({64: {"w": a}, 128: {"w": b}, 256: {"w": c}})
>>> wc.successive["w"], wc.to_widest["w"], wc.falls("w")
((0.5, 0.25), (0.75, 0.25), True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fullspectrum.errors import MaskError


def block_distance(a, b) -> float:
    """Mean absolute difference of two estimates' block densities (same shape: the same ``K``)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise MaskError(
            f"estimates of shapes {a.shape} and {b.shape} cannot be compared; estimate both at the same K"
        )
    return float(np.abs(a - b).mean())


@dataclass(frozen=True)
class WidthConvergence:
    """Per layer, the distances between estimates of successive widths and to the widest."""

    widths: tuple[int, ...]
    """Hidden widths, ascending."""
    layers: tuple[str, ...]
    """Layer names, in the estimates' order."""
    successive: dict[str, tuple[float, ...]]
    """Per layer: ``d(n_i, n_{i+1})`` for ``i = 0 .. len(widths) - 2``."""
    to_widest: dict[str, tuple[float, ...]]
    """Per layer: ``d(n_i, n_max)`` for every width but the widest."""

    def falls(self, layer: str) -> bool:
        """Whether the successive distance at the widest pair is below the one at the narrowest pair."""
        d = self.successive[layer]
        return len(d) >= 2 and d[-1] < d[0]

    def monotone(self, layer: str) -> bool:
        """Whether every successive distance is below the one before it."""
        d = self.successive[layer]
        return len(d) >= 2 and all(later < earlier for earlier, later in zip(d, d[1:]))

    def rows(self) -> list[dict]:
        """One row per layer, kind (``successive`` / ``to_widest``) and width: the tidy form."""
        out = []
        for layer in self.layers:
            for i, n in enumerate(self.widths[:-1]):
                out.append(
                    dict(
                        layer=layer,
                        kind="successive",
                        width=n,
                        other=self.widths[i + 1],
                        distance=self.successive[layer][i],
                    )
                )
                out.append(
                    dict(
                        layer=layer,
                        kind="to_widest",
                        width=n,
                        other=self.widths[-1],
                        distance=self.to_widest[layer][i],
                    )
                )
        return out

    def as_dict(self) -> dict:
        """Plain JSON-able values."""
        return {
            "widths": list(self.widths),
            "layers": {
                name: {
                    "successive": list(self.successive[name]),
                    "to_widest": list(self.to_widest[name]),
                    "falls": self.falls(name),
                    "monotone": self.monotone(name),
                }
                for name in self.layers
            },
        }


def width_convergence(estimates: Mapping[int, Mapping[str, np.ndarray]]) -> WidthConvergence:
    """Distances between the estimates of successive widths and to the widest (SPEC §7b).

    ``estimates`` maps each hidden width to ``{layer: (K_out, K_in) block densities}``; every
    width must have the same layers, each estimated at the same ``K``.
    """
    widths = tuple(sorted(int(n) for n in estimates))
    if len(widths) < 2:
        raise MaskError(f"width convergence needs at least two widths; got {list(widths)}")
    layers = tuple(estimates[widths[0]])
    for n in widths:
        if tuple(estimates[n]) != layers:
            raise MaskError(
                f"width {n} has layers {list(estimates[n])}, width {widths[0]} has {list(layers)}"
            )
    successive, to_widest = {}, {}
    for layer in layers:
        values = [estimates[n][layer] for n in widths]
        successive[layer] = tuple(block_distance(a, b) for a, b in zip(values, values[1:]))
        to_widest[layer] = tuple(block_distance(v, values[-1]) for v in values[:-1])
    return WidthConvergence(widths=widths, layers=layers, successive=successive, to_widest=to_widest)
