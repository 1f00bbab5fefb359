"""The engine's own threads (``threads.run_all``): a layer's solves side by side, a large dense
product's row pieces side by side, and the values the same bits as one by one."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum import layer_spectrum, stack, threads
from fullspectrum.spectrum.dense_products import PRODUCT_PIECES, dense_product
from fullspectrum.spectrum.gram_lanczos import load_compiled_kernels


def test_run_all_gives_each_result_in_order_and_nests_in_its_own_thread(monkeypatch):
    monkeypatch.setattr(threads, "engine_threads", lambda: 2)
    seen = []

    def task(k):
        seen.append(threading.current_thread().name)
        inner = threads.run_all([lambda: threading.current_thread().name] * 3)
        assert set(inner) == {threading.current_thread().name}  # nested: in the task's own thread
        return k * k

    assert threads.run_all([lambda k=k: task(k) for k in range(8)]) == [k * k for k in range(8)]
    assert len(seen) == 8
    assert threads.run_all([]) == []


def test_run_all_raises_a_failure_once_every_task_has_ended(monkeypatch):
    monkeypatch.setattr(threads, "engine_threads", lambda: 2)
    ended = []

    def slow():
        threading.Event().wait(0.05)
        ended.append("slow")

    def fails():
        raise ValueError("piece 1 failed")

    with pytest.raises(ValueError, match="piece 1 failed"):
        threads.run_all([slow, fails, slow])
    assert ended == ["slow", "slow"]


def test_one_thread_runs_the_tasks_here(monkeypatch):
    monkeypatch.setattr(threads, "engine_threads", lambda: 1)
    here = threading.current_thread().name
    assert threads.run_all([lambda: threading.current_thread().name] * 2) == [here, here]


def test_engine_threads_keep_to_torch_s_budget(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert threads.engine_threads() == 1


def resnet_like_layer(rng, density=0.2):
    weight = rng.standard_normal((256, 128, 3, 3)).astype(np.float32)
    mask = rng.random(weight.shape) < density
    return mask, weight


def test_a_layer_s_solves_side_by_side_give_the_same_bits(monkeypatch):
    load_compiled_kernels()
    mask, weight = resnet_like_layer(np.random.default_rng(0))
    assert stack.PARALLEL_MIN_EDGES <= mask.sum() * 3 <= stack.PARALLEL_EDGES  # full graph and classes
    ran_here = []
    original = threads.run_all
    monkeypatch.setattr(threads, "engine_threads", lambda: 2)
    monkeypatch.setattr(stack, "run_all", lambda tasks: ran_here.append(len(tasks)) or original(tasks))
    side_by_side = layer_spectrum(mask, weight)
    assert ran_here and ran_here[0] >= 3  # the column solves and the Lanczos runs were handed over
    monkeypatch.setattr(threads, "engine_threads", lambda: 1)
    assert layer_spectrum(mask, weight) == side_by_side
    monkeypatch.setattr(stack, "PARALLEL_EDGES", 0)  # the sequential route, made and let go in turn
    assert layer_spectrum(mask, weight) == side_by_side


def test_a_dense_product_is_the_same_bits_on_any_thread_count(monkeypatch):
    assert load_compiled_kernels()
    rng = np.random.default_rng(1)
    for values in (np.float32, None):  # float32 weights, and a 0/1 block held as bytes
        block = rng.random((1030, 1100)) < 0.5  # rows not a multiple of the pieces' 4-row passes
        matrix = sp.csr_matrix(block * rng.random(block.shape).astype(values) if values else block * 1.0)
        products = dense_product(matrix)
        assert products is not None and len(products.exact.pieces) == PRODUCT_PIECES
        q = rng.standard_normal(matrix.shape[0])
        monkeypatch.setattr(threads, "engine_threads", lambda: 1)
        alone = products.exact(q)
        monkeypatch.setattr(threads, "engine_threads", lambda: 3)
        assert np.array_equal(products.exact(q), alone)
        expected = matrix @ (matrix.T @ q)
        assert np.abs(alone - expected).max() <= 1e-12 * np.abs(expected).max()
