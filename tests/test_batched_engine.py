"""The batched engine: many graphs and many layers solved together give each one's exact values.

Checked against the dense oracle (tests/spectrum_oracle.py) and against plain dense SVDs,
on cases built to reach every route: stars, small and mid-size components, the lockstep
Lanczos run with blocks that finish at different steps (compaction), breakdowns, exact-zero
kept weights, repeated values across components.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectra, layer_spectrum
from fullspectrum.spectrum import lanczos as lanczos_module
from fullspectrum.spectrum import stack as stack_module
from fullspectrum.spectrum.classes import class_table
from fullspectrum.spectrum.gram_lanczos import gram_lanczos
from fullspectrum.spectrum.graph import build_layer_graph
from fullspectrum.spectrum.lanczos import batched_golub_kahan
from fullspectrum.spectrum.stack import GraphStack, part_of, stack_top
from tests.spectrum_oracle import oracle_spectrum


def assert_same(got: dict, want: dict, scale: float, context: str) -> None:
    for name in SPECTRUM_FIELDS:
        g, w = got[name], want[name]
        if isinstance(w, float) and math.isnan(w):
            assert math.isnan(g), f"{context}: {name} = {g}, expected NaN"
        else:
            assert g == pytest.approx(w, abs=1e-6 * max(1.0, scale), rel=0), f"{context}: {name}"


def mixed_layers():
    """Layers of every kind: conv and linear, sparse and dense, collapsed, one live unit, zero weights."""
    rng = np.random.default_rng(5)
    layers = []
    for index, (shape, density) in enumerate(
        [
            ((40, 12, 3, 3), 0.02),
            ((64, 64), 0.3),
            ((200, 30), 0.05),
            ((8, 6), 1.0),
            ((16, 16), 0.0),
            ((1, 50), 0.5),
        ]
    ):
        mask = rng.random(shape) < density
        weight = rng.standard_normal(shape)
        if index == 2:
            weight[mask & (rng.random(shape) < 0.2)] = 0.0  # kept weights that are exactly 0 (ITOP growth)
        layers.append((mask, weight if index != 3 else None, f"layer{index}"))
    return layers


def test_one_batch_of_many_layers_gives_each_layers_own_values():
    layers = mixed_layers()
    batched = layer_spectra(layers)
    for (mask, weight, name), spectrum in zip(layers, batched):
        alone = layer_spectrum(mask, weight, name=name).as_dict()
        want = oracle_spectrum(mask, weight, "fs23")
        scale = max(want["sigma1"], want["omega1"]) if not math.isnan(want["sigma1"]) else 1.0
        assert_same(spectrum.as_dict(), want, scale if not math.isnan(scale) else 1.0, name)
        for field in SPECTRUM_FIELDS:  # batching shares the work, never changes a value
            a, b = alone[field], spectrum.as_dict()[field]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9, rel=1e-12), field


def test_exact_zero_kept_weights_leave_the_mask_graph_whole():
    rng = np.random.default_rng(9)
    mask = rng.random((120, 90)) < 0.08
    weight = rng.standard_normal(mask.shape)
    weight[mask & (rng.random(mask.shape) < 0.3)] = 0.0
    spectrum = layer_spectrum(mask, weight)
    assert spectrum.edges == int(mask.sum())  # the weighted graph drops those edges, the mask graph does not
    assert_same(spectrum.as_dict(), oracle_spectrum(mask, weight, "fs23"), spectrum.sigma1, "zero weights")
    graph = build_layer_graph(mask, weight)
    before = graph.biadjacency.nnz
    assert graph.weighted.nnz < before and graph.biadjacency.nnz == before


def test_repeated_values_across_components_are_kept():
    # K(3, 3) twice: one graph of two identical components has sigma1 = sigma2 = 3; stars are norms.
    block = np.ones((3, 3))
    twice = sp.csr_matrix(sp.block_diag([block, block]))
    star = sp.csr_matrix(np.array([[3.0, 4.0, 0.0]]))
    stack = GraphStack.concatenate([GraphStack.of_matrix(twice), GraphStack.of_matrix(star)])
    values = stack_top(stack, 2)
    assert values[0] == pytest.approx([3.0, 3.0], abs=1e-12)
    assert values[1] == pytest.approx([5.0, 0.0], abs=1e-12)


def test_a_part_with_two_channels_gives_both_graphs():
    rng = np.random.default_rng(2)
    pattern = sp.csr_matrix(rng.random((300, 200)) < 0.03, dtype=float)
    weights = rng.random(pattern.nnz) + 0.1
    part = part_of(pattern, [0, 300], [0, 200], [(np.ones(pattern.nnz), 0), (weights, 1)])
    values = stack_top(GraphStack((part,), 2), 2)
    weighted = sp.csr_matrix((weights, pattern.indices, pattern.indptr), shape=pattern.shape).toarray()
    for graph, dense in ((0, pattern.toarray()), (1, weighted)):
        exact = np.linalg.svd(dense, compute_uv=False)[:2]
        assert values[graph] == pytest.approx(exact, abs=1e-9 * exact[0])


def random_connected_block(rng, rows, cols, density):
    block = (rng.random((rows, cols)) < density).astype(float)
    block[np.arange(rows), np.arange(rows) % cols] = 1.0  # every row and column wired,
    block[np.arange(cols) % rows, np.arange(cols)] = 1.0  # and a path through them: connected
    block[np.arange(rows - 1), (np.arange(rows - 1) + 1) % cols] = 1.0
    return block * (rng.random((rows, cols)) + 0.5)


def test_lockstep_lanczos_matches_dense_svd_block_by_block(monkeypatch):
    rng = np.random.default_rng(4)
    blocks = [
        random_connected_block(rng, 400, 300, 0.02),  # slow: a wide bulk
        np.ones((60, 70)),  # rank one: breaks down at once
        random_connected_block(rng, 80, 500, 0.05),
        random_connected_block(rng, 50, 60, 0.5),  # dense: converges fast
    ]
    compactions = []
    original = lanczos_module._State._compact
    monkeypatch.setattr(
        lanczos_module._State, "_compact", lambda self: compactions.append(1) or original(self)
    )
    matrix = sp.csr_matrix(sp.block_diag(blocks))
    got = batched_golub_kahan(
        matrix, np.array([b.shape[0] for b in blocks]), np.array([b.shape[1] for b in blocks]), 2
    )
    for values, block in zip(got, blocks):
        exact = np.linalg.svd(block, compute_uv=False)[:2]
        assert values == pytest.approx(exact, abs=1e-9 * exact[0])
    assert compactions, "blocks finishing early should have been cut out of the run"


def test_class_table_matches_a_loop_over_degrees():
    rng = np.random.default_rng(3)
    mask = rng.random((70, 9, 3, 3)) < 0.04
    graph = build_layer_graph(mask)
    table = class_table(graph, "fs23")
    dense = graph.biadjacency.toarray()
    degrees = dense.sum(axis=0).astype(int)
    assert table.degrees.tolist() == sorted(set(degrees.tolist()))
    for c, degree in enumerate(table.degrees):
        columns = np.flatnonzero(degrees == degree)
        rows = np.flatnonzero(dense[:, columns].any(axis=1))
        assert table.sizes[c] == columns.size and table.right_sizes[c] == rows.size
        assert table.class_rows[table.class_row_class == c].tolist() == rows.tolist()
        qualifies = degree >= 3 and columns.size >= 2 and columns.size * degree / rows.size > 1
        assert bool(table.qualifies[c]) == qualifies


def test_gram_lanczos_proves_well_separated_values_and_refuses_a_tiny_sigma2(monkeypatch):
    rng = np.random.default_rng(11)
    blocks = [random_connected_block(rng, 120, 500, 0.03), random_connected_block(rng, 200, 260, 0.05)]
    matrix = sp.csr_matrix(sp.block_diag(blocks))
    values, proven = gram_lanczos(matrix, np.array([120, 200]), np.array([500, 260]), 2)
    assert proven.all()
    for got, block in zip(values, blocks):
        exact = np.linalg.svd(block, compute_uv=False)[:2]
        assert got == pytest.approx(exact, abs=1e-9 * exact[0])
    # Nearly rank one: sigma2 ~ 1e-7 sigma1 lies below what A Aᵀ can resolve, so it is refused...
    nearly = np.outer(rng.random(150) + 1, rng.random(180) + 1) + 1e-6 * rng.random((150, 180))
    exact = np.linalg.svd(nearly, compute_uv=False)[:2]
    _, proven = gram_lanczos(sp.csr_matrix(nearly), np.array([150]), np.array([180]), 2)
    assert not proven[0]
    # ...and the stack's Lanczos route falls back to Golub–Kahan for it, exactly.
    monkeypatch.setattr(
        stack_module, "_dense_is_cheaper", lambda rows, cols, nnz: np.zeros(np.shape(rows), bool)
    )
    got = stack_top(GraphStack.of_matrix(sp.csr_matrix(nearly)), 2)[0]
    assert got == pytest.approx(exact, abs=1e-9 * exact[0])
    assert got[1] == pytest.approx(exact[1], rel=1e-3)


def test_large_lanczos_blocks_run_alone_with_the_same_values(monkeypatch):
    """Blocks of SEPARATE_EDGES edges or more leave the lockstep batch (no block-diagonal copy of
    their edges): with the threshold lowered so every Lanczos block runs alone, each layer's values
    are still the oracle's, and the routes are seen to be taken."""
    rng = np.random.default_rng(12)
    layers = mixed_layers() + [
        (rng.random(shape) < density, rng.standard_normal(shape), f"lanczos{index}")
        for index, (shape, density) in enumerate([((500, 700), 0.01), ((300, 900), 0.02)])
    ]
    batched = [s.as_dict() for s in layer_spectra(layers)]
    groups = []
    original = stack_module._Pool._solve_group
    monkeypatch.setattr(
        stack_module._Pool,
        "_solve_group",
        lambda self, entries: groups.append(len(entries)) or original(self, entries),
    )
    monkeypatch.setattr(stack_module, "SEPARATE_EDGES", 1)
    alone = [s.as_dict() for s in layer_spectra(layers)]
    assert groups and all(size == 1 for size in groups), groups
    for (mask, weight, name), got, before in zip(layers, alone, batched):
        want = oracle_spectrum(mask, weight, "fs23")
        scale = max(want["sigma1"], want["omega1"]) if not math.isnan(want["sigma1"]) else 1.0
        assert_same(got, want, scale if not math.isnan(scale) else 1.0, name)
        for field in SPECTRUM_FIELDS:
            a, b = before[field], got[field]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9, rel=1e-12), field


