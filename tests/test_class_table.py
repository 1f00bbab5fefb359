"""The degree classes of a layer (``classes.class_table``): each class's rows are exactly the rows
wired to its columns, whether they are found through the touch table or by sorting."""

from __future__ import annotations

import numpy as np
import pytest

from fullspectrum.spectrum import classes
from fullspectrum.spectrum.classes import class_table
from fullspectrum.spectrum.graph import build_layer_graph


@pytest.mark.parametrize("touch_entries", [1 << 26, 0])
def test_every_class_reaches_exactly_the_rows_wired_to_it(monkeypatch, touch_entries):
    monkeypatch.setattr(classes, "_TOUCH_TABLE_ENTRIES", touch_entries)
    rng = np.random.default_rng(5)
    mask = rng.random((70, 300)) < rng.random(300) * 0.3  # many column degrees
    mask[:, 11] = False  # a dead column
    mask[4] = False  # a dead row
    graph = build_layer_graph(mask)
    table = class_table(graph, "fs23")
    dense = graph.biadjacency.toarray()
    degrees = dense.sum(axis=0)
    assert np.array_equal(table.degrees, np.unique(degrees))
    for c, degree in enumerate(table.degrees):
        reached = np.flatnonzero(dense[:, degrees == degree].any(axis=1))
        assert np.array_equal(table.class_rows[table.class_row_class == c], reached), c
        assert table.right_sizes[c] == reached.size
    assert np.all(np.diff(table.class_row_class * dense.shape[0] + table.class_rows) > 0)  # sorted pairs


@pytest.mark.parametrize("table_entries", [1 << 22, 0])
def test_each_edge_finds_its_class_row_pair(monkeypatch, table_entries):
    monkeypatch.setattr(classes, "_PAIR_TABLE_ENTRIES", table_entries)
    rng = np.random.default_rng(6)
    graph = build_layer_graph(rng.random((50, 200)) < 0.1)
    table = class_table(graph, "fs23")
    pattern = graph.biadjacency
    edge_class = table.column_class[pattern.indices]
    edge_rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    pairs = table.pair_of(edge_class, edge_rows, pattern.shape[0])
    np.testing.assert_array_equal(table.class_row_class[pairs], edge_class)
    np.testing.assert_array_equal(table.class_rows[pairs], edge_rows)
