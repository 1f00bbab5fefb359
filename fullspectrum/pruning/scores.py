"""The scoring rules of the pruning-at-initialisation generators (SPEC §6b).

Each function maps a ``ScoringContext`` to one score tensor per maskable weight
(higher = keep); thresholding into masks happens elsewhere, so PAGS (SPEC §5)
can re-threshold a candidate's scores per layer to its base budget.

* ``random`` / ``er`` / ``erk``: i.i.d. uniform numbers, so a top-``k`` is a
  uniformly random subset of the right size.
* ``magnitude``: ``|θ|``.
* ``snip`` (Lee et al., ICLR 2019): ``|θ ⊙ ∂L/∂θ|``.
* ``iter_snip`` (FORCE, de Jorge et al., ICLR 2021): SNIP recomputed over ``T``
  rounds at the current mask, ``|θ ⊙ ∂L/∂w̄|`` with ``w̄ = θ ⊙ m``, keeping
  ``round(d^{t/T}·N)`` after round ``t``; pruned weights keep a score and may
  come back.
* ``grasp`` (Wang et al., ICLR 2020): ``θ ⊙ Hg`` signed, the highest kept;
  ``g = ∇L``, ``Hg = ∇(gᵀ∇L)`` by double backprop, logits divided by 200.
* ``synflow`` (Tanaka et al., NeurIPS 2020): eval mode, every parameter and
  buffer replaced by its absolute value (float64), an all-ones input,
  ``R = Σ outputs``, score ``|θ ⊙ ∂R/∂θ|``; 100 rounds to density
  ``d^{t/T}``, pruned weights scored ``-inf`` so they never return. No data.
  At very low density it can empty ResNet-18's three 1×1 shortcut convs
  (reported as layer collapse): the authors' code does the same
  (ganguli-lab/Synaptic-Flow issue #7), since synaptic-flow conservation says
  nothing about how flow splits between parallel branches.

The iterative methods return their last round's scores, whose global top
``round(d·N)`` is their final mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fullspectrum.errors import MaskError
from fullspectrum.pruning.budget import target_count
from fullspectrum.pruning.scoring import (
    ScoringContext,
    batch_loss,
    forward,
    gradients,
    loss_gradient,
    parameter_inputs,
)
from fullspectrum.pruning.topk import top_k_global
from fullspectrum.seeds import SCORE_STREAM, derived_seed

Scores = dict[str, Tensor]


def uniform_scores(ctx: ScoringContext) -> Scores:
    """I.i.d. uniform scores per weight, drawn on the CPU from ``seed``'s score stream (same on every
    device; not ``seed`` itself, whose stream ``torch.manual_seed`` gives the model's weights)."""
    generator = torch.Generator().manual_seed(derived_seed(ctx.seed, SCORE_STREAM))
    return {
        name: torch.rand(param.shape, generator=generator).to(param.device) for name, _, param in ctx.layers
    }


def magnitude_scores(ctx: ScoringContext) -> Scores:
    """``|θ|``: exact ties are common and broken by layer order, then index."""
    return {name: param.detach().abs().clone() for name, _, param in ctx.layers}


def _leaf_weights(ctx: ScoringContext, masks: Scores | None = None) -> Scores:
    """Fresh leaf copies ``θ ⊙ m`` of the maskable weights that autograd can differentiate."""
    return {
        name: (param.detach() * masks[name] if masks else param.detach().clone()).requires_grad_()
        for name, _, param in ctx.layers
    }


def snip_scores(ctx: ScoringContext) -> Scores:
    """Connection sensitivity ``|θ ⊙ ∂L/∂θ|`` on the budget's examples."""
    weights = _leaf_weights(ctx)
    grad = loss_gradient(ctx, parameter_inputs(ctx.model), weights)
    ctx.report(1, 1)
    return {name: (w.detach() * grad[name]).abs() for name, w in weights.items()}