@pytest.mark.parametrize(
    "keep", [[True, False, True, False], [False, True, True, False], [True] * 4, [False, False, False, True]]
)
def test_cutting_finished_blocks_renumbers_columns_like_slicing(keep):
    sizes = [(5, 7), (4, 3), (6, 9), (1, 4)]  # the last: one row
    blocks = [sp.random(r, c, 0.5, random_state=k, format="csr") for k, (r, c) in enumerate(sizes, 1)]
    matrix = sp.csr_matrix(sp.block_diag(blocks))
    keep = np.array(keep)
    rows, cols = np.array([r for r, _ in sizes]), np.array([c for _, c in sizes])
    got = lanczos_module._kept_blocks(matrix, rows, cols, keep)
    want = matrix[np.repeat(keep, rows)][:, np.repeat(keep, cols)]
    assert got.shape == want.shape and (got != want).nnz == 0


def test_a_large_layer_peaks_below_fifty_six_bytes_per_kept_weight():
    """Memory per kept weight of a Wanda-style row-wise 50% layer with weights (tracemalloc counts
    numpy's buffers, deterministic where timing is not). Before int32 per-edge arrays, one matrix of
    ones and no block-diagonal copy of a large block: 114 bytes; then about 82 (csgraph's copies of
    the pattern, the class table's per-edge arrays, a CSC copy per channel, an array of ones per
    column group, both channels transposed at once); now about 48."""
    import tracemalloc

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((600, 1700)).astype(np.float32)
    order = np.argsort(-np.abs(weight), axis=1)[:, : weight.shape[1] // 2]
    mask = np.zeros(weight.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    edges = int(mask.sum())
    tracemalloc.start()
    try:
        layer_spectra([(mask, weight, "down_proj")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / edges < 56, f"{peak / edges:.1f} bytes per kept weight"


def test_a_layer_whose_one_class_is_its_whole_graph_solves_that_graph_once(monkeypatch):
    """A dense layer and a row-wise N:M mask have one degree class on the input side: the class is
    the full graph, so the stack holds only the full graph (mask and weights), and the class reads
    its values. Their metrics are the oracle's."""
    from fullspectrum.spectrum import plan as plan_module

    rng = np.random.default_rng(11)
    dense = np.ones((24, 8, 3, 3))
    half = np.zeros((40, 64))  # each input unit keeps 20 of its 40 outputs: one degree class
    for column in range(64):
        half[rng.choice(40, 20, replace=False), column] = 1
    graphs = []
    original = plan_module.stack_top

    def spied(stack, want, backend=None):
        graphs.append(stack.n_graphs)
        return original(stack, want, backend)

    monkeypatch.setattr(plan_module, "stack_top", spied)
    for mask in (dense, half):
        weight = rng.standard_normal(mask.shape)
        got = layer_spectrum(mask, weight).as_dict()
        want = oracle_spectrum(mask, weight, "fs23")
        assert got["n_classes"] == 1
        assert_same(got, want, max(want["sigma1"], want["omega1"]), "whole class")
    assert graphs == [2, 2], graphs
