"""The engine's compiled loops (numba): products of a dense block held as bytes (0/1) or float32,
one lockstep Lanczos step of every block at once, and whole stretches of such steps with their CSR
products (``gram_lanczos.py`` uses all three), the sort of a layer's entries into column groups, and
the top eigenvalues of a stack of Gram matrices through LAPACK (``gram.py``).

Each loop is plain Python over numpy arrays, so without numba nothing is compiled and the callers
keep their numpy routes. The step kernels are used only once numba is loaded in the process (see
:func:`recurrence_kernel`): by ``gram_lanczos.load_compiled_kernels``, by a dense layer's byte
products, or by a process whose uncompiled Lanczos runs have taken ``gram_lanczos.LOAD_AFTER_SECONDS``.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable

import numpy as np

from fullspectrum.spectrum.lanczos import _ORTHOGONAL


def _row_sums(matrix: np.ndarray, vector: np.ndarray, out: np.ndarray) -> None:
    """``out = matrix @ vector``, accumulated in float64 (compiled by :func:`byte_kernels`). Four rows
    a pass over ``vector``: a float32 matrix is then read at close to memory speed (measured on a
    4096² one: 4.4 ms against 6.3 ms a row at a time)."""
    rows, cols = matrix.shape
    i = 0
    while i + 4 <= rows:
        r0, r1, r2, r3 = matrix[i], matrix[i + 1], matrix[i + 2], matrix[i + 3]
        t0 = t1 = t2 = t3 = 0.0
        for j in range(cols):
            x = vector[j]
            t0 += r0[j] * x
            t1 += r1[j] * x
            t2 += r2[j] * x
            t3 += r3[j] * x
        out[i], out[i + 1], out[i + 2], out[i + 3] = t0, t1, t2, t3
        i += 4
    for k in range(i, rows):
        row, total = matrix[k], 0.0
        for j in range(cols):
            total += row[j] * vector[j]
        out[k] = total


def _row_combination(matrix: np.ndarray, vector: np.ndarray, out: np.ndarray) -> None:
    """``out = matrix.T @ vector``, a sum of rows accumulated in float64, four rows a pass over ``out``
    (compiled by :func:`byte_kernels`)."""
    rows, cols = matrix.shape
    out[:] = 0.0
    i = 0
    while i + 4 <= rows:
        w0, w1, w2, w3 = vector[i], vector[i + 1], vector[i + 2], vector[i + 3]
        r0, r1, r2, r3 = matrix[i], matrix[i + 1], matrix[i + 2], matrix[i + 3]
        for j in range(cols):
            out[j] += (r0[j] * w0 + r1[j] * w1) + (r2[j] * w2 + r3[j] * w3)
        i += 4
    for k in range(i, rows):
        row, weight = matrix[k], vector[k]
        for j in range(cols):
            out[j] += row[j] * weight


@functools.cache
def byte_kernels() -> tuple[Callable, Callable] | None:
    """:func:`_row_sums` and :func:`_row_combination` compiled by numba, or None without it (for
    bytes and float32 alike: numba compiles each type it is given). Reassociation lets the sums use
    vector registers: any order of a sum keeps the rounding bound of ``gram_lanczos``' module docstring."""
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


