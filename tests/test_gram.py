"""The Gram route (``fullspectrum.spectrum.gram``): its proven bound holds, and it refuses what it cannot prove."""

from __future__ import annotations

import numpy as np
import pytest

from fullspectrum.spectrum.gram import ACCEPTED_ERROR, gram_top
from fullspectrum.spectrum.singular import dense_top, matrix_singular_values
from tests.spectrum_oracle import adjacency_top_two


def random_stack(rng, kind: str, batch: int, rows: int, cols: int) -> np.ndarray:
    mask = (rng.random((batch, rows, cols)) < rng.uniform(0.05, 0.9)).astype(float)
    if kind == "mask":
        return mask
    if kind == "weighted":
        return mask * rng.random((batch, rows, cols))
    return rng.standard_normal((batch, rows, cols))  # signed: bounded through the Frobenius norm


@pytest.mark.parametrize("kind", ["mask", "weighted", "signed"])
def test_certified_values_are_within_their_bound_of_the_dense_oracle(kind):
    rng = np.random.default_rng({"mask": 1, "weighted": 2, "signed": 3}[kind])
    certified_count = 0
    for _ in range(60):
        rows, cols = int(rng.integers(2, 40)), int(rng.integers(2, 40))
        stack = random_stack(rng, kind, 3, rows, cols)
        values, certified = gram_top(stack, 2)
        for matrix, (s1, s2), proven in zip(stack, values, certified, strict=True):
            exact = adjacency_top_two(matrix)
            if proven:
                certified_count += 1
                tolerance = ACCEPTED_ERROR * max(1.0, exact[0])
                assert abs(s1 - exact[0]) <= tolerance and abs(s2 - exact[1]) <= tolerance
    assert certified_count > 100  # the route is used, not always refused


def test_a_0_1_stack_said_binary_takes_its_exact_float32_gram_and_the_float64_values():
    """``kind="binary"`` forms the Gram in float32 (its integers are exact there): the eigenvalues are
    those of the float64 Gram, bit for bit, sides below and above the top-only solver's."""
    rng = np.random.default_rng(9)
    for rows, cols in ((12, 30), (70, 40), (130, 300)):
        stack = random_stack(rng, "mask", 3, rows, cols)
        single, single_proven = gram_top(stack, 2, "binary")
        double, double_proven = gram_top(stack, 2, None)
        assert np.array_equal(single, double) and np.array_equal(single_proven, double_proven)
        for matrix, values in zip(stack, single):
            exact = np.linalg.svd(matrix, compute_uv=False)[:2]
            assert values == pytest.approx(exact, abs=ACCEPTED_ERROR * exact[0], rel=0)


def test_a_small_sigma2_is_refused_and_the_svd_fallback_is_exact():
    # sigma2 = 1e-9: squaring puts it at 1e-18, below the eigensolver's noise of ~1e-16.
    matrix = np.array([[1.0, 0.0], [0.0, 1e-9]])
    values, certified = gram_top(matrix[None], 2)
    assert not certified[0]
    assert dense_top(matrix[None], 2)[0] == pytest.approx([1.0, 1e-9], rel=1e-12, abs=0)


def test_rank_one_matrices_are_refused_and_fall_back_to_exact_zeros():
    # A complete bipartite block has sigma2 = 0 exactly; the Gram route can only bound it by sqrt(δ).
    block = np.ones((1, 5, 7))
    assert not gram_top(block, 2)[1][0]
    assert dense_top(block, 2)[0][1] == pytest.approx(0.0, abs=1e-12)


def test_typical_layer_matrices_take_the_gram_route():
    # A small layer's mask and its |W|: the route exists for these, so it must prove them.
    rng = np.random.default_rng(4)
    mask = (rng.random((1, 128, 250)) < 0.035).astype(float)
    assert gram_top(mask, 2)[1][0]
    assert gram_top(mask * rng.random(mask.shape), 2)[1][0]


def test_top_singular_values_k10_agrees_with_numpy_svd():
    rng = np.random.default_rng(5)
    for _ in range(20):
        matrix = (rng.random((int(rng.integers(10, 60)), int(rng.integers(10, 60)))) < 0.3) * rng.random()
        exact = np.linalg.svd(matrix, compute_uv=False)[:10]
        assert np.allclose(matrix_singular_values(matrix, 10)[: exact.size], exact, atol=1e-9, rtol=0)


def test_complete_bipartite_blocks_take_their_closed_form_not_an_svd(monkeypatch):
    """A 0/1 block whose nonzero rows are all alike (a dense layer, a class that is the whole layer)
    has one nonzero singular value, sqrt(edges): the Gram bound cannot prove its zero sigma2, and no
    SVD is needed. Rows alike but not 0/1, or 0/1 rows that differ, still go to the SVD."""
    from fullspectrum.spectrum import dense as dense_module

    stack = np.zeros((4, 9, 6))
    stack[0, :7, :5] = 1  # K(7, 5), zero-padded
    stack[1, [0, 3, 8], 1:4] = 1  # K(3, 3) on scattered units
    stack[2, :4, :3] = [2.0, 0.5, 1.0]  # rank one, weighted
    stack[3, :5, :5] = np.eye(5)  # five equal values: sigma2 = sigma1, the SVD's case
    svd_inputs = []
    svd = np.linalg.svd

    def counted(matrices, compute_uv=False):
        svd_inputs.append(len(matrices))
        return svd(matrices, compute_uv=compute_uv)

    monkeypatch.setattr(dense_module.np.linalg, "svd", counted)
    got = dense_module.dense_top(stack.copy(), 2, "nonnegative")
    monkeypatch.undo()
    exact = np.linalg.svd(stack, compute_uv=False)[:, :2]
    assert got == pytest.approx(exact, abs=1e-12, rel=0)
    assert got[0, 0] == np.sqrt(35.0) and got[1, 0] == 3.0 and got[0, 1] == 0.0
    assert sum(svd_inputs) <= 2, "only the weighted and the identity blocks may need the SVD"