def _schedule(ctx: ScoringContext, rounds: int) -> list[int]:
    """Kept weights after each round: ``round(d^{t/T} · N)`` for ``t = 1..T``."""
    if ctx.density is None:
        raise MaskError("iterative generators need the target density to score")
    if not isinstance(rounds, int) or rounds < 1:
        raise MaskError(f"rounds must be a positive integer, got {rounds!r}")
    total = sum(param.numel() for _, _, param in ctx.layers)
    return [target_count(ctx.density ** (t / rounds), total) for t in range(1, rounds + 1)]


def iter_snip_scores(ctx: ScoringContext) -> Scores:
    """SNIP over ``rounds`` rounds on the exponential schedule; pruned weights may return."""
    schedule = _schedule(ctx, ctx.options["rounds"])
    inputs = parameter_inputs(ctx.model)
    thetas = {name: param.detach() for name, _, param in ctx.layers}
    masks: Scores = {name: torch.ones_like(theta) for name, theta in thetas.items()}
    scores: Scores = {}
    for t, keep in enumerate(schedule, start=1):
        weights = _leaf_weights(ctx, masks)
        grad = loss_gradient(ctx, inputs, weights)
        scores = {name: (thetas[name] * grad[name]).abs() for name in thetas}
        masks = {name: m.to(thetas[name].dtype) for name, m in top_k_global(scores, keep).items()}
        ctx.rounds_kept.append(keep)
        ctx.report(t, len(schedule))
    return scores


def grasp_scores(ctx: ScoringContext) -> Scores:
    """Gradient signal preservation ``θ ⊙ Hg`` (signed; the highest are kept)."""
    temperature = float(ctx.options["temperature"])
    inputs = parameter_inputs(ctx.model)
    weights = _leaf_weights(ctx)
    g = loss_gradient(ctx, inputs, weights, temperature)  # no graph: g is a constant below
    total = sum(len(x) for x, _ in ctx.batches)
    hg = {name: torch.zeros_like(w) for name, w in weights.items()}
    for i, batch in enumerate(ctx.batches, start=1):
        loss = batch_loss(ctx.model, inputs, weights, batch, temperature)
        grad = gradients(loss, weights, create_graph=True)
        z = sum((grad[name] * g[name]).sum() for name in weights)  # gᵀ∇L_b
        if z.requires_grad:
            for name, value in gradients(z, weights).items():
                hg[name] += value * (len(batch[0]) / total)
        ctx.report(i, len(ctx.batches))
    return {name: w.detach() * hg[name] for name, w in weights.items()}


def synflow_scores(ctx: ScoringContext) -> Scores:
    """Iterative synaptic flow on ``|θ|`` with an all-ones input; data-free."""
    schedule = _schedule(ctx, ctx.options["rounds"])
    if ctx.input_shape is None:
        raise MaskError("synflow needs the shape of one example: pass input_shape=(...) or data")
    dtype = torch.float64 if ctx.options["float64"] else ctx.layers[0].param.dtype
    inputs = parameter_inputs(ctx.model, dtype=dtype, transform=torch.abs)
    thetas = {name: param.detach().to(dtype).abs() for name, _, param in ctx.layers}
    ones = torch.ones((1, *ctx.input_shape), dtype=dtype, device=ctx.device)
    masks = {name: torch.ones_like(theta, dtype=torch.bool) for name, theta in thetas.items()}
    scores: Scores = {}
    for t, keep in enumerate(schedule, start=1):
        weights = {name: (thetas[name] * masks[name]).requires_grad_() for name in thetas}
        flow = forward(ctx.model, inputs, weights, ones).sum()
        grad = gradients(flow, weights)
        scores = {
            name: (w.detach() * grad[name]).abs().masked_fill(~masks[name], -math.inf)
            for name, w in weights.items()
        }
        masks = top_k_global(scores, keep)
        ctx.rounds_kept.append(keep)
        ctx.report(t, len(schedule))
    return scores
