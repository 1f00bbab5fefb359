"""Tests for fullspectrum.spectrum.graphon: SPEC §7's degree-sorted block estimate (G25)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fullspectrum.errors import MaskError
from fullspectrum.spectrum.graphon import MAX_BLOCKS, degree_order, graphon_estimate


def test_complete_graph_is_all_ones():
    g = graphon_estimate(np.ones((70, 100)))
    assert g.shape == (64, 64)
    np.testing.assert_array_equal(g.values, 1.0)


def test_empty_mask_is_all_zeros_and_conv_is_flattened():
    g = graphon_estimate(torch.zeros(4, 3, 3, 3, dtype=torch.bool))
    assert g.shape == (4, 27)
    np.testing.assert_array_equal(g.values, 0.0)


def test_blocks_are_min_of_64_and_units():
    assert graphon_estimate(np.ones((10, 200))).shape == (10, MAX_BLOCKS)
    assert graphon_estimate(np.ones((200, 3))).shape == (MAX_BLOCKS, 3)
    assert graphon_estimate(np.ones((200, 300)), max_blocks=8).shape == (8, 8)


def test_small_mask_is_its_own_sorted_adjacency():
    mask = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    g = graphon_estimate(mask)
    # output degrees 1,3,2 -> order 1,2,0; input degrees 1,3,2 -> order 1,2,0
    assert g.right_order.tolist() == [1, 2, 0]
    assert g.left_order.tolist() == [1, 2, 0]
    np.testing.assert_array_equal(g.values, mask[np.ix_([1, 2, 0], [1, 2, 0])].astype(float))


def test_sort_is_descending_degree_with_ties_by_index():
    degrees = np.array([2, 5, 2, 0, 5, 1])
    assert degree_order(degrees).tolist() == [1, 4, 0, 2, 5, 3]


def test_block_structure_is_recovered_from_a_shuffled_two_block_model():
    # outputs 0..63 connect to inputs with probability 0.9 / 0.1 by input group; the high-degree
    # half of each side sorts first, so the estimate shows the 2x2 block pattern.
    rng = np.random.default_rng(0)
    n = 256
    high_out = rng.permutation(n)[: n // 2]
    high_in = rng.permutation(n)[: n // 2]
    is_out = np.zeros(n, bool)
    is_out[high_out] = True
    is_in = np.zeros(n, bool)
    is_in[high_in] = True
    prob = np.where(is_out[:, None] & is_in[None, :], 0.9, 0.1)
    mask = rng.random((n, n)) < prob
    g = graphon_estimate(mask)
    assert g.shape == (64, 64)
    half = 32
    assert abs(g.values[:half, :half].mean() - 0.9) < 0.03
    for block in (g.values[half:, :half], g.values[:half, half:], g.values[half:, half:]):
        assert abs(block.mean() - 0.1) < 0.03
    # the sorted sides are exactly the planted groups
    assert set(g.right_order[: n // 2].tolist()) == set(high_out.tolist())
    assert set(g.left_order[: n // 2].tolist()) == set(high_in.tolist())


def test_uneven_blocks_cover_every_unit_once():
    g = graphon_estimate(np.ones((100, 130)))
    assert g.right_edges[0] == 0 and g.right_edges[-1] == 100
    sizes = np.diff(g.left_edges)
    assert sizes.sum() == 130 and sizes.max() - sizes.min() <= 1


@settings(max_examples=40, deadline=None)
@given(
    out=st.integers(1, 90),
    inp=st.integers(1, 90),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_invariants(out, inp, density, seed):
    mask = np.random.default_rng(seed).random((out, inp)) < density
    g = graphon_estimate(mask)
    assert g.shape == (min(64, out), min(64, inp))
    assert ((g.values >= 0) & (g.values <= 1)).all()
    assert g.density == pytest.approx(mask.mean(), abs=1e-12)  # block-weighted mean = layer density
    assert sorted(g.right_order.tolist()) == list(range(out))
    assert (np.diff(mask.sum(axis=1)[g.right_order]) <= 0).all()  # descending degree
    assert (np.diff(mask.sum(axis=0)[g.left_order]) <= 0).all()
    # invariant under relabelling the units (only degrees matter for the order of blocks' contents)
    perm_rows = np.random.default_rng(seed + 1).permutation(out)
    assert graphon_estimate(mask[perm_rows]).density == pytest.approx(g.density)


def test_bad_input():
    with pytest.raises(MaskError, match="conv1 mask"):
        graphon_estimate(np.full((3, 3), 0.5), name="conv1")
    with pytest.raises(MaskError, match="no units"):
        graphon_estimate(np.ones((0, 4)))
