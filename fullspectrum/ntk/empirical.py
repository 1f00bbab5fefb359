"""The empirical NTK of a model with its masks on a batch of inputs (SPEC §7b).

``Θ(x, x') = (1/C) Σ_c ⟨∂f_c(x)/∂θ, ∂f_c(x')/∂θ⟩`` over every trainable parameter except
the pruned weight entries. The network computes with ``W ⊙ M``, so a pruned entry has no
gradient and its value changes nothing. The model runs in eval mode (BatchNorm on its
running statistics, so the samples of the batch do not interact), in float64 on the
CPU, on a deep copy: the caller's model is not touched.

Per-sample Jacobians come from ``torch.func`` (``vmap`` of ``jacrev`` over a
``functional_call``), a chunk of inputs at a time. The Jacobians of all ``N`` inputs are
kept for a group of output classes at a time, so their memory stays under
``max_jacobian_bytes`` whatever ``C``; each further group costs one more pass over the
inputs. Measured on a 2-core CPU: ResNet-20 (CIFAR, 10 classes) with ``N = 64`` in about
7–13 s (64 s once while other work loaded it), 1.24 GiB peak resident memory for the whole process.

Zoo models use PyTorch's standard parameterisation, so this NTK's scale is not comparable
with :func:`~fullspectrum.ntk.graphon_kernel.graphon_ntk`'s (NTK parameterisation);
compare normalised spectra.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from fullspectrum.errors import FullSpectrumError, MaskError

# 512 MiB of kept Jacobians: ResNet-20 (0.27 M weights, N = 64) takes 3 of its 10 classes a pass
DEFAULT_JACOBIAN_BYTES = 512 * 2**20


def empirical_ntk(
    model: nn.Module,
    inputs,
    masks: Mapping[str, Tensor] | None = None,
    *,
    chunk_size: int = 8,
    max_jacobian_bytes: int = DEFAULT_JACOBIAN_BYTES,
) -> np.ndarray:
    """The ``(N, N)`` empirical NTK (float64) of ``model`` with ``masks`` on ``N`` ``inputs``.

    ``masks`` maps parameter names to bool tensors of the weight's shape (``True`` kept); a model
    with ``torch.nn.utils.prune`` masks installed (``weight_orig``, ``weight_mask``) needs none;
    ``chunk_size`` inputs share one ``vmap`` call (peak memory of the backward passes).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(3, 2, bias=False)  # f_c(x) = w_c·x, so Θ = x·x' for every class
        >>> x = torch.eye(3)
        >>> empirical_ntk(net, x)
        array([[1., 0., 0.],
               [0., 1., 0.],
               [0., 0., 1.]])
        >>> empirical_ntk(net, x, {"weight": torch.tensor([[True, False, True]] * 2)})[1, 1]
        np.float64(0.0)
    """
    if chunk_size < 1:
        raise FullSpectrumError(f"chunk_size must be at least 1; got {chunk_size}")
    net = _float64_copy(model)
    x = _as_batch(inputs)
    trainable = {name: p.detach() for name, p in net.named_parameters() if p.requires_grad}
    if not trainable:
        raise FullSpectrumError(f"{type(model).__name__} has no trainable parameter; its NTK is zero")
    fixed = {name: p.detach() for name, p in net.named_parameters() if not p.requires_grad}
    fixed.update(dict(net.named_buffers()))
    keep = _check_masks(masks or {}, trainable, type(model).__name__)

    def logits(params: dict[str, Tensor], sample: Tensor) -> Tensor:
        # W ⊙ M inside the graph: the gradient of a pruned entry is exactly 0
        masked = {name: p * keep[name] if name in keep else p for name, p in params.items()}
        return functional_call(net, {**fixed, **masked}, (sample.unsqueeze(0),)).reshape(-1)

    with torch.no_grad():
        classes = int(logits(trainable, x[0]).numel())
    n_params = sum(p.numel() for p in trainable.values())
    group = max(1, min(classes, max_jacobian_bytes // max(1, len(x) * n_params * 8)))
    gram = torch.zeros(len(x), len(x), dtype=torch.float64)
    for start in range(0, classes, group):
        picked = torch.arange(start, min(start + group, classes))
        jac = _jacobians(logits, trainable, x, picked, chunk_size)  # (g, N, P)
        for per_class in jac:  # one (N, P) matrix product at a time: no (N, g·P) copy
            gram += per_class @ per_class.T
        del jac  # before the next group's Jacobians are built
    return (gram / classes).numpy()


def _jacobians(logits, params: dict[str, Tensor], x: Tensor, picked: Tensor, chunk_size: int) -> Tensor:
    """``∂f_c(x_n)/∂θ`` flattened over all trainable parameters: ``(len(picked), N, P)``."""

    def picked_logits(p: dict[str, Tensor], sample: Tensor) -> Tensor:
        return logits(p, sample)[picked]

    per_sample = vmap(jacrev(picked_logits), in_dims=(None, 0))
    n_params = sum(p.numel() for p in params.values())
    out = torch.empty(len(picked), len(x), n_params, dtype=torch.float64)
    for start in range(0, len(x), chunk_size):
        chunk = x[start : start + chunk_size]
        jac = per_sample(params, chunk)  # name -> (chunk, g, *shape)
        offset = 0
        for name, p in params.items():
            block = jac[name].reshape(len(chunk), len(picked), -1).transpose(0, 1)  # (g, chunk, |p|)
            out[:, start : start + len(chunk), offset : offset + p.numel()] = block
            offset += p.numel()
        del jac
    return out


def _float64_copy(model: nn.Module) -> nn.Module:
    """A float64 eval-mode deep copy, also of a model with ``torch.nn.utils.prune`` masks installed.

    Such a module holds ``weight = weight_orig * weight_mask`` as a plain attribute computed with
    autograd, which ``deepcopy`` refuses; its forward pre-hook recomputes it, so a detached
    copy of the value is all the copy needs.
    """
    memo = {
        id(value): value.detach().clone()
        for module in model.modules()
        for value in vars(module).values()
        if isinstance(value, Tensor) and value.grad_fn is not None
    }
    return copy.deepcopy(model, memo).to(device="cpu", dtype=torch.float64).eval()


def _as_batch(inputs) -> Tensor:
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, Tensor) else inputs)
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise FullSpectrumError(
            f"inputs must be a batch of N ≥ 1 examples (N, ...); got shape {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise FullSpectrumError("inputs hold NaN or Inf")
    return x


def _check_masks(masks: Mapping[str, Tensor], params: Mapping[str, Tensor], model: str) -> dict[str, Tensor]:
    keep = {}
    for name, mask in masks.items():
        if name not in params and f"{name}_orig" in params:
            name = f"{name}_orig"  # a torch.nn.utils.prune layer: the trainable tensor is weight_orig
        if name not in params:
            raise MaskError(f"mask {name!r} matches no trainable parameter of {model}")
        m = torch.as_tensor(mask).detach().cpu()
        if tuple(m.shape) != tuple(params[name].shape):
            raise MaskError(
                f"mask {name!r} has shape {tuple(m.shape)}, the parameter {tuple(params[name].shape)}"
            )
        if m.dtype != torch.bool and not bool(((m == 0) | (m == 1)).all()):
            raise MaskError(f"mask {name!r} is not binary (bool or 0/1)")
        keep[name] = m.to(torch.float64)
    return keep
