"""The operator of a Lanczos run on ``A Aᵀ`` (``gram_lanczos._GramState``) holds the CSR arrays it is
given: counting its entries per column takes no int64 copy of every index (at 50% density, the
copy was a large layer's memory peak)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum.gram_lanczos import _GramState, _top_eigenpairs


def test_the_column_counts_take_no_copy_of_the_indices():
    side = 2000  # 4e6 entries: int64 indices would be 32 MB
    matrix = sp.csr_matrix(np.ones((side, side)))
    assert matrix.indices.dtype == np.int32
    sizes = np.array([side])
    state = object.__new__(_GramState)
    tracemalloc.start()
    state._set_operator(matrix, sizes, sizes)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * matrix.nnz, f"{peak / matrix.nnz:.1f} bytes per entry"
    assert state.most[0] == 2 * side  # a row's entries plus a column's: the rounding of a product


def test_the_top_eigenpairs_are_those_of_the_tridiagonal():
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 40, 200):
        alphas, betas = rng.random(n) + 1.0, rng.random(n - 1)
        betas[n // 3 : n // 3 + 1] = 1e-300  # a breakdown-like split
        dense = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        exact, vectors = np.linalg.eigh(dense)
        for want in (1, 2, 3):
            take = min(want, n)
            values, last = _top_eigenpairs(alphas, betas, want)
            assert values == pytest.approx(exact[::-1][:take], abs=1e-13, rel=0)
            # eigenvectors are defined up to sign: compare the last entries' magnitudes
            assert np.abs(last) == pytest.approx(np.abs(vectors[-1, ::-1][:take]), abs=1e-12)
