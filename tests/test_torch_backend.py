"""The torch backend (``torch_backend.py``) on the CPU equals the numpy engine to ``1e-9 · max(1, value)``.

The GPU runs the same code (``tests/test_gpu.py`` checks it there); here torch runs on
the CPU, through ``device="torch"``, with both of its ways of taking per-block sums.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectra, layer_spectrum
from fullspectrum.spectrum import torch_backend as tb
from fullspectrum.spectrum.backends import backend_for
from fullspectrum.spectrum.gram import gram_top
from fullspectrum.spectrum.lanczos import batched_golub_kahan
from fullspectrum.spectrum.stack import dense_top
from tests.test_spectrum_oracle import SHAPES, random_case

TOLERANCE = 1e-9


def assert_same_spectrum(got, want, context: str) -> None:
    for name in SPECTRUM_FIELDS:
        g, w = getattr(got, name), getattr(want, name)
        if isinstance(w, bool | int):
            assert g == w, f"{context}: {name} = {g}, numpy says {w}"
        elif math.isnan(w):
            assert math.isnan(g), f"{context}: {name} = {g}, numpy says NaN"
        else:
            assert abs(g - w) <= TOLERANCE * max(1.0, abs(w)), f"{context}: {name} = {g}, numpy says {w}"


@pytest.fixture
def lanczos_calls(monkeypatch) -> list[int]:
    """Block counts of every torch ``golub_kahan`` call: proof that the Lanczos path ran."""
    calls: list[int] = []
    original = tb.TorchBackend.golub_kahan

    def spy(self, matrix, row_sizes, col_sizes, want):
        calls.append(len(row_sizes))
        return original(self, matrix, row_sizes, col_sizes, want)

    monkeypatch.setattr(tb.TorchBackend, "golub_kahan", spy)
    return calls


@pytest.mark.parametrize("convention", ["fs23", "r23"])
def test_every_field_equals_numpy_on_the_oracle_masks(convention):
    for index in range(12 * len(SHAPES)):
        mask, weight = random_case(index)
        want = layer_spectrum(mask, weight, convention=convention)
        got = layer_spectrum(mask, weight, convention=convention, device="torch")
        assert_same_spectrum(got, want, f"case {index} {mask.shape} {convention}")


def test_larger_sparse_layers_take_the_lanczos_path_and_equal_numpy(lanczos_calls):
    rng = np.random.default_rng(7)
    for density in (0.01, 0.03):
        mask = rng.random((300, 64, 3, 3)) < density
        weight = rng.standard_normal(mask.shape)
        want = layer_spectrum(mask, weight)
        assert_same_spectrum(layer_spectrum(mask, weight, device="torch"), want, f"density {density}")
    assert len(lanczos_calls) == 2 and min(lanczos_calls) >= 1


def test_zero_kept_weights_and_a_collapsed_mask_equal_numpy():
    rng = np.random.default_rng(11)
    mask = rng.random((200, 48, 3, 3)) < 0.05
    weight = rng.standard_normal(mask.shape)
    weight[mask & (rng.random(mask.shape) < 0.2)] = 0.0  # kept, but exactly 0: |W ⊙ M| has its own pattern
    assert_same_spectrum(layer_spectrum(mask, weight, device="torch"), layer_spectrum(mask, weight), "zeros")
    collapsed = np.zeros((8, 4, 3, 3), dtype=bool)
    got = layer_spectrum(collapsed, rng.standard_normal(collapsed.shape), device="torch")
    assert_same_spectrum(got, layer_spectrum(collapsed, np.ones(collapsed.shape)), "collapsed")
    assert got.edges == 0 and math.isnan(got.sigma1)


def test_many_layers_in_one_batch_equal_numpy(lanczos_calls):
    rng = np.random.default_rng(12)
    shapes = [(300, 64, 3, 3), (256, 128, 3, 3), (512, 256, 1, 1), (10, 512), (96, 200)]
    layers = [
        (rng.random(s) < d, rng.standard_normal(s), f"l{i}")
        for i, (s, d) in enumerate(zip(shapes, (0.01, 0.01, 0.02, 0.3, 0.1)))
    ]
    for got, want, (_, _, name) in zip(layer_spectra(layers, device="torch"), layer_spectra(layers), layers):
        assert_same_spectrum(got, want, name)
    assert lanczos_calls and lanczos_calls[0] > 1  # several blocks in one lockstep run


def connected_block(rng, rows: int, cols: int, density: float, weighted: bool) -> np.ndarray:
    """A random block made connected by a zigzag through every row and column."""
    block = rng.random((rows, cols)) < density
    k = np.arange(max(rows, cols))
    block[k % rows, k % cols] = block[k % rows, (k + 1) % cols] = True
    return block * (rng.random((rows, cols)) + 0.1) if weighted else block.astype(float)


def block_diagonal(rng, weighted: bool) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, list[np.ndarray]]:
    sizes = [(60, 80), (120, 50), (300, 200), (70, 70), (40, 400), (90, 110)]
    blocks = [connected_block(rng, r, c, 0.05, weighted) for r, c in sizes]
    blocks.append(np.ones((50, 60)))  # rank one: its recurrence breaks down at once
    matrix = sp.block_diag([sp.csr_matrix(b) for b in blocks], format="csr")
    rows = np.array([b.shape[0] for b in blocks])
    cols = np.array([b.shape[1] for b in blocks])
    return matrix, rows, cols, blocks


@pytest.mark.parametrize("segmented", [False, True], ids=["per-block BLAS", "segmented sums"])
@pytest.mark.parametrize("weighted", [False, True], ids=["mask", "weights"])
def test_golub_kahan_equals_numpy_and_the_dense_svd_on_connected_blocks(segmented, weighted, monkeypatch):
    compactions = []
    original = tb._State._compact
    monkeypatch.setattr(
        tb._State, "_compact", lambda self: (compactions.append(self.active.size), original(self))
    )
    matrix, rows, cols, blocks = block_diagonal(np.random.default_rng(int(weighted)), weighted)
    backend = tb.TorchBackend("cpu", segmented=segmented)
    for want in (2, 3):
        got = backend.golub_kahan(matrix, rows, cols, want)
        expected = batched_golub_kahan(matrix, rows, cols, want)
        exact = np.array([np.pad(np.linalg.svd(b, compute_uv=False), (0, want))[:want] for b in blocks])
        assert got.shape == (len(blocks), want)
        for reference in (expected, exact):
            assert np.all(np.abs(got - reference) <= TOLERANCE * np.maximum(1.0, reference))
    assert got[-1, 1] == 0.0  # the rank-one block has no second value
    assert compactions  # finished blocks were cut out of the operator on the way


def test_dense_top_equals_numpy_and_falls_back_where_the_gram_bound_fails():
    rng = np.random.default_rng(13)
    stack = (rng.random((6, 9, 5)) < 0.4) * rng.random((6, 9, 5))
    stack[0] = rng.random((9, 5)) < 0.4  # a 0/1 mask: exact Gram products
    stack[1] = 0.0
    stack[1, :2, :2] = [[1.0, 1.0], [1.0, 1.0 + 2e-9]]  # sigma2 ≈ 1e-9: squared, it drowns in rounding
    tiny = np.linalg.svd(stack[1], compute_uv=False)[1]
    _, certified = tb._gram_top(torch.from_numpy(stack), 2)
    assert not certified[1] and certified[0]  # the bound refuses only what it cannot prove
    backend = tb.TorchBackend("cpu")
    for matrices in (stack, stack.transpose(0, 2, 1)):  # Gram on either side
        got, want = backend.dense_top(matrices, 2), dense_top(matrices, 2)
        assert np.all(np.abs(got - want) <= TOLERANCE * np.maximum(1.0, want))
        assert got[1, 1] == pytest.approx(tiny, rel=1e-6)  # the SVD fallback, not the Gram value
    assert backend.dense_top(np.zeros((0, 4, 3)), 2).shape == (0, 2)


def test_the_gram_bound_certifies_what_numpy_certifies():
    rng = np.random.default_rng(14)
    edge = np.zeros((9, 5))
    # sigma2 ≈ 5e-6: refused only because the products of non-integer entries are inexact.
    edge[:2, :2] = [[0.5, 0.5], [0.5, 0.5 + 1e-5]]
    for kind in ("mask", "weighted", "signed"):
        mask = rng.random((40, 9, 5)) < 0.5
        stack = {"mask": mask * 1.0, "weighted": mask * rng.random(mask.shape)}.get(kind)
        stack = rng.standard_normal(mask.shape) if stack is None else stack
        if kind == "weighted":
            stack[0] = edge
        _, want = gram_top(stack, 2)
        _, got = tb._gram_top(torch.from_numpy(stack), 2)
        assert np.array_equal(got.numpy(), want), kind
        assert want.sum() >= 20 and (kind != "weighted" or not want[0])


def test_a_cuda_device_without_cuda_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(FullSpectrumError, match="no CUDA device is available") as error:
            backend_for(device)
        assert "\n" not in str(error.value)
    with pytest.raises(FullSpectrumError, match="no CUDA device"):
        layer_spectrum(np.ones((3, 4)), device="cuda")
    with pytest.raises(FullSpectrumError, match="not a torch device"):
        backend_for("cuda:x")


def test_the_torch_backend_names_its_device_and_restores_the_thread_count():
    backend = backend_for("torch")
    assert isinstance(backend, tb.TorchBackend) and backend.name == "torch:cpu"
    threads = torch.get_num_threads()
    backend.dense_top(np.ones((1, 3, 2)), 2)
    assert torch.get_num_threads() == threads
