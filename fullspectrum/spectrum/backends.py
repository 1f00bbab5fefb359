"""Where the engine's heavy arithmetic runs: numpy on the CPU, or torch on a device.

Graph construction, component analysis and bookkeeping are the same for every
backend; a backend supplies the two kernels that carry the arithmetic:
``golub_kahan`` (the lockstep Lanczos run over block-diagonal components, see
``lanczos.py``) and ``dense_top`` (batched dense top singular values). The numpy
backend, ``NUMPY``, lives beside the code that calls it (``stack.py``). The torch backend (``torch_backend.py``) runs the same algorithm
in float64 on the device of its inputs; it is imported only when asked for, so
the spectra worker stays torch-free.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum.stack import NUMPY


class Backend(Protocol):
    """The engine's two arithmetic kernels."""

    name: str
    batch_edges: int
    """Kept weights ``layer_spectra`` gathers into one batch on this backend."""

    def golub_kahan(
        self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, want: int
    ) -> np.ndarray:
        """Top ``want`` singular values of every diagonal block, ``(blocks, want)``."""

    def dense_top(self, stack: np.ndarray, want: int, kind: str | None = None) -> np.ndarray:
        """Top ``want`` singular values of each matrix of a ``(batch, m, n)`` stack (``kind``: what is
        known of the entries, ``"binary"``, ``"nonnegative"`` or None, see ``gram.gram_top``)."""


def backend_for(device) -> Backend:
    """The backend for ``device``: None or ``"cpu"`` -> numpy; ``"cuda"``, ``"cuda:N"`` -> torch there.

    ``"torch"`` (or ``"torch:cpu"``) runs the torch backend on the CPU, as the tests do
    to check it against numpy. A torch ``device`` object is accepted too.
    """
    name = str(device) if device is not None else "cpu"
    if name == "cpu":
        return NUMPY
    if name in ("torch", "torch:cpu"):
        name = "cpu"
    elif not name.startswith("cuda"):
        raise FullSpectrumError(f"device {device!r}: the engine runs on 'cpu', 'cuda' or 'cuda:N'")
    # Deferred: torch is heavy, and the spectra worker process must not import it.
    from fullspectrum.spectrum.torch_backend import TorchBackend

    return TorchBackend(name)


def device_of(*tensors) -> str | None:
    """The CUDA device of the first CUDA torch tensor among ``tensors`` (None when there is none)."""
    for tensor in tensors:
        if getattr(tensor, "is_cuda", False):
            return str(tensor.device)
    return None