def _lanczos_steps(
    indptr,
    indices,
    data,
    binary,
    basis,
    first,
    stop,
    bounds,
    beta_previous,
    frozen,
    alphas,
    betas,
    scale,
    breakdown,
    large_piece,
    middle,
    alpha,
    beta,
    vector,
) -> int:
    """Steps ``first .. stop-1`` of every block's Lanczos recurrence on ``A Aᵀ``, products included,
    for a CSR ``A`` (``indptr``/``indices`` unsigned: no negative-index checks; ``binary``: its values
    are all 1 and ``data`` is not read). Each step is the one ``gram_lanczos`` takes in Python: the
    product ``w = A(Aᵀq)`` (:func:`_products`, its sums reassociated where ``vector``: see
    :func:`vector_products`), :func:`_recurrence`, then the coefficients stored and ``w``
    normalised into ``basis[step+1]`` (a frozen block's part zeroed). The last step (``stop-1``), or
    one in which a running block breaks down, is left half done for the caller to test: ``alpha``,
    ``beta`` and the unnormalised ``w`` (in ``basis[step+1]``) written, nothing stored. Returns that
    step's number (compiled by :func:`steps_kernel`)."""
    blocks = bounds.size - 1
    for step in range(first, stop):
        q, w = basis[step], basis[step + 1]
        if vector:
            _step_vector_products(indptr, indices, data, binary, q, middle, w)
        else:
            _step_products(indptr, indices, data, binary, q, middle, w)
        _step_recurrence(w, basis, step, bounds, beta_previous, alpha, beta, large_piece // (step + 1))
        broke = False
        for block in range(blocks):
            if not frozen[block]:
                largest = max(scale[block], abs(alpha[block]), beta[block])
                if beta[block] <= breakdown * max(largest, 1.0):
                    broke = True
        if broke or step == stop - 1:
            return step
        for block in range(blocks):
            scale[block] = max(scale[block], abs(alpha[block]), beta[block])
            alphas[block, step] = alpha[block]
            betas[block, step] = beta[block]
            beta_previous[block] = beta[block]
            factor = 0.0 if frozen[block] else 1.0 / beta[block]
            for i in range(bounds[block], bounds[block + 1]):
                w[i] *= factor
    return stop - 1


def _products(indptr, indices, data, binary, q, middle, w) -> None:
    """``w = A(Aᵀq)`` for a CSR ``A``: ``Aᵀq`` scattered over the rows into ``middle``, then gathered
    back row by row (see :func:`_lanczos_steps` for the arguments)."""
    rows = indptr.size - 1
    middle[:] = 0.0
    for i in range(rows):  # Aᵀ q, a scatter over the rows
        start, end, weight = indptr[i], indptr[i + 1], q[i]
        if binary:
            for e in range(start, end):
                middle[indices[e]] += weight
        else:
            for e in range(start, end):
                middle[indices[e]] += data[e] * weight
    for i in range(rows):  # A (Aᵀ q), a gather
        start, end = indptr[i], indptr[i + 1]
        total = 0.0
        if binary:
            for e in range(start, end):
                total += middle[indices[e]]
        else:
            for e in range(start, end):
                total += data[e] * middle[indices[e]]
        w[i] = total


_step_recurrence = _recurrence
"""The recurrence :func:`_lanczos_steps` calls: the compiled one once :func:`compiled_steps` ran."""
_step_products = _step_vector_products = _products
"""The products it calls, compiled by :func:`compiled_steps` as they are and with their sums
reassociated (vector gathers)."""


@functools.cache
def vector_products() -> bool:
    """Whether the compiled steps' products sum reassociated, with vector gathers: faster on an AMD
    EPYC (a 512 × 4608 layer at 12%: 30% on its 0/1 graph, 14% weighted), slower on an earlier host,
    whose kind we did not record; the likely cause, and the rule here: microcode that mitigates Gather
    Data Sampling (Intel's Downfall) makes every vector gather slow. A rule of the machine, not a
    timing: the choice changes the rounding of the sums, and one machine's runs must agree to the last
    bit (a resumed run gives the rows of an uninterrupted one)."""
    try:
        with open("/sys/devices/system/cpu/vulnerabilities/gather_data_sampling") as status:
            return not status.read().startswith("Mitigation")
    except OSError:  # not Linux, or an older kernel
        return True


def recurrence_kernel() -> Callable | None:
    """:func:`_recurrence` compiled by numba (one call a step in place of some thirty numpy calls and
    two BLAS calls a block: the lockstep runs of small layers are mostly that overhead) once numba is
    loaded in this process, else None. Loading it costs a process about 0.4 CPU-s, more than the kernel
    saves a one-off analysis of a ResNet; the dense products of a large layer load it anyway, and
    long runs of many solves (PAGS populations) ask for it with ``gram_lanczos.load_compiled_kernels``."""
    return _once_loaded(compiled_recurrence)


@functools.cache
def compiled_recurrence() -> Callable | None:
    """:func:`_recurrence` compiled by numba (loading numba), or None without it."""
    return _compiled_one(_recurrence)


def _once_loaded(compile_: Callable[[], Callable | None]) -> Callable | None:
    """``compile_()`` where numba is already loaded in this process, else None: whether to pay for
    loading it is the callers' choice (see :func:`recurrence_kernel`)."""
    return compile_() if "numba" in sys.modules else None


def _compiled_one(function: Callable) -> Callable | None:
    compiled = _compiled(function)
    return None if compiled is None else compiled[0]


def _compiled(*functions: Callable) -> tuple[Callable, ...] | None:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    compile_ = numba.njit(fastmath={"reassoc", "contract"}, cache=True, nogil=True)
    return tuple(compile_(function) for function in functions)


def steps_kernel() -> Callable | None:
    """:func:`_lanczos_steps` compiled by numba once numba is loaded in this process (as
    :func:`recurrence_kernel`), else None."""
    return _once_loaded(compiled_steps)


@functools.cache
def compiled_steps() -> Callable | None:
    """:func:`_lanczos_steps` compiled by numba (loading numba), or None without it, with both
    compilations of its products (see :func:`vector_products`)."""
    recurrence = compiled_recurrence()
    if recurrence is None:  # pragma: no cover - numba is a dependency
        return None
    import numba

    global _step_recurrence, _step_products, _step_vector_products
    _step_recurrence = recurrence  # numba reads a global callee when it compiles its caller
    _step_products = numba.njit(nogil=True)(_products)
    _step_vector_products = numba.njit(fastmath={"reassoc", "contract"}, nogil=True)(_products)
    return numba.njit(cache=True, nogil=True)(_lanczos_steps)


def _column_scatter(
    indptr, indices, position, n_places, weights, weighted, free, rows_out, data_out, slice_edges
) -> None:
    """Counting sort of a CSR pattern's entries into column order: each entry whose column has a
    place (``position[column] < n_places``) goes to that place's next free slot (``free``, advanced),
    its row into ``rows_out`` and, ``weighted``, its weight into ``data_out``. Rows are visited in
    order, so each place's rows come out ascending, as a CSC conversion gives them. A slice of rows
    of about ``slice_edges`` entries is sorted in a local buffer first and then copied out place by
    place: writing each entry straight to its place would touch a new page per entry on a large
    layer (compiled by :func:`column_scatter_kernel`)."""
    n_rows = indptr.size - 1
    counts = np.zeros(n_places, dtype=np.int64)
    local_start = np.zeros(n_places, dtype=np.int64)
    local_rows = np.empty(slice_edges, dtype=rows_out.dtype)
    local_data = np.empty(slice_edges if weighted else 0)
    first = 0
    while first < n_rows:
        stop = first + 1  # rows first..stop-1: at most slice_edges entries (at least one row)
        while stop < n_rows and indptr[stop + 1] - indptr[first] <= slice_edges:
            stop += 1
        if indptr[stop] - indptr[first] > local_rows.size:  # one row longer than a slice
            local_rows = np.empty(indptr[stop] - indptr[first], dtype=rows_out.dtype)
            local_data = np.empty(local_rows.size if weighted else 0)
        counts[:] = 0
        for entry in range(indptr[first], indptr[stop]):
            place = position[indices[entry]]
            if place < n_places:
                counts[place] += 1
        total = 0
        for place in range(n_places):
            local_start[place] = total
            total += counts[place]
        for row in range(first, stop):
            for entry in range(indptr[row], indptr[row + 1]):
                place = position[indices[entry]]
                if place < n_places:
                    slot = local_start[place]
                    local_start[place] = slot + 1
                    local_rows[slot] = row
                    if weighted:
                        local_data[slot] = weights[entry]
        for place in range(n_places):  # local_start now ends each run
            count = counts[place]
            if count:
                source, target = local_start[place] - count, free[place]
                for k in range(count):
                    rows_out[target + k] = local_rows[source + k]
                if weighted:
                    for k in range(count):
                        data_out[target + k] = local_data[source + k]
                free[place] = target + count
        first = stop


def column_scatter_kernel() -> Callable | None:
    """:func:`_column_scatter` compiled by numba once numba is loaded in this process (as
    :func:`recurrence_kernel`), else None: one pass over the entries in place of some ten numpy
    passes a slice of rows."""
    return _once_loaded(compiled_column_scatter)


@functools.cache
def compiled_column_scatter() -> Callable | None:
    """:func:`_column_scatter` compiled by numba (loading numba), or None without it."""
    return _compiled_one(_column_scatter)


def _gram_tops(grams, want, out) -> None:
    """``out[b]`` = the top ``want`` eigenvalues of ``grams[b]``, descending (NaN where LAPACK
    declines), each matrix overwritten: LAPACK's ``dsyevr`` (MRRR) called on every matrix's own
    buffer, with the arguments ``scipy.linalg.lapack.dsyevr`` gives it (upper triangle, its default
    workspace), so the values are its own to the last bit, without a Python call per matrix and
    without the GIL (compiled by :func:`gram_tops_kernel`)."""
    batch, n = grams.shape[0], grams.shape[1]
    flags = np.array([ord("N"), ord("I"), ord("U")], dtype=np.uint8)  # no vectors, by index, upper
    order = np.array([n], dtype=np.int32)
    first, last = np.array([n - want + 1], dtype=np.int32), np.array([n], dtype=np.int32)
    found, vector_rows, info = (
        np.zeros(1, dtype=np.int32),
        np.ones(1, dtype=np.int32),
        np.zeros(1, dtype=np.int32),
    )
    work_size, iwork_size = np.array([26 * n], dtype=np.int32), np.array([10 * n], dtype=np.int32)
    reals = np.zeros(3)  # vl, vu (unused by index), abstol
    values, vectors, support = np.zeros(n), np.zeros(1), np.zeros(2 * n, dtype=np.int32)
    work, iwork = np.zeros(26 * n), np.zeros(10 * n, dtype=np.int32)
    for b in range(batch):
        _dsyevr(
            _address(flags[0:1]), _address(flags[1:2]), _address(flags[2:3]), _address(order),
            _address(grams[b]), _address(order), _address(reals[0:1]), _address(reals[1:2]),
            _address(first), _address(last), _address(reals[2:3]), _address(found), _address(values),
            _address(vectors), _address(vector_rows), _address(support), _address(work),
            _address(work_size), _address(iwork), _address(iwork_size), _address(info),
        )  # fmt: skip
        for k in range(want):
            out[b, k] = values[want - 1 - k] if info[0] == 0 and found[0] == want else np.nan


_dsyevr = _address = None
"""LAPACK's ``dsyevr`` (scipy's own, through ``scipy.linalg.cython_lapack``) and an array's data
pointer, as numba sees them: made by :func:`compiled_gram_tops`, before it compiles their caller."""


def gram_tops_kernel() -> Callable | None:
    """:func:`_gram_tops` compiled by numba once numba is loaded in this process (as
    :func:`recurrence_kernel`), else None."""
    return _once_loaded(compiled_gram_tops)


@functools.cache
def compiled_gram_tops() -> Callable | None:
    """:func:`_gram_tops` compiled by numba (loading numba), or None without it."""
    try:
        import llvmlite.binding as llvm
        import numba
        from numba import types
        from numba.extending import get_cython_function_address, intrinsic
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    global _dsyevr, _address
    # The symbol is named here, in every process, before any cached code that calls it is loaded.
    llvm.add_symbol(
        "fullspectrum_dsyevr", get_cython_function_address("scipy.linalg.cython_lapack", "dsyevr")
    )
    _dsyevr = types.ExternalFunction("fullspectrum_dsyevr", types.void(*([types.voidptr] * 21)))

    @intrinsic
    def address(typing_context, array):
        def codegen(context, builder, signature, arguments):
            data = context.make_array(signature.args[0])(context, builder, arguments[0]).data
            return builder.bitcast(data, context.get_value_type(types.voidptr))

        return types.voidptr(array), codegen

    _address = address
    return numba.njit(cache=True, nogil=True)(_gram_tops)
