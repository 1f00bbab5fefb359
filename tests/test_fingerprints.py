"""Tests for fullspectrum.fingerprints: per-layer graphon estimates, fingerprints and width distances (G25)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fullspectrum.errors import MaskError
from fullspectrum.fingerprints import (
    DEFAULT_K,
    block_distance,
    dataset_batch,
    generator_fingerprint,
    layer_graphons,
    mask_seed,
    width_convergence,
)
from fullspectrum.models import build_model
from fullspectrum.pruning import generate_masks


def _mlp(width: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", 10, (64,), widths=(width, width))


# --- estimates of random masks ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["random", "er"])
def test_a_random_masks_estimate_is_constant_at_the_density_up_to_noise_that_shrinks_with_width(method):
    deviation = {}
    for width in (64, 1024):
        masks = generate_masks(_mlp(width), method, 0.1, seed=3).masks
        estimates = layer_graphons(masks)
        hidden = "features.3.weight"  # the (width, width) layer: both sides grow
        values, density = estimates.values(hidden), estimates.densities[hidden]
        assert values.shape == (64, 64)
        # the block-size-weighted mean is the layer density exactly (equal blocks: the plain mean)
        assert values.mean() == pytest.approx(density, abs=1e-12)
        deviation[width] = float(np.abs(values - density).mean())
        # sampling noise: a block's density has sd sqrt(d(1-d)/cells); degree sorting adds about
        # 2.5 sd of a unit's degree fraction, sqrt(d(1-d)/width), at the extreme blocks
        cells = (width / 64) ** 2
        bound = 3 * np.sqrt(density * (1 - density) / cells) + 3 * np.sqrt(density * (1 - density) / width)
        assert deviation[width] < bound, (width, deviation[width], bound)
    assert deviation[1024] < 0.3 * deviation[64], deviation  # 16x the width: noise falls about 4x or more


def test_a_block_structured_mask_is_recovered_block_for_block():
    rng = np.random.default_rng(0)
    checker = np.add.outer(np.arange(4), np.arange(4)) % 2 == 0  # 2 kept per row and per column
    mask = np.block([[np.ones((4, 4), bool), checker], [checker, np.zeros((4, 4), bool)]])  # 8 x 8
    # hide the structure: the estimate must find it by degree sorting alone
    shuffled = mask[rng.permutation(8)][:, rng.permutation(8)]
    est = layer_graphons({"w": torch.from_numpy(shuffled)}, K=2)
    np.testing.assert_array_equal(est.values("w"), [[1.0, 0.5], [0.5, 0.0]])
    assert est.densities["w"] == pytest.approx(0.5)
    # at full resolution the estimate is the degree-sorted mask itself, blocks of one cell
    full = layer_graphons({"w": shuffled}, K=8).values("w")
    np.testing.assert_array_equal(full[:4, :4], 1.0)
    np.testing.assert_array_equal(full[4:, 4:], 0.0)


def test_a_conv_mask_is_estimated_on_its_flattened_inputs_and_small_sides_keep_one_block_per_unit():
    mask = torch.ones(3, 2, 3, 3, dtype=torch.bool)
    est = layer_graphons({"conv.weight": mask})
    assert est.values("conv.weight").shape == (3, 18)
    assert est.K == DEFAULT_K == 64


def test_estimates_as_dict_are_json_and_bad_inputs_raise():
    est = layer_graphons({"a": np.eye(3, dtype=bool)}, K=3)
    back = json.loads(json.dumps(est.as_dict()))
    assert back["K"] == 3
    assert back["layers"]["a"]["shape"] == [3, 3]
    assert back["layers"]["a"]["density"] == pytest.approx(1 / 3)
    with pytest.raises(MaskError, match="positive integer"):
        layer_graphons({"a": np.eye(3)}, K=0)
    with pytest.raises(MaskError, match="no masks"):
        layer_graphons({})
    with pytest.raises(MaskError, match="at least 2 dimensions"):
        layer_graphons({"b": np.ones(4)})
    with pytest.raises(MaskError, match="'c'"):
        est.values("c")


# --- fingerprints ------------------------------------------------------------------------------


def test_a_fingerprint_is_the_mean_of_its_seeds_estimates():
    data = dataset_batch("digits", examples=50)
    fp = generator_fingerprint("snip", lambda s: _mlp(64, s), data, 0.2, seeds=(0, 1, 2), K=8)
    by_hand = []
    for seed in (0, 1, 2):
        masks = generate_masks(_mlp(64, seed), "snip", 0.2, data=data, seed=mask_seed(seed)).masks
        by_hand.append(layer_graphons(masks, K=8))
    assert fp.layers == ("features.1.weight", "features.3.weight", "classifier.weight")
    for name in fp.layers:
        stack = np.stack([e.values(name) for e in by_hand])
        np.testing.assert_allclose(fp.mean[name], stack.mean(axis=0), rtol=0, atol=1e-15)
        np.testing.assert_allclose(fp.std[name], stack.std(axis=0, ddof=1), rtol=0, atol=1e-15)
        np.testing.assert_array_equal(fp.per_seed[1].values(name), by_hand[1].values(name))
        assert fp.layer_densities[name] == pytest.approx(np.mean([e.densities[name] for e in by_hand]))
    # different initialisations give different masks: the seeds really vary
    assert not np.array_equal(by_hand[0].values("features.3.weight"), by_hand[1].values("features.3.weight"))
    assert json.loads(json.dumps(fp.as_dict()))["seeds"] == [0, 1, 2]


def test_a_random_fingerprint_is_not_tied_to_the_weights_of_the_same_seed():
    # torch.manual_seed(s) initialises the weights from the uniform stream a random generator seeded
    # with s once drew its scores from (that mask kept only the most positive first-layer weights);
    # the generators now draw from a stream of their own, and fingerprints seed them apart too
    net = _mlp(256, seed=0)
    weights = net.features[1].weight.detach()
    same_seed = generate_masks(net, "random", 0.05, seed=0).masks["features.1.weight"]
    assert abs(float((weights[same_seed] > 0).float().mean()) - 0.5) < 0.05
    fp = generator_fingerprint("random", lambda s: _mlp(256, s), None, 0.05, seeds=(0,), K=8)
    kept = generate_masks(net, "random", 0.05, seed=mask_seed(0)).masks["features.1.weight"]
    np.testing.assert_array_equal(fp.per_seed[0].values("features.1.weight"),
                                  layer_graphons({"w": kept}, K=8).values("w"))  # fmt: skip
    assert abs(float((weights[kept] > 0).float().mean()) - 0.5) < 0.05


def test_a_fixed_network_varies_only_the_generators_own_randomness():
    net = _mlp(64)
    fixed = generator_fingerprint("magnitude", net, None, 0.2, seeds=(0, 1), K=8)
    for name in fixed.layers:  # magnitude of fixed weights: the same mask for every seed
        np.testing.assert_array_equal(fixed.std[name], 0.0)
    rand = generator_fingerprint("random", net, None, 0.2, seeds=(0, 1), K=8)
    assert float(rand.std["features.3.weight"].max()) > 0
    with pytest.raises(MaskError, match="at least one seed"):
        generator_fingerprint("random", net, None, 0.2, seeds=())


# --- width distances ---------------------------------------------------------------------------


def test_width_distances_against_a_hand_computed_case():
    # three widths of one layer at K = 2; distances are mean |a - b| over the 4 blocks
    est = {
        64: {"w": np.array([[1.0, 0.0], [0.5, 0.5]])},
        256: {"w": np.array([[0.25, 0.25], [0.5, 0.5]])},
        128: {"w": np.array([[0.5, 0.0], [0.5, 0.5]])},
    }
    wc = width_convergence(est)
    assert wc.widths == (64, 128, 256)
    # d(64,128) = 0.5/4; d(128,256) = (0.25 + 0.25)/4; d(64,256) = (0.75 + 0.25)/4 (exact in binary)
    assert wc.successive["w"] == (0.125, 0.125)
    assert wc.to_widest["w"] == (0.25, 0.125)
    assert not wc.falls("w") and not wc.monotone("w")  # equal distances: the curve does not fall
    rows = wc.rows()
    assert {(r["kind"], r["width"], r["other"]) for r in rows} == {
        ("successive", 64, 128),
        ("successive", 128, 256),
        ("to_widest", 64, 256),
        ("to_widest", 128, 256),
    }
    assert json.loads(json.dumps(wc.as_dict()))["layers"]["w"]["falls"] is False


def test_width_distances_refuse_estimates_at_different_resolutions():
    assert block_distance(np.zeros((2, 2)), np.ones((2, 2))) == 1.0
    with pytest.raises(MaskError, match="same K"):
        width_convergence({64: {"w": np.zeros((2, 2))}, 128: {"w": np.zeros((4, 4))}})
    with pytest.raises(MaskError, match="at least two widths"):
        width_convergence({64: {"w": np.zeros((2, 2))}})
    with pytest.raises(MaskError, match="has layers"):
        width_convergence({64: {"w": np.zeros((2, 2))}, 128: {"v": np.zeros((2, 2))}})
