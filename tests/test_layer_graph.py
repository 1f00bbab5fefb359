"""``build_layer_graph`` reads a layer's edges a slice of rows at a time, sparse slices and dense ones
by different means: either way its CSR arrays and kept weights are those of the live block."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum import graph as graph_module
from fullspectrum.spectrum.graph import build_layer_graph


@pytest.mark.parametrize("density", [0.03, 0.5, 0.9])
@pytest.mark.parametrize("chunk", [1 << 20, 200])  # one slice, or slices of a few rows
def test_the_csr_arrays_are_those_of_the_live_block(monkeypatch, density, chunk):
    monkeypatch.setattr(graph_module, "_CHUNK_ENTRIES", chunk)
    rng = np.random.default_rng(7)
    mask = rng.random((40, 6, 3, 3)) < density * rng.random((40, 1, 1, 1)) * 2  # rows of mixed density
    mask[3] = False  # a dead output unit
    mask[:, 2, 1, 1] = False  # a dead input tap
    weight = rng.standard_normal(mask.shape).astype(np.float16)
    weight[mask & (rng.random(mask.shape) < 0.1)] = 0.0  # kept weights that are exactly 0
    graph = build_layer_graph(mask, weight)
    flat = mask.reshape(40, -1)
    live_rows, live_cols = flat.any(axis=1), flat.any(axis=0)
    want = sp.csr_matrix(flat[np.ix_(live_rows, live_cols)].astype(float))
    got = graph.biadjacency
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, np.ones(want.nnz))
    absolute = np.abs(weight.astype(np.float64)).reshape(40, -1)[np.ix_(live_rows, live_cols)]
    np.testing.assert_array_equal(graph.kept_weights, absolute[want.toarray() != 0])


def test_the_degrees_count_past_the_narrow_sums():
    rng = np.random.default_rng(1)
    for shape in [(3, 70_000), (70_000, 3), (5, 7)]:
        flat = rng.random(shape) < 0.97  # counts above 65535
        for axis in (0, 1):
            np.testing.assert_array_equal(
                graph_module._kept_along(flat, axis), np.count_nonzero(flat, axis=axis)
            )
