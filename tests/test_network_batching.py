"""``analyze`` in the engine's batches (``fullspectrum.spectrum.network``): the batches, and that they
change nothing but the grouping: the table is one ``layer_spectra`` call's, and a per-layer loop's."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

import fullspectrum.spectrum.network as network
from fullspectrum.checkpoints import load_sparse_checkpoint
from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectra, layer_spectrum
from fullspectrum.spectrum.network import analyze, batch_edges, edge_batches
from fullspectrum.spectrum.stack import NUMPY

NAMES = ["0", "2", "4", "7", "9"]


def pruned_net() -> nn.Module:
    """Three convs and two linears of different sizes, pruned at different amounts (one kept weight 0)."""
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Conv2d(3, 12, 3),
        nn.ReLU(),
        nn.Conv2d(12, 16, 3),
        nn.ReLU(),
        nn.Conv2d(16, 16, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16, 40),
        nn.ReLU(),
        nn.Linear(40, 10),
    )
    for name, amount in zip(NAMES, (0.3, 0.7, 0.5, 0.8, 0.4)):
        prune.random_unstructured(net.get_submodule(name), "weight", amount=amount)
    with torch.no_grad():
        layer = net.get_submodule("2")
        kept = layer.weight_mask.flatten().nonzero()[0].item()
        layer.weight_orig.view(-1)[kept] = 0.0  # a kept weight that is exactly 0
    return net


def per_layer(net: nn.Module) -> dict[str, dict]:
    """The oracle: one ``layer_spectrum`` call per layer."""
    return {
        name: layer_spectrum(
            net.get_submodule(name).weight_mask, net.get_submodule(name).weight_orig.detach(), name=name
        ).as_dict()
        for name in NAMES
    }


def edges_of(net: nn.Module) -> list[int]:
    return [int(net.get_submodule(name).weight_mask.sum()) for name in NAMES]


def assert_same_spectrum(got: dict, expected: dict, where: str) -> None:
    """Counts and flags exactly; numbers to the engine's batching tolerance (far inside SPEC §1's)."""
    for field in SPECTRUM_FIELDS:
        a, b = got[field], expected[field]
        if isinstance(b, float) and math.isnan(b):
            assert math.isnan(a), (where, field)
        elif isinstance(b, float):
            assert a == pytest.approx(b, rel=0, abs=1e-9 * max(1.0, abs(b))), (where, field)
        else:
            assert a == b, (where, field)


# -- the batches ----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(edges=st.lists(st.integers(0, 50), max_size=30), limit=st.integers(1, 120))
def test_batches_cover_the_layers_in_order_and_are_as_large_as_the_limit_allows(edges, limit):
    batches = edge_batches(edges, limit)
    assert [i for batch in batches for i in batch] == list(range(len(edges)))
    assert all(batch.step == 1 and len(batch) >= 1 for batch in batches)
    for batch in batches:
        assert sum(edges[i] for i in batch) <= limit or len(batch) == 1  # only a big layer goes over
    for batch, following in zip(batches, batches[1:]):
        assert sum(edges[i] for i in batch) + edges[following.start] > limit  # no room for the next one


def test_the_batch_size_is_the_engines():
    assert batch_edges() == batch_edges("cpu") == NUMPY.batch_edges
    with pytest.raises(FullSpectrumError, match="tpu"):
        batch_edges("tpu")


def small_batches(monkeypatch, limit: int) -> None:
    """The engine batches at ``limit`` kept weights (analyze's batches follow it)."""
    monkeypatch.setattr(NUMPY, "batch_edges", limit)


# -- analyze: the table of a per-layer loop ---------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 400, 10**9], ids=["per layer", "mixed", "one batch"])
def test_analyze_equals_a_per_layer_loop_whatever_the_batches(monkeypatch, limit):
    net = pruned_net()
    batches = edge_batches(edges_of(net), limit)
    expected_count = {1: len(NAMES), 10**9: 1}.get(limit)
    if expected_count is None:
        assert 1 < len(batches) < len(NAMES)  # some batches hold several layers, not all
    else:
        assert len(batches) == expected_count
    calls = []
    small_batches(monkeypatch, limit)
    monkeypatch.setattr(
        network, "layer_spectra", lambda jobs, **kw: calls.append(len(jobs)) or layer_spectra(jobs, **kw)
    )
    table = analyze(net)
    assert calls == [len(batch) for batch in batches]  # one engine call per batch
    layers = [(net.get_submodule(n).weight_mask, net.get_submodule(n).weight_orig.detach(), n) for n in NAMES]
    at_once = layer_spectra(layers)  # the engine's own batches: exactly the same values
    assert exactly_equal(table, at_once)
    expected = per_layer(net)
    assert list(table["layer"]) == NAMES
    for row in table.to_dict("records"):
        assert_same_spectrum(row, expected[row["layer"]], row["layer"])


def exactly_equal(table: pd.DataFrame, spectra) -> bool:
    """The table's fields are exactly the spectra's (NaN where they are NaN)."""
    for row, spectrum in zip(table.to_dict("records"), spectra, strict=True):
        for field, value in spectrum.as_dict().items():
            same = row[field] == value or (
                isinstance(value, float) and math.isnan(value) and math.isnan(row[field])
            )
            if not same:
                return False
    return True


def test_a_checkpoint_file_gives_exactly_the_table_of_the_checkpoint_in_memory(tmp_path, monkeypatch):
    """Read from a file, layers are let go batch by batch: the same table as with every layer held."""
    net = pruned_net()
    masks = {f"{n}.weight": net.get_submodule(n).weight_mask.bool() for n in NAMES}
    weights = {f"{n}.weight": net.get_submodule(n).weight_orig.detach().clone() for n in NAMES}
    path = save_mask_checkpoint(tmp_path / "masks.pt", masks, weights, {"generator": "random"})
    small_batches(monkeypatch, 400)
    from_file = analyze(path)
    in_memory = analyze(load_sparse_checkpoint(path))
    pd.testing.assert_frame_equal(from_file, in_memory, check_exact=True)
    expected = per_layer(net)
    for row in from_file.to_dict("records"):
        assert_same_spectrum(row, expected[row["layer"]], row["layer"])


def test_a_checkpoint_read_from_a_file_lets_go_of_each_batch_once_it_is_solved(tmp_path, monkeypatch):
    net = pruned_net()
    masks = {f"{n}.weight": net.get_submodule(n).weight_mask.bool() for n in NAMES}
    weights = {f"{n}.weight": net.get_submodule(n).weight_orig.detach().clone() for n in NAMES}
    path = save_mask_checkpoint(tmp_path / "masks.pt", masks, weights, {"generator": "random"})
    read = network.load_sparse_checkpoint
    held: dict[str, weakref.ref] = {}

    def load(source):
        checkpoint = read(source)
        held.update({layer.name: weakref.ref(layer.weight) for layer in checkpoint.layers})
        return checkpoint

    def progress(done: int, total: int) -> None:
        gc.collect()
        alive.append([name for name in NAMES if held[name]() is not None])

    alive: list[list[str]] = []
    monkeypatch.setattr(network, "load_sparse_checkpoint", load)
    small_batches(monkeypatch, 400)
    analyze(path, progress=progress)
    batches = edge_batches(edges_of(net), 400)
    assert alive == [NAMES[batch.stop :] for batch in batches]  # only the layers still to solve are held


@pytest.mark.parametrize("limit", [1, 400, 10**9])
def test_progress_is_called_after_each_batch_and_ends_at_the_total(monkeypatch, limit):
    net = pruned_net()
    small_batches(monkeypatch, limit)
    calls = []
    analyze(net, progress=lambda done, total: calls.append((done, total)))
    batches = edge_batches(edges_of(net), limit)
    assert calls == [(batch.stop, len(NAMES)) for batch in batches]
    assert calls[-1] == (len(NAMES), len(NAMES))


def test_a_collapsed_layer_in_a_batch_keeps_the_collapsed_values(monkeypatch):
    net = pruned_net()
    with torch.no_grad():
        net.get_submodule("4").weight_mask.zero_()
    small_batches(monkeypatch, 10**9)
    table = analyze(net).set_index("layer")
    assert table.loc["4", "edges"] == 0 and np.isnan(table.loc["4", "sigma1"])
    expected = per_layer(net)
    for name in NAMES:
        assert_same_spectrum(table.loc[name].to_dict(), expected[name], name)
