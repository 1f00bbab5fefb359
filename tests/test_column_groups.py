"""Column groups (``dense.column_groups``): a layer's graphs that are groups of its columns, filled
straight into batched dense calls. Whatever the order and sizes of the groups given, and whichever
columns are left out, every group's values are those of a dense SVD of its columns, in both
channels, with multiplicity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum import dense as dense_module
from fullspectrum.spectrum.dense import column_groups
from fullspectrum.spectrum.gram import gram_top
from fullspectrum.spectrum.gram_lanczos import load_compiled_kernels
from fullspectrum.spectrum.stack import NUMPY


def top_two(block: np.ndarray) -> np.ndarray:
    values = np.zeros(2)
    found = np.linalg.svd(block, compute_uv=False)[:2]
    values[: found.size] = found
    return values


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_group_gets_the_values_of_its_own_columns(monkeypatch, weighted, compiled):
    """Both sorts into column order: numba's one pass (once numba is loaded) and numpy's slices."""
    if compiled:
        assert load_compiled_kernels()
        assert dense_module.column_scatter_kernel() is not None
    else:
        monkeypatch.setattr(dense_module, "column_scatter_kernel", lambda: None)
    rng = np.random.default_rng(3)
    rows, n_columns = 40, 230
    dense = (rng.random((rows, n_columns)) < 0.3).astype(float)
    dense[:, 7] = dense[:, 8]  # a repeated column: a group holding both has a repeated structure
    dense[5] = 0  # a row no group reaches
    weights_dense = dense * (rng.random((rows, n_columns)) + 0.1)
    weights_dense[np.flatnonzero(dense[3])[:2]] = 0.0  # kept weights that are exactly 0
    pattern = sp.csr_matrix(dense)
    weights = weights_dense[dense != 0] if weighted else None  # CSR order (row-major)
    # Groups of mixed sizes (widths that round alike and differently), not in width order,
    # over a shuffled subset of the columns.
    sizes = np.array([9, 1, 17, 3, 40, 9, 2, 18, 33])
    columns = rng.permutation(n_columns)[: sizes.sum()]
    graph_ids = np.arange(sizes.size) * 3 + 1
    groups = column_groups(pattern, weights, columns, sizes, graph_ids, (0, 100))
    found: list = []
    groups.solve(2, NUMPY, found)
    graphs = np.concatenate([g for g, _ in found])
    values = np.concatenate([v for _, v in found])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    channels = [(dense, 0)] + ([(weights_dense, 100)] if weighted else [])
    for g, (start, size) in enumerate(zip(starts, sizes)):
        chosen = columns[start : start + size]
        for matrix, offset in channels:
            got = np.zeros(2)  # a group of one column has one value
            mine = np.sort(values[graphs == graph_ids[g] + offset])[::-1]
            assert mine.size == min(2, size), (g, offset)
            got[: mine.size] = mine
            want = top_two(matrix[:, chosen])
            assert got == pytest.approx(want, abs=1e-10 * max(1.0, want[0]), rel=0), (g, offset)


def test_wide_grams_take_their_top_values_from_lapack_directly():
    rng = np.random.default_rng(8)
    stack = rng.random((3, 130, 300)) * (rng.random((3, 130, 300)) < 0.3)  # Gram side 130 >= 96
    values, certified = gram_top(stack, 2, "nonnegative")
    exact = np.linalg.svd(stack, compute_uv=False)[:, :2]
    assert certified.all()
    assert values == pytest.approx(exact, abs=1e-10 * exact.max(), rel=0)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_compiled_sort_gives_the_arrays_of_the_numpy_one(monkeypatch, weighted):
    """Entry for entry: each place's rows ascending, the weights beside them, over a pattern with
    columns left out and more places than a uint16 key holds."""
    assert load_compiled_kernels()
    rng = np.random.default_rng(5)
    for rows, n_columns, sizes in ((50, 300, [7, 30, 1, 64, 12]), (3, 70000, [66000, 20])):
        pattern = sp.random(rows, n_columns, density=0.05, format="csr", random_state=rng)
        pattern.data[:] = 1.0
        weights = rng.random(pattern.nnz) if weighted else None
        sizes = np.array(sizes)
        columns = rng.permutation(n_columns)[: sizes.sum()]
        args = (pattern, weights, columns, sizes, np.arange(sizes.size), (0, 10))
        compiled = column_groups(*args)
        monkeypatch.setattr(dense_module, "column_scatter_kernel", lambda: None)
        plain = column_groups(*args)
        monkeypatch.undo()
        assert np.array_equal(compiled.indptr, plain.indptr)
        assert (
            np.array_equal(compiled.indices, plain.indices) and compiled.indices.dtype == plain.indices.dtype
        )
        assert np.array_equal(compiled.col_bounds, plain.col_bounds)
        for got, want in zip(compiled.values, plain.values, strict=True):
            assert (got is None and want is None) or np.array_equal(got, want)
