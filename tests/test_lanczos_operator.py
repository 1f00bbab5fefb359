"""The operator of a Lanczos run on ``A Aᵀ`` (``gram_lanczos._GramState``) holds the CSR arrays it is
given: counting its entries per column takes no int64 copy of every index (at 50% density, the
copy was a large layer's memory peak)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import scipy.sparse as sp

from fullspectrum.spectrum.gram_lanczos import _GramState


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
