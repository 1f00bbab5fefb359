"""A tracked loop's scalars as rows of the run's ``evals`` table, written in batches (SPEC §8).

The ``evals`` table holds ``loss``, ``accuracy`` and ITOP's exploration rate per split
(``train``, ``val``, ``test``), so those are the scalars a loop can log: ``loss`` and
``accuracy`` are the training split's, ``val_loss``, ``test_accuracy``... name their
split. Any other name is refused with the list, rather than dropped.

A loop may log every step, and a run's database syncs every commit to disk (milliseconds
on a laptop's SSD, more than an MLP's step), so rows wait in a :class:`RowBuffer` and go
in one transaction per :data:`FLUSH_S` seconds, before each snapshot and at the end.

>>> eval_rows({"loss": 0.5, "val_accuracy": 0.75}, exploration_rate=0.1)
[{'split': 'train', 'loss': 0.5, 'exploration_rate': 0.1}, {'split': 'val', 'accuracy': 0.75, 'exploration_rate': 0.1}]
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping

import torch

from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.runs.database import EVAL_SPLITS

FLUSH_S = 1.0
"""Longest wait of a logged row before it is committed (readers see a live run this fresh)."""
METRICS = ("loss", "accuracy")
"""The per-split columns of the ``evals`` table a loop logs."""
SCALARS: dict[str, tuple[str, str]] = {
    **{metric: ("train", metric) for metric in METRICS},
    **{f"{split}_{metric}": (split, metric) for split in EVAL_SPLITS for metric in METRICS},
}
"""Scalar name -> ``(split, column)``: ``loss`` is the training loss, ``val_accuracy`` the validation accuracy."""


def scalar_value(name: str, value) -> float:
    """``value`` as a float (a number or a one-element tensor), else a one-line error naming it."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if hasattr(value, "item") and getattr(value, "size", 0) == 1:  # a numpy scalar
        return float(value.item())
    raise FullSpectrumError(f"scalar {name}: expected a number, got {type(value).__name__}")


def eval_rows(scalars: Mapping[str, object], *, exploration_rate: float) -> list[dict]:
    """One ``evals`` row per split the scalars name, in the order of ``EVAL_SPLITS``."""
    by_split: dict[str, dict] = {}
    for name, value in scalars.items():
        if name not in SCALARS:
            raise unknown_name("scalar", name, SCALARS)
        split, column = SCALARS[name]
        by_split.setdefault(split, {"split": split})[column] = scalar_value(name, value)
    rows = [by_split[split] for split in EVAL_SPLITS if split in by_split]
    for row in rows:
        row["exploration_rate"] = exploration_rate
    return rows


def finite(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite (what ``run.json`` keeps)."""
    return value if math.isfinite(value) else None


class RowBuffer:
    """Rows of ``evals`` and ``events`` per step, committed to a run store in one transaction.

    With ``writes`` (a :class:`~fullspectrum.tracking.background.BackgroundWrites`) the commits run
    on its thread, in order with the snapshots handed to it: :meth:`hand_off` returns at once,
    :meth:`flush` waits until the rows are in the database."""

    def __init__(self, store, flush_s: float = FLUSH_S, writes=None) -> None:
        self.store = store
        self.flush_s = flush_s
        self.writes = writes
        self._steps: dict[int, dict[str, list[dict]]] = {}
        self._last = time.monotonic()

    def add(self, step: int, table: str, rows: list[dict]) -> None:
        if rows:
            self._steps.setdefault(step, {}).setdefault(table, []).extend(rows)

    def flush_if_due(self) -> None:
        if self._steps and time.monotonic() - self._last >= self.flush_s:
            self.hand_off()

    def hand_off(self) -> None:
        """Queue every waiting row for one transaction (committed now without ``writes``)."""
        self._last = time.monotonic()
        if self._steps:
            steps, self._steps = self._steps, {}
            batch = sorted(steps.items())
            if self.writes is None:
                self.store.add_steps(batch)
            else:
                self.writes.put(lambda: self.store.add_steps(batch))

    def flush(self) -> None:
        """Commit every waiting row (one transaction) and return once it is in the database."""
        self.hand_off()
        if self.writes is not None:
            self.writes.wait()
