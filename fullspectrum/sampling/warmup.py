"""PEGS's dense warm-up: a few iterations of ordinary SGD before sampling (SPEC §5; FS23).

FS23's PEGS trains the dense network for 100 or 500 iterations, then runs PAGS
at the warmed-up weights, and the sparse network trains on from those weights
(as in lottery-ticket rewinding, Frankle et al. 2020). The optimiser is the one
the project trains with (SPEC §6, ITOP21): SGD with Nesterov momentum 0.9 and
weight decay 5e-4, the dataset's preset learning rate, training augmentation
on. The minibatch order, augmentation and any dropout depend only on the seed,
so a CPU warm-up is bit-reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fullspectrum.data import make_loader
from fullspectrum.errors import FullSpectrumError
from fullspectrum.seeds import WARMUP_STREAM, derived_seed

MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4
"""SGD settings of ITOP21 / SPEC §6."""


def warm_up(
    model: nn.Module,
    splits,
    iterations: int,
    *,
    batch_size: int,
    lr: float,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> float:
    """Train ``model`` (dense, in place) for ``iterations`` SGD steps; returns the last minibatch loss.

    The model is left in the train/eval mode it came in; ``iterations == 0``
    does nothing and returns NaN. A loss or weight that stops being finite is a
    :class:`~fullspectrum.errors.FullSpectrumError` naming the iteration (the
    learning rate is too large).
    """
    if iterations <= 0:
        return float("nan")
    device = next(model.parameters()).device
    stream = derived_seed(seed, WARMUP_STREAM)
    loader = make_loader(splits.train, batch_size, shuffle=True, seed=stream, augment=splits.augment)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    was_training, step, loss = model.training, 0, torch.tensor(float("nan"))
    model.train()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(stream)  # dropout, if the model has any
            while step < iterations:
                for x, y in loader:
                    loss = F.cross_entropy(model(x.to(device)), y.to(device))
                    if not torch.isfinite(loss):
                        raise _diverged(step + 1, iterations, float(loss.detach()), lr)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step += 1
                    if progress is not None:
                        progress(step, iterations)
                    if step >= iterations:
                        break
    finally:
        model.train(was_training)
        optimizer.zero_grad(set_to_none=True)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):  # the last step's update
        raise _diverged(iterations, iterations, float("nan"), lr, what="weights")
    return float(loss.detach())


def _diverged(step: int, iterations: int, loss: float, lr: float, what: str = "loss") -> FullSpectrumError:
    value = "NaN or Inf" if what == "weights" else f"{loss}"
    return FullSpectrumError(
        f"PEGS warm-up diverged at iteration {step} of {iterations} ({what} {value}); "
        f"lower the warm-up learning rate (warmup_lr {lr:g})"
    )
