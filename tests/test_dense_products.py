"""A lone dense Lanczos block takes its products on a dense copy (``dense_products.dense_product``):
through compiled loops, bytes for a 0/1 block and float32 for weights that all are float32; float64
through BLAS otherwise, float32 late in the run of such a weighted block with the values then proven
from the Ritz vectors' own residuals. The values stay those of a dense SVD, proven, and the
products those of the CSR arrays."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum import dense_products as dense_products_module
from fullspectrum.spectrum import gram_lanczos as gram_lanczos_module
from fullspectrum.spectrum import layer_spectrum
from fullspectrum.spectrum.dense_products import dense_product
from fullspectrum.spectrum.gram_lanczos import gram_lanczos

ROWS, COLS = 1000, 1100  # 1.1e6 entries: above DENSE_ENTRIES


def dense_block(rng, density=0.4, weighted=False, single=False):
    """A random ``ROWS × COLS`` block; ``weighted``: values in [0.05, 1.05), as float32 ``single``."""
    block = (rng.random((ROWS, COLS)) < density).astype(float)
    if weighted:
        block *= rng.random((ROWS, COLS)) + 0.05
    if single:
        block = block.astype(np.float32).astype(float)
    return sp.csr_matrix(block)


@pytest.mark.parametrize("weighted, single", [(False, False), (True, False), (True, True)])
def test_the_dense_products_equal_the_csr_ones(weighted, single):
    rng = np.random.default_rng(0)
    matrix = dense_block(rng, weighted=weighted, single=single)
    products = dense_product(matrix)
    assert products is not None, "a 40% dense block of 1.1e6 entries should be held dense"
    q = rng.standard_normal(ROWS)
    expected = matrix @ (matrix.T @ q)
    assert np.abs(products.exact(q) - expected).max() <= 1e-12 * np.abs(expected).max()
    if weighted and not single:  # float32 products, for the end of the run
        assert np.abs(products.single(q) - expected).max() <= 1e-5 * np.abs(expected).max()
    else:  # exact already: 0/1 values, or float32 ones read as float32 and widened
        assert products.single is None


def test_float32_weights_are_held_as_float32_and_others_as_float64():
    rng = np.random.default_rng(8)
    assert gram_lanczos_module.load_compiled_kernels()
    single = dense_block(rng, weighted=True, single=True)
    assert dense_products_module.float32_copy(single.data).dtype == np.float32
    assert dense_products_module.float32_copy(dense_block(rng, weighted=True).data) is None
    held = []
    original = sp.csr_matrix.toarray
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            sp.csr_matrix, "toarray", lambda self, *a, **k: held.append(self.dtype) or original(self)
        )
        dense_product(single)
        dense_product(dense_block(rng, weighted=True))
    assert held == [np.float32, np.float64]


def test_the_certificate_bounds_the_error_of_any_vector():
    rng = np.random.default_rng(4)
    block = rng.random((300, 400)) * (rng.random((300, 400)) < 0.5)
    left, exact, _ = np.linalg.svd(block)
    products = dense_products_module.DenseProducts(lambda q: block @ (block.T @ q), block)
    most = 700
    sigma, bound = products.certify(left[:, :2].T, most)
    assert sigma == pytest.approx(exact[:2], abs=1e-12 * exact[0], rel=0) and bound.max() < 1e-11 * exact[0]
    rough = left[:, :2].T + 1e-4 * rng.standard_normal((2, 300))
    sigma, bound = products.certify(rough, most)
    assert np.all(np.abs(sigma - exact[:2]) <= bound) and bound.min() > 1e-7 * exact[0]


def test_a_sparse_or_small_block_keeps_its_csr_products(monkeypatch):
    rng = np.random.default_rng(1)
    monkeypatch.setattr(dense_products_module, "steps_kernel", lambda: None)  # scipy's CSR products
    assert dense_product(dense_block(rng, density=0.05)) is None  # too sparse
    assert dense_product(dense_block(rng, density=0.12, weighted=True)) is None  # float64 reads more
    assert dense_product(dense_block(rng, density=0.12)) is not None  # bytes read less
    assert dense_product(sp.csr_matrix(rng.random((300, 300)))) is None  # too small


@pytest.mark.parametrize("vector", [False, True])
def test_compiled_csr_steps_keep_a_block_sparse_up_to_a_higher_share(monkeypatch, vector):
    rng = np.random.default_rng(1)
    assert gram_lanczos_module.load_compiled_kernels()
    monkeypatch.setattr(dense_products_module, "vector_products", lambda: vector)
    share = dense_products_module.VECTOR_BYTES_SHARE if vector else dense_products_module.COMPILED_BYTES_SHARE
    assert share > dense_products_module.BYTES_SHARE
    assert dense_product(dense_block(rng, density=share - 0.05)) is None  # the compiled CSR products win
    assert dense_product(dense_block(rng, density=share + 0.05)) is not None  # bytes still read less


@pytest.mark.parametrize("weighted, single", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("numba", [True, False])
def test_gram_lanczos_on_a_dense_block_gives_the_svd_values_proven(monkeypatch, weighted, single, numba):
    rng = np.random.default_rng(2)
    matrix = dense_block(rng, weighted=weighted, single=single)
    if not numba:  # without the compiled loops, any block goes through BLAS in float64
        monkeypatch.setattr(dense_products_module, "byte_kernels", lambda: None)
    late = []
    original = gram_lanczos_module.dense_product

    def spied(matrix):
        products = original(matrix)
        if products.single is not None:
            fast = products.single
            products.single = lambda q: late.append(1) or fast(q)
        return products

    monkeypatch.setattr(gram_lanczos_module, "dense_product", spied)
    values, proven = gram_lanczos(matrix, np.array([ROWS]), np.array([COLS]), 2)
    exact = np.linalg.svd(matrix.toarray(), compute_uv=False)[:2]
    assert proven[0]
    assert values[0] == pytest.approx(exact, abs=1e-9 * exact[0], rel=0)
    # A float64 weighted block ends its run on float32 products (without numba, a float32 one too).
    assert bool(late) == (weighted and (not single or not numba))


def test_a_failed_certificate_leaves_the_block_unproven_and_the_layer_exact(monkeypatch):
    rng = np.random.default_rng(5)
    matrix = dense_block(rng, weighted=True)
    original = gram_lanczos_module.dense_product

    def sloppy(matrix):  # float32 products from the start, each off by 1e-4
        products = original(matrix)
        if products.single is not None:  # the weighted graph (the mask's products stay exact)
            products.single = lambda q: products.exact(q) * (1 + 1e-4 * rng.standard_normal(q.size))
        return products

    monkeypatch.setattr(gram_lanczos_module, "dense_product", sloppy)
    monkeypatch.setattr(gram_lanczos_module, "SINGLE_AFTER", 1.0)
    _, proven = gram_lanczos(matrix, np.array([ROWS]), np.array([COLS]), 2)
    assert not proven[0]
    dense = matrix.toarray()
    spectrum = layer_spectrum(dense > 0, dense)  # the stack falls back to Golub–Kahan
    exact = np.linalg.svd(dense, compute_uv=False)[:2]
    assert (spectrum.omega1, spectrum.omega2) == pytest.approx(tuple(exact), abs=1e-9 * exact[0], rel=0)


def test_a_dense_layer_gives_the_same_spectrum_with_or_without_dense_products(monkeypatch):
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((1100, 1000))
    mask = np.abs(weight) > np.median(np.abs(weight), axis=1, keepdims=True)  # row-wise, 50%
    dense = layer_spectrum(mask, weight)
    monkeypatch.setattr(gram_lanczos_module, "dense_product", lambda matrix: None)
    sparse = layer_spectrum(mask, weight)
    for name in ("sigma1", "sigma2", "omega1", "omega2"):
        assert getattr(dense, name) == pytest.approx(getattr(sparse, name), abs=1e-9 * dense.sigma1, rel=0)


def half_dense(rng, rows, cols, keep):
    """Each row keeps ``keep`` random columns of the first ``cols``."""
    order = np.argsort(rng.random((rows, cols)), axis=1)[:, :keep]
    mask = np.zeros((rows, cols), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def test_a_dense_connected_pattern_is_one_component_and_any_other_is_searched():
    from scipy.sparse.csgraph import connected_components

    from fullspectrum.spectrum.components import _dense_and_connected, connected_parts

    def searched(matrix):
        n_rows, n_cols = matrix.shape
        count, labels = connected_components(sp.bmat([[None, matrix], [matrix.T, None]]), directed=False)
        return count, labels[:n_rows], labels[n_rows:]

    rng = np.random.default_rng(6)
    for keep in (16, 15, 9):  # (16 of 30: any two rows meet; 15 of 30: they meet the fullest row)
        half = sp.csr_matrix(half_dense(rng, 40, 30, keep))
        if keep == 16:  # two rows of 16 among 30 columns always meet: no search
            assert _dense_and_connected(half.indptr, half.indices, 30)
        count, row_label, col_label = connected_parts(half.indptr, half.indices, 30)
        expected, rows, cols = searched(half)
        assert count == expected and (row_label == rows).all() and (col_label == cols).all()
    half = sp.csr_matrix(half_dense(rng, 40, 30, 16))
    # Two blocks, each half dense within itself but not across: the search finds both.
    two = sp.csr_matrix(sp.block_diag([half, half]))
    assert not _dense_and_connected(two.indptr, two.indices, 60)
    count, row_label, col_label = connected_parts(two.indptr, two.indices, 60)
    expected, rows, cols = searched(two)
    assert count == expected == 2 and (row_label == rows).all() and (col_label == cols).all()
    # Rows that meet, but a column without an edge: that column is a component of its own.
    gap = np.zeros((40, 30), dtype=bool)
    gap[:, :29] = half_dense(rng, 40, 29, 16)
    gap = sp.csr_matrix(gap)
    assert not _dense_and_connected(gap.indptr, gap.indices, 30)
    count, row_label, col_label = connected_parts(gap.indptr, gap.indices, 30)
    assert count == 2 and col_label[-1] != row_label[0]
