"""Which of two masks should train better, by which predictors, and what the runs measured.

A *predictor* is a small function of a :class:`MaskPair` that returns a
:class:`Prediction` (which mask it favours, both values, why) or None when it
has nothing to say; :data:`PREDICTORS` registers them by name, so further
predictors (MGE24 topometrics, effective paths, an NTK summary) are one entry
each. :func:`mask_verdict` runs them all, takes their majority as the
prediction, sets it beside the measured accuracies (:mod:`analysis.evidence`)
and says plainly when the measurement disagrees.

The predictors here:

* ``full-spectrum score``: the PAGS score (FS23, SPEC §5) of each layer,
  ‖u‖ with ``u = (Δr, λ, Δr_imdb, λ_imsg)`` and NaN set to 0, averaged over
  the layers; higher is what PAGS selects.
* ``Δr_imdb``: the mean over layers of FS23's selection metric (NaN layers
  left out; a mask with no qualifying class anywhere counts as −∞); higher is better.
* ``dead paths``: the share of kept weights that dead units make useless
  across consecutive layers (:mod:`analysis.dead_paths`); lower is better.

>>> import torch
>>> full = {"fc1.weight": torch.ones(4, 4, dtype=torch.bool), "fc2.weight": torch.ones(2, 4, dtype=torch.bool)}
>>> hollow = {"fc1.weight": torch.tensor([[1, 1, 1, 1]] * 3 + [[0, 0, 0, 0]], dtype=torch.bool),
...           "fc2.weight": torch.ones(2, 4, dtype=torch.bool)}
>>> dead_path_prediction(MaskPair.of(full, hollow)).favours
'A'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from analysis.compare import MaskComparison, compare_masks
from analysis.dead_paths import DeadLink, dead_links, wasted_weight_count
from analysis.evidence import Measured, measured_winner
from fullspectrum.spectrum import VECTOR_AXES
from fullspectrum.spectrum.graph import check_mask


@dataclass(frozen=True)
class MaskPair:
    """What a predictor reads: both masks, their weights, their comparison and their cross-layer links."""

    masks_a: Mapping
    masks_b: Mapping
    comparison: MaskComparison
    links_a: tuple[DeadLink, ...]
    links_b: tuple[DeadLink, ...]
    weights_a: Mapping = field(default_factory=dict)
    weights_b: Mapping = field(default_factory=dict)

    @classmethod
    def of(cls, masks_a, masks_b, *, weights_a=None, weights_b=None, comparison=None) -> MaskPair:
        """Build the pair, comparing the masks unless ``comparison`` is given."""
        comparison = comparison or compare_masks(masks_a, masks_b, weights_a=weights_a, weights_b=weights_b)
        return cls(masks_a, masks_b, comparison, tuple(dead_links(masks_a)), tuple(dead_links(masks_b)),
                   dict(weights_a or {}), dict(weights_b or {}))  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """One predictor's answer."""

    predictor: str
    """Its name in :data:`PREDICTORS`."""
    favours: str | None
    """``"A"``, ``"B"``, or None when the values tie or are undefined."""
    value_a: float
    value_b: float
    better: str
    """``"higher"`` or ``"lower"``: which direction this predictor calls better."""
    reason: str
    """One sentence with the numbers."""


Predictor = Callable[[MaskPair], Prediction | None]


def _favour(a: float, b: float, better: str, *, tolerance: float = 1e-9) -> str | None:
    if not (math.isfinite(a) and math.isfinite(b)) or abs(a - b) <= tolerance * max(1.0, abs(a), abs(b)):
        return None
    return ("A" if a > b else "B") if better == "higher" else ("A" if a < b else "B")


def _reason(name: str, a: float, b: float, better: str, favours: str | None, digits: str = ".3g") -> str:
    values = f"A {a:{digits}} vs B {b:{digits}}"
    if favours is None:
        return f"{name}: {values}, no difference to go by"
    return f"{name}: {values} ({better} is better) — favours {favours}"


def score_prediction(pair: MaskPair) -> Prediction | None:
    """The mean over layers of the PAGS score ‖u‖ (NaN entries of ``u`` as 0, SPEC §4–5)."""
    table = pair.comparison.table
    scores = []
    for side in ("a", "b"):
        u = np.nan_to_num(table[[f"{axis}_{side}" for axis in VECTOR_AXES]].to_numpy(dtype=float), nan=0.0)
        scores.append(float(np.linalg.norm(u, axis=1).mean()))
    favours = _favour(*scores, "higher")
    return Prediction("full-spectrum score", favours, *scores, "higher",
                      _reason("mean PAGS score ‖u‖ over layers", *scores, "higher", favours))  # fmt: skip


def imdb_prediction(pair: MaskPair) -> Prediction | None:
    """The mean over layers of Δr_imdb (FS23's selection metric); None when undefined in both."""
    table = pair.comparison.table
    a, b = (float(np.nanmean(table[f"delta_r_imdb_{s}"].astype(float))) if table[f"delta_r_imdb_{s}"].notna().any()
            else math.nan for s in ("a", "b"))  # fmt: skip
    if not (math.isfinite(a) or math.isfinite(b)):
        return None
    if math.isnan(a) or math.isnan(b):  # no qualifying class anywhere counts as −∞ (FS23's rule)
        favours = "A" if math.isnan(b) else "B"
        reason = f"mean Δr_imdb over layers: {'B' if favours == 'A' else 'A'} has no qualifying degree class — favours {favours}"
        return Prediction("Δr_imdb", favours, a, b, "higher", reason)
    favours = _favour(a, b, "higher")
    return Prediction(
        "Δr_imdb", favours, a, b, "higher", _reason("mean Δr_imdb over layers", a, b, "higher", favours)
    )


