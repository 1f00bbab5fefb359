"""Closed forms and invariants of the full-spectrum engine (SPEC §1–4)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fullspectrum.errors import MaskError
from fullspectrum.spectrum import (
    SPECTRUM_FIELDS,
    full_spectrum_vector,
    layer_spectrum,
    moving_distance,
    network_summary,
    regular_subgraphs,
    top_singular_values,
)


def regular_bipartite(n: int, d: int, seed: int) -> np.ndarray:
    """A d-regular bipartite graph on n+n units: the union of d disjoint permutation matrices."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, n), dtype=bool)
    for shift in range(d):  # cyclic shifts are pairwise disjoint permutations
        mask[np.arange(n), (np.arange(n) + shift) % n] = True
    return mask[rng.permutation(n)][:, rng.permutation(n)]


@pytest.mark.parametrize("a,b", [(1, 1), (1, 5), (4, 1), (3, 7), (10, 10), (25, 6)])
def test_complete_bipartite(a, b):
    s = layer_spectrum(np.ones((b, a)))  # b outputs, a inputs
    assert s.sigma1 == pytest.approx(math.sqrt(a * b), abs=1e-9)
    assert s.sigma2 == pytest.approx(0.0, abs=1e-9)
    assert (s.d_left, s.d_right, s.edges, s.density) == (b, a, a * b, 1.0)
    # One degree class holding every input unit; it qualifies under FS23 iff b >= 3 and a >= 2.
    classes = regular_subgraphs(np.ones((b, a)))
    assert len(classes) == 1 and classes[0].d_c == b and classes[0].r_c == b
    assert s.n_classes == int(b >= 3 and a >= 2 and a > 1)


@pytest.mark.parametrize("n,d", [(8, 3), (20, 4), (50, 5), (300, 6)])
def test_regular_bipartite_graph_has_sigma1_equal_degree(n, d):
    mask = regular_bipartite(n, d, seed=n)
    s = layer_spectrum(mask)
    assert s.sigma1 == pytest.approx(d, abs=1e-9)
    assert s.d_left == s.d_right == d
    assert s.delta_s == pytest.approx(2 * math.sqrt(d - 1) - s.sigma2, abs=1e-12)
    # A regular graph is one degree class covering every unit: f = n / (2n - 1).
    assert s.n_classes == 1
    assert s.delta_r_imdb == pytest.approx(n / (2 * n - 1) * s.delta_r, abs=1e-9)


def test_disjoint_union_keeps_repeated_top_singular_value():
    block = regular_bipartite(30, 4, seed=1)
    union = np.zeros((60, 60), dtype=bool)
    union[:30, :30] = block
    union[30:, 30:] = block
    s = layer_spectrum(union)
    assert s.sigma1 == pytest.approx(4.0, abs=1e-9)
    assert s.sigma2 == pytest.approx(4.0, abs=1e-9)  # the second copy of sigma1, not the next distinct value
    values = top_singular_values(union, k=4)
    single = top_singular_values(block, k=2)
    np.testing.assert_allclose(values, np.repeat(single, 2), atol=1e-9)


def test_disjoint_union_of_different_graphs_takes_top_two_overall():
    a, b = np.ones((3, 5), dtype=bool), np.ones((4, 4), dtype=bool)  # sigma1: sqrt(15), 4
    union = np.zeros((7, 9), dtype=bool)
    union[:3, :5] = a
    union[3:, 5:] = b
    s = layer_spectrum(union)
    assert (s.sigma1, s.sigma2) == pytest.approx((4.0, math.sqrt(15)), abs=1e-9)


def test_single_edge():
    mask = np.zeros((4, 3, 2, 2), dtype=bool)
    mask[2, 1, 0, 1] = True
    weight = np.full(mask.shape, -2.5)
    s = layer_spectrum(mask, weight)
    assert (s.n_left, s.n_right, s.edges, s.dead_left, s.dead_right, s.dead_in_channels) == (
        1,
        1,
        1,
        11,
        3,
        2,
    )
    assert (s.sigma1, s.sigma2, s.omega1, s.omega2) == (1.0, 0.0, 2.5, 0.0)
    assert s.delta_r == 0.0 and s.lambda_w == 2.5 and not s.in_regime
    assert math.isnan(s.delta_r_imdb) and s.n_classes == 0


def test_all_zero_mask_is_collapsed_not_an_error():
    s = layer_spectrum(np.zeros((6, 2, 3, 3)), np.ones((6, 2, 3, 3)))
    assert (s.edges, s.density, s.n_left, s.n_right, s.n_classes, s.in_regime) == (0, 0.0, 0, 0, 0, False)
    assert (s.dead_left, s.dead_right, s.dead_in_channels) == (18, 6, 2)
    for name in ("d_left", "sigma1", "sigma2", "omega1", "delta_r", "delta_s", "lambda_w", "delta_r_imdb"):
        assert math.isnan(getattr(s, name)), name


def test_without_weights_weighted_fields_are_nan():
    s = layer_spectrum(np.random.default_rng(0).random((10, 10)) < 0.5)
    assert all(math.isnan(getattr(s, n)) for n in ("omega1", "omega2", "lambda_w", "lambda_imsg"))
    assert not math.isnan(s.delta_r)


