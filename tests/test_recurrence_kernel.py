"""The compiled lockstep recurrence (``gram_lanczos.recurrence_kernel``) is the numpy one: the same
values, proven, for blocks that finish at different steps, with or without numba."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from fullspectrum.spectrum import gram_lanczos as gram_lanczos_module
from fullspectrum.spectrum.gram_lanczos import gram_lanczos
from tests.test_batched_engine import random_connected_block as connected_block


def test_the_compiled_recurrence_gives_the_numpy_one(monkeypatch):
    assert gram_lanczos_module.load_compiled_kernels(), "numba comes with umap-learn"
    assert gram_lanczos_module.recurrence_kernel() is not None
    rng = np.random.default_rng(7)
    blocks = [
        connected_block(rng, 150, 600, 0.02),  # slow: a wide bulk
        connected_block(rng, 40, 50, 0.6),  # dense: finishes early (the run is cut down to the rest)
        connected_block(rng, 30, 45, 0.2),
        connected_block(rng, 300, 320, 0.03),  # long enough to skip updates while orthogonal
    ]
    matrix = sp.csr_matrix(sp.block_diag(blocks))
    rows, cols = np.array([b.shape[0] for b in blocks]), np.array([b.shape[1] for b in blocks])
    compiled, proven = gram_lanczos(matrix, rows, cols, 2)
    monkeypatch.setattr(gram_lanczos_module, "recurrence_kernel", lambda: None)
    plain, plain_proven = gram_lanczos(matrix, rows, cols, 2)
    assert proven.all() and plain_proven.all()
    for got, numpy_got, block in zip(compiled, plain, blocks):
        exact = np.linalg.svd(block, compute_uv=False)[:2]
        assert got == pytest.approx(exact, abs=1e-9 * exact[0], rel=0)
        assert got == pytest.approx(numpy_got, abs=1e-11 * exact[0], rel=0)


def test_a_one_off_analysis_does_not_load_numba():
    """Loading numba costs a process ~0.4 CPU-s, more than the compiled steps save one ResNet."""
    script = (
        "import sys, numpy as np\n"
        "from fullspectrum.spectrum import layer_spectrum\n"
        "rng = np.random.default_rng(0)\n"
        "mask = rng.random((300, 400)) < 0.1\n"
        "layer_spectrum(mask, rng.standard_normal((300, 400)))\n"
        "assert 'numba' not in sys.modules, 'numba loaded'\n"
        "from fullspectrum.spectrum.gram_lanczos import load_compiled_kernels, recurrence_kernel\n"
        "assert recurrence_kernel() is None and load_compiled_kernels() and recurrence_kernel() is not None\n"
        # compiled for the engine's argument types already: the first real solve pays no compilation
        "assert recurrence_kernel().signatures, 'not compiled'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
