"""Exact largest singular values of one sparse non-negative biadjacency matrix.

The papers' code built the ``(m+n)×(m+n)`` bipartite adjacency and asked ARPACK
for its top eigenvalues. We work on the ``m×n`` biadjacency directly: a small
matrix goes to one LAPACK call; any other is a one-graph
:class:`~fullspectrum.spectrum.stack.GraphStack`, split into connected
components and solved exactly with multiplicity (see ``stack.py``).

Results agree with a float64 dense eigendecomposition of the full adjacency to
well within ``1e-6 · max(1, sigma1)`` (checked in ``tests/test_spectrum_oracle.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fullspectrum.spectrum.dense import dense_top
from fullspectrum.spectrum.stack import GraphStack, stack_top

__all__ = ["dense_top", "matrix_singular_values"]

# Matrices with at most this many entries go straight to a dense SVD (exact, with multiplicity).
_DENSE_ENTRIES = 1 << 14


def matrix_singular_values(matrix: sp.spmatrix | np.ndarray, k: int = 2) -> np.ndarray:
    """The ``k`` largest singular values (with multiplicity), descending.

    Returns fewer than ``k`` values only when the matrix has fewer than ``k``
    (its smaller dimension); zeros count as singular values.
    """
    rows, cols = matrix.shape
    available = min(rows, cols)
    if available == 0:
        return np.zeros(0)
    want = min(k, available)
    if rows * cols <= _DENSE_ENTRIES:  # small: one LAPACK call beats any bookkeeping
        dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix, dtype=np.float64)
        return dense_top(dense[None], want)[0]
    return stack_top(GraphStack.of_matrix(matrix), want)[0]