def _wasted_share(masks: Mapping) -> float:
    kept = sum(int(check_mask(mask, name=str(name)).sum()) for name, mask in masks.items())
    return wasted_weight_count(masks) / kept if kept else math.nan


def dead_path_prediction(pair: MaskPair) -> Prediction | None:
    """The share of kept weights on dead paths between consecutive layers; None without such pairs."""
    if not pair.links_a and not pair.links_b:
        return None
    a, b = _wasted_share(pair.masks_a), _wasted_share(pair.masks_b)
    favours = _favour(a, b, "lower")
    return Prediction("dead paths", favours, a, b, "lower",
                      _reason("share of kept weights on dead paths", a, b, "lower", favours, ".1%"))  # fmt: skip


PREDICTORS: Mapping[str, Predictor] = MappingProxyType(
    {"full-spectrum score": score_prediction, "Δr_imdb": imdb_prediction, "dead paths": dead_path_prediction}
)
"""Predictor name -> function; :func:`mask_verdict` asks each in this order."""


@dataclass(frozen=True)
class Verdict:
    """The answer to "why does A beat B?": predictions, measurements, and whether they agree."""

    predictions: tuple[Prediction, ...]
    predicted: str | None
    """``"A"`` or ``"B"`` by the predictors' majority; None when they tie or say nothing."""
    measured_a: Measured | None
    measured_b: Measured | None
    measured: str | None
    """``"A"``, ``"B"``, ``"tie"`` (intervals overlap) or None (no measurement for both)."""
    agrees: bool | None
    """Whether the measurement agrees with the prediction; None when either is missing or a tie."""
    sentences: tuple[str, ...]
    """The verdict in plain words, headline first."""

    def table(self) -> pd.DataFrame:
        """One row per prediction, then the measured accuracies: ``predictor``, ``A``, ``B``, ``better``,
        ``favours`` (``-`` for no difference)."""
        rows = [{"predictor": p.predictor, "A": p.value_a, "B": p.value_b, "better": p.better,
                 "favours": p.favours or "-"} for p in self.predictions]  # fmt: skip
        if self.measured_a is not None or self.measured_b is not None:
            rows.append({
                "predictor": "measured test accuracy (mean over seeds)",
                "A": self.measured_a.mean if self.measured_a else math.nan,
                "B": self.measured_b.mean if self.measured_b else math.nan,
                "better": "higher",
                "favours": self.measured if self.measured not in (None, "tie") else "-",
            })  # fmt: skip
        return pd.DataFrame(rows, columns=["predictor", "A", "B", "better", "favours"])


def _majority(predictions: list[Prediction]) -> str | None:
    votes = [p.favours for p in predictions if p.favours]
    a, b = votes.count("A"), votes.count("B")
    return None if a == b else ("A" if a > b else "B")


def mask_verdict(
    pair: MaskPair,
    measured_a: Measured | None = None,
    measured_b: Measured | None = None,
    *,
    predictors: Mapping[str, Predictor] = PREDICTORS,
) -> Verdict:
    """Run every predictor on ``pair``, set the prediction beside the measured accuracies."""
    predictions = [p for p in (predictor(pair) for predictor in predictors.values()) if p is not None]
    predicted = _majority(predictions)
    measured = measured_winner(measured_a, measured_b)
    agrees = None if predicted is None or measured in (None, "tie") else predicted == measured
    sentences = []
    if (pair.comparison.table["iou"] == 1.0).all():
        sentences.append("A and B are the same mask: there is nothing to predict between them.")
    elif predicted is None:
        sentences.append("Predicted: no clear winner — the predictors disagree or see no difference.")
    else:
        names = ", ".join(p.predictor for p in predictions if p.favours == predicted)
        sentences.append(f"Predicted: {predicted} should train better (by {names}).")
    for side, result in (("A", measured_a), ("B", measured_b)):
        if result is not None:
            sentences.append(f"Measured {side}: {result.sentence()}.")
    if measured is None:
        missing = [s for s, r in (("A", measured_a), ("B", measured_b)) if r is None]
        sentences.append(
            f"No run trained mask {' or '.join(missing)} yet, so the prediction is untested "
            "(train both from the PAGS lab, or `fullspectrum train --method static --mask FILE`)."
        )
    elif measured == "tie":
        sentences.append("Measured: no difference beyond seed noise (the intervals overlap).")
    elif agrees is False:
        gap = abs(measured_a.mean - measured_b.mean) * 100
        flat = all(r.n > 1 and r.ci[0] == r.ci[1] for r in (measured_a, measured_b))
        caveat = "; every seed gave the same accuracy, so seed noise cannot be judged" if flat else ""
        sentences.append(
            f"The measured result disagrees with the prediction: {measured} trained better, "
            f"{measured_a.mean:.4f} (A) vs {measured_b.mean:.4f} (B), {gap:.1f} points{caveat}."
        )
    elif agrees:
        sentences.append(f"The measured result agrees: {measured} trained better.")
    else:
        sentences.append(f"Measured: {measured} trained better.")
    return Verdict(tuple(predictions), predicted, measured_a, measured_b, measured, agrees, tuple(sentences))
