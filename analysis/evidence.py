"""Measured accuracy of a mask: the runs that trained this very mask, or that made it.

Predictions (:mod:`analysis.verdict`) are only as good as the accuracies that
test them. A mask's evidence is, first, every finished training run whose
step-0 masks *are* this mask (equal bits in every layer, by :func:`mask_digest`):
static runs from a mask file, the PAGS lab's "Train both", reproduction runs.
Failing that, a run snapshot of a dynamic sparse run (ITOP, RigL) is the mask
the run arrived at: its evidence is that run's final accuracy and its sibling
seeds of the same configuration (data, model, method, requested density),
named as such — those are different masks from the same recipe.

The interval over seeds is Student's t at 95%; with one seed there is none.

>>> import torch
>>> a = {"fc.weight": torch.eye(3, dtype=torch.bool)}
>>> mask_digest(a) == mask_digest({"fc": torch.eye(3, dtype=torch.bool)})  # names as module paths
True
>>> summary = Measured("trained this very mask", (TrainedRun("r0", "static", 0, 0.9),
...                    TrainedRun("r1", "static", 1, 0.92)))
>>> round(summary.mean, 3), summary.n, [round(v, 3) for v in summary.ci]
(0.91, 2, [0.783, 1.0])
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.correlation import requested_density
from fullspectrum.layers.names import layer_name
from fullspectrum.spectrum.graph import check_mask

CONFIDENCE = 0.95
"""Coverage of the t-interval over seeds."""
EXACT = "trained this very mask"
MADE = "ran this mask's recipe (the run that made it and its other seeds, whose masks differ)"


def mask_digest(masks: Mapping) -> str:
    """A content digest of a set of masks: layer names (module paths), shapes and bits, in name order."""
    digest = hashlib.sha256()
    for name, mask in sorted((layer_name(str(n)), m) for n, m in masks.items()):
        bits = check_mask(mask, name=name)
        digest.update(f"{name}:{bits.shape};".encode())
        digest.update(np.packbits(bits.ravel()).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainedRun:
    """One finished training run that is evidence for a mask."""

    label: str
    """The run folder's name."""
    method: str
    """Its training method (``static``, ``itop``, ``rigl``...)."""
    seed: int | None
    """Its seed."""
    accuracy: float
    """Its final test accuracy."""


@dataclass(frozen=True)
class Measured:
    """The measured accuracy of one mask over the runs that are its evidence."""

    how: str
    """How the runs relate to the mask: :data:`EXACT` or :data:`MADE`."""
    runs: tuple[TrainedRun, ...]
    """The runs, in seed order."""

    @property
    def n(self) -> int:
        """How many runs (seeds)."""
        return len(self.runs)

    @property
    def mean(self) -> float:
        """Mean final test accuracy over the runs."""
        return float(np.mean([run.accuracy for run in self.runs]))

    @property
    def ci(self) -> tuple[float, float]:
        """Student-t interval of the mean (:data:`CONFIDENCE`), clipped to [0, 1]; NaN with one run."""
        values = np.array([run.accuracy for run in self.runs])
        if values.size < 2:
            return math.nan, math.nan
        half = (
            stats.t.ppf((1 + CONFIDENCE) / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
        )
        return max(0.0, float(values.mean() - half)), min(1.0, float(values.mean() + half))

    def sentence(self) -> str:
        """'0.9100 (seeds 0, 1: 0.9000, 0.9200; 95% CI 0.7829–1.0000), 2 runs that trained this very mask'."""
        seeds = ", ".join(str(run.seed) for run in self.runs)
        values = ", ".join(f"{run.accuracy:.4f}" for run in self.runs)
        low, high = self.ci
        if not math.isfinite(low):
            interval = "; one seed, no interval"
        elif low == high:
            interval = "; the seeds agree exactly, so the interval holds no seed noise (nor the test set's)"
        else:
            interval = f"; 95% CI {low:.4f}–{high:.4f}"
        runs = "1 run that" if self.n == 1 else f"{self.n} runs that"
        return f"{self.mean:.4f} (seed{'s' if self.n != 1 else ''} {seeds}: {values}{interval}), {runs} {self.how}"


def evidence_table(runs: pd.DataFrame, digests: Mapping[str, str | None]) -> pd.DataFrame:
    """The finished training runs of a run table (``kind``, ``path``, ``method``, ``seed``, ``data``,
    ``model``, ``density``, ``final_accuracy``) with the digest of their step-0 masks (``digests``: path
    -> digest, None without masks) and their requested density."""
    if runs.empty:
        return runs.assign(digest=None)
    finished = runs[(runs["kind"] == "train") & runs["final_accuracy"].notna()].copy()
    finished["digest"] = finished["path"].map(lambda path: digests.get(str(path)))
    finished["requested"] = finished["density"].map(requested_density)
    return finished.reset_index(drop=True)


def _trained(rows: pd.DataFrame) -> tuple[TrainedRun, ...]:
    rows = rows.sort_values(["seed", "path"], kind="stable")
    return tuple(
        TrainedRun(str(row["path"]).rstrip("/").rsplit("/", 1)[-1], str(row["method"]),
                   None if pd.isna(row["seed"]) else int(row["seed"]), float(row["final_accuracy"]))
        for _, row in rows.iterrows()
    )  # fmt: skip


def measured_accuracy(source: tuple, digest: str, table: pd.DataFrame) -> Measured | None:
    """The evidence for the mask of ``source`` (a mask source tuple, ``analysis.mask_sources``) whose
    masks have ``digest``, among the runs of :func:`evidence_table`; None when there is none."""
    if table.empty:
        return None
    exact = table[table["digest"] == digest]
    if len(exact):
        return Measured(EXACT, _trained(exact))
    if source[0] != "run":
        return None
    own = table[table["path"].astype(str) == str(source[1])]
    if own.empty:
        return None
    row = own.iloc[0]
    same = (
        (table["data"] == row["data"]) & (table["model"] == row["model"]) & (table["method"] == row["method"])
        & (table["requested"] == row["requested"])
    )  # fmt: skip
    return Measured(MADE, _trained(table[same]))


def measured_winner(a: Measured | None, b: Measured | None) -> str | None:
    """``"A"`` or ``"B"`` when their intervals do not overlap (with one seed: when the means differ and
    the other has no interval either), ``"tie"`` when they overlap or are equal, None without both."""
    if a is None or b is None:
        return None
    if a.mean == b.mean:
        return "tie"
    (a_low, a_high), (b_low, b_high) = a.ci, b.ci
    if not all(math.isfinite(v) for v in (a_low, a_high, b_low, b_high)):
        return "A" if a.mean > b.mean else "B"  # one seed: the measurement, with no word on noise
    if a_low > b_high:
        return "A"
    if b_low > a_high:
        return "B"
    return "tie"
