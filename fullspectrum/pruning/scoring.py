"""What every scoring method shares: the data budget, the scoring mode, and a
functional forward pass that never touches the model.

Scores are computed with ``torch.func.functional_call`` on detached copies of
the parameters and buffers, so the model's weights, ``.grad`` fields and
BatchNorm running statistics are never written, and scoring leaves nothing to
restore but the train/eval flags (restored module by module) and the global
RNG (forked around the call).

Data-driven methods use a budget of examples, ``10 × n_classes`` by default
(SynFlow's convention, SPEC §6b), ``n_classes`` read from the model's output
size. The batches are taken once and reused by every round of an iterative
method, so a shuffling ``DataLoader`` cannot change the data between rounds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fullspectrum.errors import MaskError
from fullspectrum.layers import MaskableParameter

Progress = Callable[[int, int], None]
Batch = tuple[Tensor, Tensor]
EXAMPLES_PER_CLASS = 10
"""Default data budget per class (SynFlow's convention, SPEC §6b)."""


@dataclass(frozen=True)
class ScoringContext:
    """Everything a scoring function may read, fixed before scoring starts."""

    model: nn.Module
    """The model; read only."""
    layers: Sequence[MaskableParameter]
    """Its maskable weights in layer order."""
    batches: Sequence[Batch]
    """The examples of the budget (empty for data-free methods), already on the model's device."""
    seed: int
    """Seed of every random draw."""
    density: float | None
    """Target density (needed by iterative methods only)."""
    options: Mapping[str, object] = field(default_factory=dict)
    """The generator's options with defaults filled in."""
    input_shape: tuple[int, ...] | None = None
    """Shape of one example (from the data, or the ``input_shape`` option)."""
    progress: Progress | None = None
    """Optional ``(done, total)`` callback."""
    rounds_kept: list[int] = field(default_factory=list)
    """Filled by iterative methods: weights kept after each round."""

    @property
    def device(self) -> torch.device:
        return self.layers[0].param.device

    def report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


@contextlib.contextmanager
def scoring_mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Put ``model`` in train or eval mode and restore every module's own flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for module, was_training in flags:
            module.training = was_training


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (dropout in train mode, loaders without a generator) and restore it."""
    devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def output_size(model: nn.Module, x: Tensor) -> int:
    """Number of outputs (classes) of ``model`` on one example of ``x``, in eval mode, without grads."""
    with scoring_mode(model, train=False), torch.no_grad():
        out = model(x[:1])
    return int(out.shape[-1])


def take_examples(
    model: nn.Module, data: Iterable[Batch], n_examples: int | str | None, device: torch.device
) -> tuple[list[Batch], tuple[int, ...]]:
    """The first ``n_examples`` examples of ``data`` (default ``10 × n_classes``) as batches on ``device``.

    ``n_examples="all"`` takes every batch ``data`` yields (PAGS scores each
    candidate on exactly the minibatches it is given). Returns the batches (the
    last one cut to fit the budget) and the shape of one example. Fewer
    examples are returned if ``data`` runs out.
    """
    if n_examples is not None and n_examples != "all":
        if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples <= 0:
            raise MaskError(f"n_examples must be a positive int or 'all', got {n_examples!r}")
    batches: list[Batch] = []
    taken, budget, input_shape = 0, math.inf if n_examples == "all" else n_examples, None
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise MaskError("data must yield (inputs, targets) minibatches")
        x, y = batch[0].to(device), batch[1].to(device)
        if input_shape is None:
            input_shape = tuple(x.shape[1:])
            if budget is None:
                budget = EXAMPLES_PER_CLASS * output_size(model, x)
        keep = int(min(len(x), budget - taken))
        batches.append((x[:keep], y[:keep]))
        taken += keep
        if taken >= budget:
            break
    if not batches:
        raise MaskError("data yielded no minibatches; this generator needs examples")
    return batches, input_shape


def parameter_inputs(model: nn.Module, dtype: torch.dtype | None = None, transform=None) -> dict[str, Tensor]:
    """Detached copies of every parameter and buffer, for ``functional_call``.

    Floating tensors are cast to ``dtype`` (if given) and passed through
    ``transform`` (e.g. ``torch.abs``); buffers are cloned so that a train-mode
    forward updates the copies, never the model's running statistics.
    """
    inputs = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        copy = tensor.detach()
        if copy.is_floating_point():
            copy = copy.to(dtype) if dtype is not None else copy
            copy = transform(copy) if transform is not None else copy
        inputs[name] = copy.clone()
    return inputs


def forward(
    model: nn.Module, inputs: Mapping[str, Tensor], weights: Mapping[str, Tensor], x: Tensor
) -> Tensor:
    """``model(x)`` with every tensor taken from ``inputs``, maskable weights from ``weights``."""
    return functional_call(model, {**inputs, **weights}, (x,), strict=False)


def batch_loss(
    model: nn.Module,
    inputs: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    batch: Batch,
    temperature: float = 1.0,
) -> Tensor:
    """Mean cross-entropy of one batch with logits divided by ``temperature``."""
    x, y = batch
    return F.cross_entropy(forward(model, inputs, weights, x) / temperature, y)


def gradients(output: Tensor, weights: Mapping[str, Tensor], create_graph: bool = False) -> dict[str, Tensor]:
    """``∂output/∂w`` for every weight; weights the output does not depend on get zeros."""
    names = list(weights)
    grads = torch.autograd.grad(
        output, [weights[name] for name in names], create_graph=create_graph, allow_unused=True
    )
    return {
        name: torch.zeros_like(weights[name]) if grad is None else grad for name, grad in zip(names, grads)
    }


def loss_gradient(
    ctx: ScoringContext, inputs: Mapping[str, Tensor], weights: Mapping[str, Tensor], temperature: float = 1.0
) -> dict[str, Tensor]:
    """Gradient of the mean loss over all examples of the budget (batches weighted by size)."""
    total = sum(len(x) for x, _ in ctx.batches)
    grad = {name: torch.zeros_like(w) for name, w in weights.items()}
    for x, y in ctx.batches:
        batch_grad = gradients(batch_loss(ctx.model, inputs, weights, (x, y), temperature), weights)
        for name in grad:
            grad[name] += batch_grad[name] * (len(x) / total)
    return grad
