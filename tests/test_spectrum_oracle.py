"""The engine against the dense-eigendecomposition oracle (SPEC §1–3) on many random masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectrum
from tests.spectrum_oracle import oracle_spectrum

SHAPES = [(12, 9), (30, 7), (5, 40), (16, 4, 3, 3), (8, 6, 3), (20, 3, 2, 2), (1, 10), (10, 1), (24, 24)]


def random_case(index: int):
    rng = np.random.default_rng(1000 + index)
    shape = SHAPES[index % len(SHAPES)]
    density = float(rng.uniform(0.02, 1.0))
    mask = rng.random(shape) < density
    if index % 3 == 0 and shape[0] > 2:  # force dead output and input units
        mask[rng.integers(0, shape[0])] = False
        mask.reshape(shape[0], -1)[:, rng.integers(0, mask.reshape(shape[0], -1).shape[1])] = False
    weight = rng.standard_normal(shape) if index % 4 else None
    return mask, weight


def assert_fields_match(got, want: dict, tolerance: float, context: str):
    for name in SPECTRUM_FIELDS:
        g, w = getattr(got, name), want[name]
        if isinstance(w, float) and math.isnan(w):
            assert math.isnan(g), f"{context}: {name} = {g}, expected NaN"
        else:
            assert g == pytest.approx(w, abs=tolerance, rel=0), f"{context}: {name} = {g}, expected {w}"


@pytest.mark.parametrize("convention", ["fs23", "r23"])
def test_engine_matches_dense_oracle_on_random_masks(convention):
    for index in range(220):
        mask, weight = random_case(index)
        want = oracle_spectrum(mask, weight, convention)
        got = layer_spectrum(mask, weight, convention=convention)
        scale = want["sigma1"] if not math.isnan(want["sigma1"]) else 1.0
        if weight is not None and not math.isnan(want["omega1"]):
            scale = max(scale, want["omega1"])
        assert_fields_match(got, want, 1e-6 * max(1.0, scale), f"case {index} {mask.shape} {convention}")


def test_engine_matches_oracle_on_larger_sparse_layers():
    # Large enough that the Lanczos path (not dense LAPACK) is used.
    rng = np.random.default_rng(7)
    for density in (0.01, 0.03):
        mask = rng.random((300, 64, 3, 3)) < density
        weight = rng.standard_normal(mask.shape)
        want = oracle_spectrum(mask, weight, "fs23")
        got = layer_spectrum(mask, weight)
        assert_fields_match(got, want, 1e-6 * max(1.0, want["sigma1"], want["omega1"]), f"density {density}")


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(3)
    mask = rng.random((16, 8, 3, 3)) < 0.2
    weight = rng.standard_normal(mask.shape).astype(np.float32)
    from_numpy = layer_spectrum(mask, weight)
    from_torch = layer_spectrum(torch.from_numpy(mask), torch.from_numpy(weight))
    from_float_mask = layer_spectrum(torch.from_numpy(mask).float(), torch.from_numpy(weight))
    assert from_numpy == from_torch == from_float_mask
