"""Evaluation, precision and divergence helpers of the trainer.

Evaluations give the loss and accuracy of a split in eval mode, without
touching any random state, so recording them never changes a run. Mixed
precision (bfloat16 autocast) is used on CUDA only; CPU runs stay float32 and
bit-reproducible from their seed. A run whose loss or weights stop being
finite (a learning rate too high for the network, typically) has *diverged*:
:class:`DivergenceWatch` notes the first such step on the device, without a
synchronisation per iteration, and the trainer checks it before each record,
so no NaN ever reaches a snapshot.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fullspectrum.errors import FullSpectrumError


def autocast(device: torch.device):
    """Mixed precision (bfloat16) on CUDA; plain float32 elsewhere, so CPU runs stay bit-reproducible."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader`` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    try:
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            with autocast(device):
                logits = model(inputs)
            total_loss += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
            correct += int((logits.argmax(dim=1) == targets).sum())
            count += int(targets.numel())
    finally:
        model.train(was_training)
    if count == 0:
        return float("nan"), float("nan")
    return total_loss / count, correct / count


def finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


class TrainingDiverged(FullSpectrumError):
    """The training loss or weights stopped being finite; the run is left ``failed`` with the reason."""


class DivergenceWatch:
    """The first iteration whose training loss was not finite, kept on the device until :meth:`check`."""

    def __init__(self, device: torch.device) -> None:
        self._first = torch.full((), -1, dtype=torch.long, device=device)
        self._loss = torch.zeros((), dtype=torch.float32, device=device)

    def observe(self, step: int, loss: torch.Tensor) -> None:
        """Note ``loss``, the loss of iteration ``step``, if it is the first non-finite one."""
        first = ~torch.isfinite(loss.detach()) & (self._first < 0)
        self._first = torch.where(first, step, self._first)
        self._loss = torch.where(first, loss.detach().float(), self._loss)

    def check(
        self, step: int, weights: dict[str, torch.Tensor], *, where: str, lr: float, lr_now: float
    ) -> None:
        """Raise :class:`TrainingDiverged` if a loss so far, or a weight now (at ``step``), is not finite.

        ``lr`` is the run's initial learning rate, ``lr_now`` the scheduled one of this step.
        """
        hint = f"try a smaller learning rate (--lr {lr:g}, {lr_now:g} at this step)"
        first = int(self._first)
        if first >= 0:
            raise TrainingDiverged(
                f"{where}: training diverged at step {first}: the loss is {float(self._loss)}; {hint}"
            )
        for name, weight in weights.items():
            if not bool(torch.isfinite(weight).all()):
                raise TrainingDiverged(
                    f"{where}: training diverged by step {step}: weight {name} holds NaN or Inf; {hint}"
                )