def test_negative_square_root_is_nan_never_zero_or_error():
    # sigma1 = 1 is the smallest possible; d_left = 1 gives sqrt(0); delta_s with sigma1 < 1 cannot occur,
    # but a weighted-only layer of tiny weights must still give finite omega values.
    mask = np.eye(5, dtype=bool)
    s = layer_spectrum(mask, np.full((5, 5), 1e-3))
    assert s.delta_r == pytest.approx(-1.0)  # sqrt(0) + sqrt(0) - 1
    assert s.omega1 == pytest.approx(1e-3) and s.lambda_w == pytest.approx(0.0)


def test_r23_blanks_full_graph_gaps_outside_regime():
    mask = np.eye(6, dtype=bool) | np.eye(6, k=1, dtype=bool)  # degrees <= 2
    fs23, r23 = layer_spectrum(mask), layer_spectrum(mask, convention="r23")
    assert not fs23.in_regime and not math.isnan(fs23.delta_r)
    assert math.isnan(r23.delta_r) and math.isnan(r23.delta_s)
    assert r23.sigma1 == fs23.sigma1


@pytest.mark.parametrize(
    "mask,message",
    [
        (np.array([[0, 2], [1, 0]]), "not binary"),
        (np.array([[0.5, 1.0]]), "not binary"),
        (np.ones(5), "shape"),
    ],
)
def test_bad_masks_are_clear_errors(mask, message):
    with pytest.raises(MaskError, match=message):
        layer_spectrum(mask)


def test_bad_weights_are_clear_errors():
    with pytest.raises(MaskError, match="differs from its mask shape"):
        layer_spectrum(np.ones((3, 4)), np.ones((4, 3)), name="fc")
    with pytest.raises(MaskError, match="fc weight: weight holds NaN"):
        layer_spectrum(np.ones((3, 4)), np.full((3, 4), np.nan), name="fc")
    with pytest.raises(ValueError, match="unknown convention 'x'"):
        layer_spectrum(np.ones((3, 4)), convention="x")


masks = st.tuples(st.integers(2, 14), st.integers(2, 14), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None)
@given(masks)
def test_invariant_under_permuting_input_and_output_units(params):
    rows, cols, density, seed = params
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density
    weight = rng.standard_normal((rows, cols))
    row_perm, col_perm = rng.permutation(rows), rng.permutation(cols)
    base = layer_spectrum(mask, weight)
    permuted = layer_spectrum(mask[row_perm][:, col_perm], weight[row_perm][:, col_perm])
    for name in SPECTRUM_FIELDS:
        a, b = getattr(base, name), getattr(permuted, name)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9), name


@settings(max_examples=60, deadline=None)
@given(masks, st.sampled_from(["fs23", "r23"]))
def test_regular_subgraphs_partition_live_inputs_and_reproduce_iterative_means(params, convention):
    rows, cols, density, seed = params
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density
    weight = rng.standard_normal((rows, cols))
    classes = regular_subgraphs(mask, weight, convention=convention)
    live_inputs = set(np.flatnonzero(mask.any(axis=0)).tolist())
    covered = [u for c in classes for u in c.left_units]
    assert sorted(covered) == sorted(live_inputs)  # a partition: no repeats, nothing missing
    for c in classes:
        sub = mask[np.ix_(c.right_units, c.left_units)]
        assert (sub.sum(axis=0) == c.d_c).all()  # left-regular
        assert sub.any(axis=1).all() and c.edges == sub.sum() == c.n_c * c.d_c
        assert mask[:, c.left_units].sum() == c.edges  # every edge leaving the class is inside it
    chosen = [c for c in classes if c.qualifies]
    factor = (lambda c: 1.0) if convention == "r23" else (lambda c: c.f_c)
    s = layer_spectrum(mask, weight, convention=convention)
    assert s.n_classes == len(chosen)
    if chosen:
        assert s.delta_r_imdb == pytest.approx(np.mean([factor(c) * c.delta_r_c for c in chosen]), abs=1e-12)
        assert s.lambda_imsg == pytest.approx(np.mean([factor(c) * c.lambda_c for c in chosen]), abs=1e-12)
    else:
        assert math.isnan(s.delta_r_imdb) and math.isnan(s.lambda_imsg)


def test_vector_distance_and_network_summary():
    rng = np.random.default_rng(5)
    start = layer_spectrum(rng.random((20, 30)) < 0.3, rng.standard_normal((20, 30)))
    later = layer_spectrum(rng.random((20, 30)) < 0.3, rng.standard_normal((20, 30)))
    assert moving_distance(start, start) == 0.0
    expected = np.linalg.norm(full_spectrum_vector(later) - full_spectrum_vector(start))
    assert moving_distance(later, start) == pytest.approx(expected)
    no_weights = layer_spectrum(np.ones((4, 4)))
    assert full_spectrum_vector(no_weights)[1] == 0.0  # NaN lambda_w counts as 0 in u
    table = pd.DataFrame([start.as_dict(), later.as_dict(), layer_spectrum(np.zeros((20, 30))).as_dict()])
    summary = network_summary(table)
    assert summary["edges"] == start.edges + later.edges
    assert summary["density"] == pytest.approx((start.edges + later.edges) / 1800)
    assert summary["delta_r"] == pytest.approx(np.mean([start.delta_r, later.delta_r]))  # NaN skipped
    assert summary["in_regime"] == pytest.approx(np.mean([start.in_regime, later.in_regime, False]))
