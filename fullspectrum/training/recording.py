"""Evaluation and precision helpers of the trainer.

Evaluations give the loss and accuracy of a split in eval mode, without
touching any random state, so recording them never changes a run. Mixed
precision (bfloat16 autocast) is used on CUDA only; CPU runs stay float32 and
bit-reproducible from their seed.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


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
