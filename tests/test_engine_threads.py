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


def test_tasks_that_hold_the_gil_run_here_and_the_others_anywhere(monkeypatch):
    monkeypatch.setattr(threads, "engine_threads", lambda: 2)
    here = threading.current_thread().name
    started = threading.Event()

    def waits():  # a long shared task: the other thread takes it while this one works
        started.set()
        threading.Event().wait(0.1)
        return threading.current_thread().name

    def own():
        assert started.wait(5)
        return threading.current_thread().name

    names = threads.run_all([waits, own, own], [True, False, False])
    assert names[1] == names[2] == here and names[0] != here
    assert threads.run_all([own, own], [False, False]) == [here, here]  # nothing shared: no thread


def test_one_thread_runs_the_tasks_here(monkeypatch):
    monkeypatch.setattr(threads, "engine_threads", lambda: 1)
    here = threading.current_thread().name
    assert threads.run_all([lambda: threading.current_thread().name] * 2) == [here, here]


def test_engine_threads_keep_to_the_process_s_budget(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a spectra worker's, a sweep point's
    assert threads.engine_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # a PAGS worker's
    assert threads.engine_threads() == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    assert 1 <= threads.engine_threads() <= threads.MAX_ENGINE_THREADS


def resnet_like_layer(rng, density=0.18):
    weight = rng.standard_normal((512, 256, 3, 3)).astype(np.float32)  # ResNet-18's layer4.0.conv1
    mask = rng.random(weight.shape) < density
    return mask, weight


def test_a_layer_s_solves_side_by_side_give_the_same_bits(monkeypatch):
    load_compiled_kernels()
    mask, weight = resnet_like_layer(np.random.default_rng(0))
    assert stack.PARALLEL_MIN_EDGES <= mask.sum() * 3 <= stack.PARALLEL_EDGES  # full graph and classes
    ran_here = []
    original = threads.run_all
    monkeypatch.setattr(threads, "engine_threads", lambda: 2)
    monkeypatch.setattr(
        stack, "run_all", lambda tasks, shared=None: ran_here.append(list(shared)) or original(tasks, shared)
    )
    side_by_side = layer_spectrum(mask, weight)
    assert ran_here and any(ran_here[0]) and not all(ran_here[0])  # Lanczos runs beside dense solves
    monkeypatch.setattr(threads, "engine_threads", lambda: 1)
    assert layer_spectrum(mask, weight) == side_by_side
    # The one-by-one route (a larger stack's) runs the small blocks in one lockstep run, not one a
    # channel: the same values within the engine's bound, not the same bits.
    monkeypatch.setattr(stack, "PARALLEL_EDGES", 0)
    one_by_one = layer_spectrum(mask, weight)
    for name in ("sigma1", "sigma2", "omega1", "omega2", "delta_r_imdb", "lambda_imsg"):
        assert getattr(one_by_one, name) == pytest.approx(
            getattr(side_by_side, name), abs=1e-9 * one_by_one.sigma1
        )


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


def test_the_compiled_lapack_call_gives_scipy_s_values_to_the_last_bit():
    from fullspectrum.spectrum.gram import _top_eigenvalues
    from fullspectrum.spectrum.kernels import compiled_gram_tops

    kernel = compiled_gram_tops()
    rng = np.random.default_rng(2)
    for side, want in ((48, 2), (101, 2), (130, 3)):
        blocks = rng.random((5, side, 2 * side)) * (rng.random((5, side, 2 * side)) < 0.3)
        grams = blocks @ blocks.transpose(0, 2, 1)
        expected = np.stack([_top_eigenvalues(g, want) for g in grams.copy()])
        got = np.empty((5, want))
        kernel(grams.copy(), want, got)
        assert np.array_equal(got, expected)
        exact = np.linalg.eigvalsh(grams)[:, ::-1][:, :want]
        assert np.abs(got - exact).max() <= 1e-12 * exact.max()
