"""One BLAS thread while the engine runs.

The engine's linear algebra is many small dense SVDs and sparse matrix-vector
products, where BLAS threads cost more than they give; worse, right after a
PyTorch training step the OpenMP threads of torch are still spinning, and a
multi-threaded OpenBLAS call then fights them for the cores (measured: a
128×256 SVD went from 1.5 ms to 20 ms inside a training loop). The limit is
scoped to the call and restored afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from threadpoolctl import ThreadpoolController

F = TypeVar("F", bound=Callable)
_controller: ThreadpoolController | None = None


def one_blas_thread(function: F) -> F:
    """Run ``function`` with numpy/scipy's BLAS limited to one thread."""

    @functools.wraps(function)
    def limited(*args, **kwargs):
        global _controller
        if _controller is None:  # created lazily: it sees the BLAS libraries loaded by then
            _controller = ThreadpoolController()
        with _controller.limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return limited  # type: ignore[return-value]
