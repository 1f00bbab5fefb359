"""What a training run records: per-layer spectra, moving distances, evaluations (SPEC §4, §8).

At every snapshot each layer's mask and masked weights go through
``layer_spectrum`` (FS23's Ramanujan gap, weighted spectral gap and iterative
means); the row adds the ℓ2-moving distance of the layer's full-spectrum vector
``u`` from step 0 and the layer's exploration rate (ITOP21). Evaluations give
loss and accuracy of a split, computed without touching any random state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fullspectrum.layer_selection import module_path as layer_name
from fullspectrum.spectrum import full_spectrum_vector, layer_spectrum, moving_distance
from fullspectrum.training.sparse import SparseState


def layer_spectra(state: SparseState, weights: Mapping[str, torch.Tensor]) -> dict[str, dict]:
    """``layer_spectrum`` of every layer as a dict of fields, keyed by parameter name."""
    spectra = {}
    for name, weight in weights.items():
        mask = state.masks[name].detach().cpu()
        masked = (weight.detach().float().cpu() * mask).numpy()
        spectra[name] = layer_spectrum(mask.numpy(), masked, name=layer_name(name)).as_dict()
    return spectra


def start_vectors(spectra: Mapping[str, Mapping]) -> dict[str, torch.Tensor]:
    """The step-0 vectors ``u(0)`` of every layer (float64 tensors, as checkpoints store them)."""
    return {name: torch.from_numpy(full_spectrum_vector(row)) for name, row in spectra.items()}


def layer_rows(
    spectra: Mapping[str, Mapping], start: Mapping[str, torch.Tensor], state: SparseState
) -> list[dict]:
    """Rows of the ``layers`` table: every spectrum field, moving distance, exploration rate."""
    rates = state.layer_exploration_rates()
    rows = []
    for name, spectrum in spectra.items():
        distance = moving_distance(full_spectrum_vector(spectrum), start[name].numpy())
        rows.append(
            {
                "layer": layer_name(name),
                **spectrum,
                "moving_distance": distance,
                "exploration_rate": rates[name],
            }
        )
    return rows


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
