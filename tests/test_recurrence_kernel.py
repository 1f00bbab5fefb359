"""The compiled lockstep recurrence (``gram_lanczos.recurrence_kernel``) is the numpy one: the same
values, proven, for blocks that finish at different steps, with or without numba."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum import gram_lanczos as gram_lanczos_module
from fullspectrum.spectrum.gram_lanczos import gram_lanczos
from tests.test_batched_engine import random_connected_block as connected_block


@pytest.mark.parametrize("vector", [False, True])
@pytest.mark.parametrize("values", ["binary", "float64", "float32"])
def test_the_compiled_recurrence_gives_the_numpy_one(monkeypatch, values, vector):
    """Three routes, one answer: whole runs of compiled steps (products included, their sums
    reassociated or not, the values read as float32 where they all are), the compiled recurrence
    after scipy's products, and numpy alone; with blocks that break down within a compiled run (2 and
    3 rows) and blocks frozen while the others go on."""
    assert gram_lanczos_module.load_compiled_kernels(), "numba comes with umap-learn"
    assert gram_lanczos_module.recurrence_kernel() is not None
    assert gram_lanczos_module.steps_kernel() is not None
    monkeypatch.setattr(gram_lanczos_module, "vector_products", lambda: vector)
    rng = np.random.default_rng(7)
    two_rows = np.array([[1, 1, 1, 0, 1, 0, 1], [0, 1, 1, 1, 0, 1, 1]])
    blocks = [
        connected_block(rng, 150, 600, 0.02),  # slow: a wide bulk
        connected_block(rng, 40, 50, 0.6),  # dense: finishes early (the run is cut down to the rest)
        connected_block(rng, 30, 45, 0.2),
        connected_block(rng, 300, 320, 0.03),  # long enough to skip updates while orthogonal
        two_rows * rng.uniform(0.5, 1, two_rows.shape),  # breaks down at step 2
        connected_block(rng, 3, 5, 0.8),  # breaks down at its third step
    ]
    if values == "binary":
        blocks = [(b != 0).astype(float) for b in blocks]
    elif values == "float32":  # a checkpoint's weights
        blocks = [b.astype(np.float32).astype(float) for b in blocks]
    matrix = sp.csr_matrix(sp.block_diag(blocks))
    narrow = gram_lanczos_module.narrow_operator(matrix, values == "binary")
    assert narrow[1].dtype == np.uint16  # a few thousand columns
    assert narrow[2].dtype == (np.float32 if values == "float32" else np.float64)
    rows, cols = np.array([b.shape[0] for b in blocks]), np.array([b.shape[1] for b in blocks])
    compiled, proven = gram_lanczos(matrix, rows, cols, 2)
    monkeypatch.setattr(gram_lanczos_module, "steps_kernel", lambda: None)
    recurrence_only, recurrence_proven = gram_lanczos(matrix, rows, cols, 2)
    monkeypatch.setattr(gram_lanczos_module, "recurrence_kernel", lambda: None)
    plain, plain_proven = gram_lanczos(matrix, rows, cols, 2)
    assert proven.all() and recurrence_proven.all() and plain_proven.all()
    for got, recurrence_got, numpy_got, block in zip(compiled, recurrence_only, plain, blocks):
        exact = np.linalg.svd(block, compute_uv=False)[:2]
        assert got == pytest.approx(exact, abs=1e-9 * exact[0], rel=0)
        assert got == pytest.approx(numpy_got, abs=1e-11 * exact[0], rel=0)
        assert recurrence_got == pytest.approx(numpy_got, abs=1e-11 * exact[0], rel=0)


def test_compiled_steps_run_many_steps_a_call(monkeypatch):
    """The compiled route takes whole stretches of steps in one call, not one call a step."""
    assert gram_lanczos_module.load_compiled_kernels()
    kernel = gram_lanczos_module.steps_kernel()
    calls = []

    def counted(*args):
        calls.append(args[5:7])  # (first, stop)
        return kernel(*args)

    monkeypatch.setattr(gram_lanczos_module, "steps_kernel", lambda: counted)
    block = connected_block(np.random.default_rng(3), 200, 500, 0.03)
    values, proven = gram_lanczos(sp.csr_matrix(block), np.array([200]), np.array([500]), 2)
    assert proven.all()
    assert values[0] == pytest.approx(np.linalg.svd(block, compute_uv=False)[:2], abs=1e-9 * values[0, 0])
    assert calls and max(stop - first for first, stop in calls) >= 4


def run_in_a_fresh_process(script: str) -> None:
    """Run ``script`` in a new Python process, where numba is not yet loaded; fail with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "status, vector",
    [
        ("Not affected\n", True),
        ("Vulnerable\n", True),
        ("Mitigation: Microcode\n", False),
        ("Mitigation: AVX disabled, no microcode\n", False),
        (None, True),  # no such file: not Linux, or an older kernel
    ],
)
def test_vector_gathers_are_a_rule_of_the_machine(monkeypatch, tmp_path, status, vector):
    """Reassociated products unless the kernel reports Gather Data Sampling mitigated, read from the
    file the kernel writes it to (a timing would let two runs on one machine round differently)."""
    from fullspectrum.spectrum import kernels

    report = tmp_path / "gather_data_sampling"
    if status is not None:
        report.write_text(status)
    real_open = open

    def reading(path, *args, **kwargs):
        if str(path).endswith("vulnerabilities/gather_data_sampling"):
            return real_open(report, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", reading)
    assert kernels.vector_products.__wrapped__() is vector


@pytest.mark.slow  # a fresh process
def test_a_one_off_analysis_does_not_load_numba():
    """Loading numba costs a process ~0.4 CPU-s, more than the compiled steps save one ResNet."""
    run_in_a_fresh_process(
        """
        import sys, numpy as np
        from fullspectrum.spectrum import layer_spectrum
        rng = np.random.default_rng(0)
        mask = rng.random((300, 400)) < 0.1
        layer_spectrum(mask, rng.standard_normal((300, 400)))
        assert 'numba' not in sys.modules, 'numba loaded'
        from fullspectrum.spectrum.gram_lanczos import load_compiled_kernels
        from fullspectrum.spectrum.kernels import column_scatter_kernel, recurrence_kernel, steps_kernel
        assert recurrence_kernel() is None and steps_kernel() is None and load_compiled_kernels()
        # compiled for the engine's argument types already: the first real solve pays no compilation
        for kernel in (recurrence_kernel(), steps_kernel(), column_scatter_kernel()):
            assert kernel.signatures, f'{kernel} not compiled'
        """
    )


@pytest.mark.slow  # a fresh process
def test_a_long_run_loads_the_compiled_kernels_once_it_has_spent_what_loading_costs():
    """The ski-rental rule of ``gram_lanczos.LOAD_AFTER_SECONDS``: numba is loaded only after that
    much time in uncompiled Lanczos runs, and then the runs are compiled."""
    run_in_a_fresh_process(
        """
        import sys, numpy as np
        from fullspectrum.spectrum import gram_lanczos as g, layer_spectrum
        g.LOAD_AFTER_SECONDS = 0.3
        rng = np.random.default_rng(0)
        mask = rng.random((300, 400)) < 0.02
        calls = 0
        while 'numba' not in sys.modules and calls < 500:
            spent = g._uncompiled['seconds']
            layer_spectrum(mask, rng.standard_normal((300, 400)))
            calls += 1
        assert 'numba' in sys.modules, 'never loaded'
        assert calls > 1 and spent < 0.3 <= g._uncompiled['seconds'], (calls, spent)
        assert g.recurrence_kernel() is not None and g.steps_kernel().signatures
        """
    )
