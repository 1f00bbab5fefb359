"""A random mask is independent of the weights it masks, even when both come from one seed.

`prune --seed S` initialises the model under ``torch.manual_seed(S)`` and seeds the mask with
``S``: were the uniform scores drawn from ``S`` itself, they would be the very numbers that made
the first layer's weights, and the "random" mask would keep exactly the largest of them.
"""

from __future__ import annotations

import pytest
import torch

from fullspectrum.models import build_model
from fullspectrum.pruning import generate_masks


@pytest.mark.parametrize("method", ["random", "er", "erk"])
@pytest.mark.parametrize("seed", [0, 3])
def test_uniform_masks_keep_positive_and_negative_weights_alike(method, seed):
    torch.manual_seed(seed)
    model = build_model("mlp", 10, (1, 8, 8))
    result = generate_masks(model, method, 0.05, seed=seed)
    masks = result.masks if hasattr(result, "masks") else result
    weights = dict(model.named_parameters())
    for name, mask in masks.items():
        kept = weights[name].detach()[mask]
        share = float((kept > 0).float().mean())
        assert 0.35 < share < 0.65, (name, share)  # 1.0 when scores and weights share a stream
