"""The engine's compiled loops (numba): byte products of a dense 0/1 block, and one whole lockstep
Lanczos step of every block at once (``gram_lanczos.py`` uses both).

Each loop is plain Python over numpy arrays, so without numba nothing is compiled and the callers
keep their numpy routes. The step kernel is used only once numba is loaded in the process (see
:func:`recurrence_kernel`).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable

import numpy as np

from fullspectrum.spectrum.lanczos import _ORTHOGONAL


def _row_sums(matrix: np.ndarray, vector: np.ndarray, out: np.ndarray) -> None:
    """``out = matrix @ vector``, accumulated in float64 (compiled by :func:`byte_kernels`)."""
    for i in range(matrix.shape[0]):
        total = 0.0
        for j in range(matrix.shape[1]):
            total += matrix[i, j] * vector[j]
        out[i] = total


def _row_combination(matrix: np.ndarray, vector: np.ndarray, out: np.ndarray) -> None:
    """``out = matrix.T @ vector``, a sum of rows accumulated in float64 (compiled by :func:`byte_kernels`)."""
    out[:] = 0.0
    for i in range(matrix.shape[0]):
        weight = vector[i]
        for j in range(matrix.shape[1]):
            out[j] += matrix[i, j] * weight


@functools.cache
def byte_kernels() -> tuple[Callable, Callable] | None:
    """:func:`_row_sums` and :func:`_row_combination` compiled by numba, or None without it.
    Reassociation lets the sums use vector registers: any order of a sum keeps the rounding bound
    of ``gram_lanczos``' module docstring."""
    return _compiled(_row_sums, _row_combination)


def _recurrence(w, basis, step, bounds, beta_previous, alpha, beta, small) -> None:
    """One step of every block's recurrence after its product ``w = A Aᵀ q``, ``q = basis[step]``:
    ``w -= β q_prev``, ``α = q·w``, ``w -= α q``, the re-orthogonalisation of ``lanczos.orthogonalise``
    against ``basis[:step+1]`` (classical Gram–Schmidt; a block of ``small`` rows or more skips the
    update while already orthogonal), and ``β = ‖w‖``, block by block (compiled by
    :func:`recurrence_kernel`; row slices, so that the loops use vector registers)."""
    coefficients = np.empty(step + 1)
    for block in range(bounds.size - 1):
        start, end = bounds[block], bounds[block + 1]
        part, q = w[start:end], basis[step, start:end]
        if step:
            previous, before = beta_previous[block], basis[step - 1, start:end]
            for i in range(part.size):
                part[i] -= previous * before[i]
        total = 0.0
        for i in range(part.size):
            total += q[i] * part[i]
        for i in range(part.size):
            part[i] -= total * q[i]
        alpha[block] = total
        largest = 0.0
        for k in range(step + 1):
            row = basis[k, start:end]
            total = 0.0
            for i in range(part.size):
                total += row[i] * part[i]
            coefficients[k] = total
            largest = max(largest, abs(total))
        norm = 0.0
        for i in range(part.size):
            norm += part[i] * part[i]
        if part.size < small or largest > _ORTHOGONAL * math.sqrt(norm):
            for k in range(step + 1):
                row, coefficient = basis[k, start:end], coefficients[k]
                for i in range(part.size):
                    part[i] -= coefficient * row[i]
            norm = 0.0
            for i in range(part.size):
                norm += part[i] * part[i]
        beta[block] = math.sqrt(norm)


def recurrence_kernel() -> Callable | None:
    """:func:`_recurrence` compiled by numba (one call a step in place of some thirty numpy calls and
    two BLAS calls a block: the lockstep runs of small layers are mostly that overhead) once numba is
    loaded in this process, else None. Loading it costs a process about 0.4 CPU-s, more than the kernel
    saves a one-off analysis of a ResNet; the dense products of a large layer load it anyway, and
    long runs of many solves (PAGS populations) ask for it with ``gram_lanczos.load_compiled_kernels``."""
    if "numba" not in sys.modules:
        return None
    return compiled_recurrence()


@functools.cache
def compiled_recurrence() -> Callable | None:
    """:func:`_recurrence` compiled by numba (loading numba), or None without it."""
    compiled = _compiled(_recurrence)
    return None if compiled is None else compiled[0]


def _compiled(*functions: Callable) -> tuple[Callable, ...] | None:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    compile_ = numba.njit(fastmath={"reassoc", "contract"}, cache=True, nogil=True)
    return tuple(compile_(function) for function in functions)
