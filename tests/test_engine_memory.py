"""What keeps a large layer's memory down, checked for the values it must not change.

The engine holds no per-edge array it can do without: components are found by label passes
over slices of rows (numbered as ``scipy.sparse.csgraph`` numbers them, so every later step
sees the same components in the same order), half-precision weights are never widened whole,
and a sharded model's batch is solved before the next weight is read when no later layer can
join it (its progress still follows ``edge_batches``). The peak per kept weight itself is
guarded in ``test_batched_engine.py``.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import save_file

from fullspectrum.checkpoints import sharded
from fullspectrum.spectrum import components as components_module
from fullspectrum.spectrum import layer_spectrum
from fullspectrum.spectrum.components import connected_parts
from fullspectrum.spectrum.graph import build_layer_graph, column_counts, row_slices, to_numpy
from fullspectrum.spectrum.network import analyze, edge_batches
from fullspectrum.spectrum.stack import NUMPY


def path_graph(n: int) -> sp.csr_matrix:
    """Rows and columns alternating along one path of ``2n - 1`` edges (diameter ``2n - 1``)."""
    edges = np.arange(2 * n - 1)
    return sp.csr_matrix((np.ones(edges.size), (edges // 2, (edges + 1) // 2)), shape=(n, n))


def graphs():
    rng = np.random.default_rng(0)
    cases = [sp.random(*rng.integers(1, 60, 2), d, format="csr", random_state=k)
             for k, d in enumerate([0.005, 0.02, 0.05, 0.2, 0.6] * 8)]  # fmt: skip
    blocks = sp.block_diag([sp.random(7, 9, 0.4, random_state=k) for k in range(6)], format="csr")
    cases += [blocks, path_graph(150), sp.csr_matrix((5, 4))]
    for case in cases:
        case.sort_indices()
    return cases


@pytest.mark.parametrize("passes", [24, 1], ids=["label passes", "csgraph fallback"])
def test_components_are_numbered_as_csgraph_numbers_them(passes, monkeypatch):
    monkeypatch.setattr(components_module, "_LABEL_PASSES", passes)
    for case in graphs():
        got = connected_parts(case.indptr, case.indices, case.shape[1])
        want = components_module._csgraph_parts(case.indptr, case.indices, case.shape[1])
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[2], want[2])


def test_a_long_chain_falls_back_to_csgraph(monkeypatch):
    calls = []
    fallback = components_module._csgraph_parts
    monkeypatch.setattr(components_module, "_csgraph_parts", lambda *a: calls.append(1) or fallback(*a))
    chain = path_graph(150)
    assert connected_parts(chain.indptr, chain.indices, 150)[0] == 1 and not calls
    monkeypatch.setattr(components_module, "_LABEL_PASSES", 1)
    assert connected_parts(chain.indptr, chain.indices, 150)[0] == 1 and calls == [1]


def test_row_slices_cover_every_row_and_column_counts_are_bincount():
    matrix = sp.random(300, 50, 0.3, format="csr", random_state=1)
    slices = row_slices(matrix.indptr, 97)
    assert slices[0][0] == 0 and slices[-1][1] == 300
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
    assert all(matrix.indptr[b] - matrix.indptr[a] <= 97 + 50 for a, b in slices)
    np.testing.assert_array_equal(
        column_counts(matrix.indices, 50, 97), np.bincount(matrix.indices, minlength=50)
    )


@pytest.mark.parametrize(("dtype", "read_as"), [(torch.float16, np.float16), (torch.bfloat16, np.float32)])
def test_half_precision_weights_are_not_widened_whole(dtype, read_as):
    weight = (torch.randn(40, 30, generator=torch.Generator().manual_seed(0)) * 3).to(dtype)
    assert to_numpy(weight, name="w").dtype == read_as  # exact: float32 holds bfloat16
    mask = weight != 0
    graph = build_layer_graph(mask, weight)
    want = weight.double().abs()[mask].numpy()  # row-major: CSR order
    np.testing.assert_array_equal(graph.kept_weights, want)
    assert layer_spectrum(mask, weight).omega1 == layer_spectrum(mask, weight.double()).omega1


def write_layers(folder, sizes) -> list[int]:
    """One shard of ``up_proj`` layers of the given ``(out, in, density)``; their kept weights."""
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for k, (out, inp, density) in enumerate(sizes):
        weight = torch.randn(out, inp, generator=generator)
        tensors[f"model.layers.{k}.mlp.up_proj.weight"] = weight * (
            torch.rand(out, inp, generator=generator) < density
        )
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    return [int(t.count_nonzero()) for t in tensors.values()]


SIZES = [(20, 30, 0.5), (10, 10, 0.0), (40, 20, 0.3), (5, 8, 0.0), (6, 6, 0.9), (30, 30, 0.2), (8, 8, 0.0)]


def test_sharded_batches_and_progress_follow_edge_batches(tmp_path, monkeypatch):
    edges = write_layers(tmp_path / "model", SIZES)
    reference, calls = None, []
    for limit in [1, 100, 300, edges[0], edges[0] + edges[2], 10**9]:
        monkeypatch.setattr(NUMPY, "batch_edges", limit)
        calls.clear()
        table = analyze(tmp_path / "model", progress=lambda done, total: calls.append((done, total)))
        assert calls == [(batch.stop, len(SIZES)) for batch in edge_batches(edges, limit)], limit
        if reference is None:
            reference = table
        pd.testing.assert_frame_equal(table, reference)


def test_a_full_sharded_batch_is_solved_before_the_next_weight_is_read(tmp_path, monkeypatch):
    write_layers(tmp_path / "model", SIZES)
    monkeypatch.setattr(NUMPY, "batch_edges", 1)  # every layer with edges fills its batch
    read, make, held, alive = sharded.read_tensor, sharded.records_of_weight, [], []

    def reading(entry):
        gc.collect()
        alive.append(sum(ref() is not None for ref in held))
        return read(entry)

    def making(*args, **kwargs):
        records = make(*args, **kwargs)
        held.extend(weakref.ref(record.weight) for record in records)
        return records

    monkeypatch.setattr(sharded, "read_tensor", reading)
    monkeypatch.setattr(sharded, "records_of_weight", making)
    analyze(tmp_path / "model")
    # a layer without edges does not fill its batch, so it is still held when the next is read
    assert alive == [0, 0, 1, 0, 1, 0, 0]
