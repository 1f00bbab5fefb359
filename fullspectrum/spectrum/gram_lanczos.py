"""Lanczos on ``A Aᵀ`` of many blocks in lockstep, on each block's shorter side, under a proven bound.

Golub–Kahan bidiagonalisation of ``A`` and symmetric Lanczos on ``A Aᵀ`` build
the same Krylov space and converge in the same number of steps; the second keeps
vectors of the shorter side only (a layer of 512 outputs and 4,608 input taps:
512 instead of 5,120 entries to re-orthogonalise per step) and does half the
bookkeeping. What it gives up is the accuracy of small singular values: the
eigenvalues ``λ = σ²`` of ``A Aᵀ`` are found to an absolute error of order
``eps·σ1²``, that is ``eps·σ1²/σ`` on ``σ``. As in ``gram.py``, every block's
values therefore come with a rigorous bound and are used only when it is proven
within ``ACCEPTED_ERROR · max(1, σ1)``; a block that cannot be proven goes back
to Golub–Kahan (``lanczos.py``).

The bound. A product ``A(Aᵀx)`` in floating point is ``(M + E)x`` with
``|E| <= γ |A||A|ᵀ``, ``γ = (r + c)·eps`` for at most ``r`` entries in a row and
``c`` in a column; for the non-negative ``A`` the engine sees ``‖E‖ <= γ·σ1²``.
Lanczos with full re-orthogonalisation then gives Ritz values exact for a matrix
within ``4k·eps·‖M‖`` (``k`` steps; the constant of ``gram.py``), and each Ritz
value ``θ`` with residual ``r`` has an eigenvalue of that matrix within ``r``.
So ``|θ - λ| <= δ = r + (γ + 4k·eps)·σ1²``, and ``|sqrt(θ) - σ| <= min(δ/sqrt(θ), sqrt(δ))``.

A lone block that is dense enough (a large pruned LLM layer at 50%) takes its products on a dense
copy instead of the CSR arrays (``dense_products.py``), with the rounding of the sparse products.

A weighted float64 dense block goes further: once its values are within :data:`SINGLE_AFTER` of converged,
the remaining products are float32 (half the bytes again). An inexact product late in a Krylov run
barely moves the Ritz vectors (its error enters them scaled by the residual reached, measured
``~1e-6 × SINGLE_AFTER``), but the recurrence no longer proves anything, so the values are then
proven directly: for each top Ritz vector ``u`` (unit), ``v = Aᵀu/σ̂`` with ``σ̂ = ‖Aᵀu‖``, and
``x = (u, v)`` has ``Hx - σ̂x = (Av - σ̂u, 0)`` for ``H = [[0, A], [Aᵀ, 0]]``: some singular value lies
within ``‖Av - σ̂u‖/√2`` (plus the float64 rounding of that residual) of ``σ̂``. A block this fails
for is left unproven, and the stack then runs Golub–Kahan on it.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from fullspectrum.spectrum.dense import column_groups
from fullspectrum.spectrum.dense_products import DenseProducts, dense_product, float32_copy
from fullspectrum.spectrum.gram import ACCEPTED_ERROR, EPS, SOLVER_FACTOR
from fullspectrum.spectrum.graph import column_counts
from fullspectrum.spectrum.kernels import (
    compiled_gram_tops,
    compiled_recurrence,
    recurrence_kernel,
    steps_kernel,
    vector_products,
)
from fullspectrum.spectrum.lanczos import (
    _LARGE_PIECE,
    BREAKDOWN,
    MAX_STEPS,
    LockstepBlocks,
    Segments,
    orthogonalise,
    steps_to_converge,
)

_FIRST_TEST = 8
"""The first convergence test of a block: earlier ones almost never succeed (a block that breaks
down sooner is tested when it does), and each costs a small eigenproblem."""
_COMPACT_SHARE = 0.25
"""Cut finished blocks out of the operator once they hold this share of the work per step."""
NARROW_EDGES = 1 << 22
"""Largest block given narrow copies of its CSR arrays for the compiled steps (``narrow_operator``:
6 more bytes per edge, 24 MiB at most); a larger one's steps read the arrays it has."""
SINGLE_AFTER = 1e-5
"""A weighted dense block takes float32 products once the bound on its values (times ``max(1, σ1)``)
is below this: measured, its Ritz vectors then keep a residual near ``1e-6 × SINGLE_AFTER``, 100
times inside :data:`ACCEPTED_ERROR` (2048² and 4096² layers at 50%)."""
_CERTIFY_AT = 0.1
"""Once on float32 products, the Ritz vectors are certified when the recurrence's bound is this share
of the accepted one: at the accepted bound itself their float64 residuals are only just inside it."""
_SWITCH_TESTS = 4
"""Steps between convergence tests while a dense block waits for its float32 products."""
_TEST_STRIDE = 4
"""In a run of several blocks, tests fall on multiples of this step (each block's next test is put off
to the next one): the steps between are one compiled call."""
_TEST_WORK = 5e4
"""A convergence test's cost in entries of a Lanczos step (measured: ~50 µs, as a product over 50k edges)."""


def gram_lanczos(
    matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, want: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``want`` singular values of every diagonal block, ``(blocks, want)``, and which are proven.

    Blocks as for ``lanczos.batched_golub_kahan``, each with no more rows than
    columns (give the shorter side as rows). ``certified[k]`` is False where the
    bound fails; those values must not be used.
    """
    row_sizes = np.asarray(row_sizes, dtype=np.int64)
    col_sizes = np.asarray(col_sizes, dtype=np.int64)
    values = np.zeros((row_sizes.size, want))
    certified = np.zeros(row_sizes.size, dtype=bool)
    if row_sizes.size:
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        state = _GramState(matrix, row_sizes, col_sizes, want)
        if row_sizes.size == 1:  # a lone block: its products may be cheaper on a dense copy
            state.dense = dense_product(matrix)
        uncompiled = recurrence_kernel() is None
        started = time.perf_counter()
        while not state.frozen.all():
            state.step(values, certified)
        if uncompiled:
            _count_uncompiled(time.perf_counter() - started)
    return values, certified


LOAD_AFTER_SECONDS = 1.0
"""Seconds of Lanczos runs without the compiled kernels after which a process loads them. Loading
numba costs about 0.45 s (seconds more on a first run, which compiles the kernels into numba's cache)
and the kernels then save about 40% of a run: once a process has forgone about what loading costs,
it is likely to run on, and loads (the ski-rental rule). A one-off analysis never gets there."""
_uncompiled = {"seconds": 0.0, "tried": False}


def _count_uncompiled(seconds: float) -> None:
    _uncompiled["seconds"] += seconds
    if _uncompiled["seconds"] >= LOAD_AFTER_SECONDS and not _uncompiled["tried"]:
        _uncompiled["tried"] = True  # once: without numba, the numpy route stays
        load_compiled_kernels()


class _GramState(LockstepBlocks):
    """The running three-term recurrences, one per block, on the operator cut down to them."""

    def __init__(self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, want: int):
        limit = np.minimum(row_sizes, MAX_STEPS)
        capacity = int(min(limit.max(), 64))
        self._start_blocks(row_sizes.size, capacity, want, limit)
        self.next_check[:] = max(want + 2, _FIRST_TEST)
        self._set_operator(matrix, row_sizes, col_sizes)
        rng = np.random.default_rng(0)
        q = rng.standard_normal(self.rows) + 1.0  # a positive bias meets the Perron vector
        q /= self._expand(self._norms(q))
        self.basis = np.zeros((capacity, self.rows))
        self.basis[0] = q
        self.next_due = max(want + 2, _FIRST_TEST)  # the first step at which some block is due for a test
        self.any_frozen = False
        self.dense: DenseProducts | None = None
        """Products on a dense copy of a lone block (``dense_product``); None: the CSR arrays."""
        self.single = False  # taking the dense block's float32 products
        self.single_steps = 0
        # the recurrence bound, times the accepted one, that calls a certificate
        self.certify_at = _CERTIFY_AT

    def _set_operator(self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray) -> None:
        self.matrix, self.transpose = matrix, matrix.T
        self.rows = matrix.shape[0]
        self.binary = bool(np.all(matrix.data == 1))
        self.narrow = None  # the CSR arrays for the compiled steps, made at their first call
        self.middle = np.empty(matrix.shape[1])
        self.row_sizes, self.col_sizes = row_sizes, col_sizes
        self.bounds = np.concatenate([[0], np.cumsum(row_sizes)])
        self.segments = Segments(row_sizes)
        row_nnz = np.diff(matrix.indptr)
        col_nnz = column_counts(matrix.indices, matrix.shape[1])  # no int64 copy of every index
        # Most entries in a row, and in a column, of each block: the rounding of a product A(Aᵀx).
        self.most = np.maximum.reduceat(row_nnz, self.bounds[:-1]) + np.maximum.reduceat(
            col_nnz, np.concatenate([[0], np.cumsum(col_sizes)[:-1]])
        )
        self.work = np.add.reduceat(row_nnz, self.bounds[:-1]) + row_sizes + col_sizes

    def _expand(self, values: np.ndarray):
        return values[0] if values.size == 1 else np.repeat(values, self.row_sizes)

    def _norms(self, vector: np.ndarray) -> np.ndarray:
        return np.sqrt(np.add.reduceat(vector * vector, self.bounds[:-1]))

    def _grow(self) -> None:
        extra = self.basis.shape[0]
        self.basis = np.concatenate([self.basis, np.zeros((extra, self.rows))])
        self._grow_blocks()

    def step(self, values: np.ndarray, certified: np.ndarray) -> None:
        step = self.n
        if step + 1 == self.basis.shape[0]:
            self._grow()
        steps = steps_kernel() if self.dense is None else None
        if steps is not None and self.narrow is None:
            self.narrow = narrow_operator(self.matrix, self.binary)
        if self.narrow is False:  # indices past 32 bits: the numpy route
            steps = None
        if steps is not None:  # compiled: every step up to the next test in one call
            alpha, beta = np.empty(self.beta.size), np.empty(self.beta.size)
            stop = max(step + 1, min(self.next_due, self.basis.shape[0] - 1))
            step = steps(
                *self.narrow, self.binary, self.basis, step, stop, self.bounds, self.beta,
                self.frozen, self.alphas, self.betas, self.scale, BREAKDOWN, _LARGE_PIECE, self.middle, alpha, beta, vector_products(),
            )  # fmt: skip
            w = self.basis[step + 1]  # the last step's vector, not yet normalised: finished below
        else:
            w, alpha, beta = self._recurrence_step(step)
        np.maximum(self.scale, np.maximum(np.abs(alpha), beta), out=self.scale)
        self.alphas[:, step] = alpha
        self.n = n = step + 1
        broke = beta <= BREAKDOWN * np.maximum(self.scale, 1.0)
        if self.any_frozen:
            broke &= ~self.frozen  # a frozen block's beta is 0 by construction
        finished = False
        if n >= self.next_due or broke.any():  # the per-block tests are the costly part: only when due
            due = ~self.frozen & (broke | (n >= self.limit) | (n >= self.next_check))
            for block in np.flatnonzero(due):
                self._test(values, certified, block, bool(broke[block]), float(beta[block]))
            finished = bool(self.frozen[due].any())
            self.any_frozen = bool(self.frozen.any())
            running = np.minimum(self.next_check, self.limit)[~self.frozen]
            self.next_due = int(running.min()) if running.size else n + 1
        self.betas[:, step] = beta
        self.beta = beta
        if self.any_frozen:
            w /= self._expand(np.where(self.frozen, 1.0, beta))
            w *= self._expand(~self.frozen)
        else:
            w /= self._expand(beta)
        self.basis[step + 1] = w
        if (
            finished
            and not self.frozen.all()
            and self.work[self.frozen].sum() >= _COMPACT_SHARE * self.work.sum()
        ):
            self._compact()

    def _recurrence_step(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step's product and recurrence in Python: ``(w, alpha, beta)``, ``w`` not yet normalised."""
        q = self.basis[step]
        if self.dense is None:
            w = self.matrix @ (self.transpose @ q)
        elif self.single:
            w = self.dense.single(q)
            self.single_steps += 1
        else:
            w = self.dense.exact(q)
        kernel = recurrence_kernel()
        if kernel is not None:  # every block's recurrence in one compiled call
            alpha, beta = np.empty(self.beta.size), np.empty(self.beta.size)
            kernel(w, self.basis, step, self.bounds, self.beta, alpha, beta, _LARGE_PIECE // (step + 1))
        else:
            if step:
                w -= self._expand(self.beta) * self.basis[step - 1]
            alpha = self.segments.sums(q * w)
            w -= self._expand(alpha) * q
            orthogonalise(w, self.basis[: step + 1], self.segments)
            beta = np.sqrt(self.segments.sums(w * w))
        return w, alpha, beta

    def _test(self, values, certified, block: int, broke: bool, beta: float) -> None:
        """Convergence (and provability) test of one block from the top eigenpairs of its tridiagonal."""
        n = self.n
        theta, last = _top_eigenpairs(self.alphas[block, :n], self.betas[block, : n - 1], self.want)
        residual = 0.0 if broke else beta * float(np.max(np.abs(last)))
        rounding = (self.most[block] * EPS + SOLVER_FACTOR * n * EPS) * max(float(theta[0]), 0.0) * (1 + 1e-6)
        sigma = np.sqrt(np.maximum(theta, 0.0))
        allowed = ACCEPTED_ERROR * max(1.0, float(sigma[0]))
        if _error(sigma, rounding) > allowed:  # rounding alone breaks the bound: never provable
            self._finish(values, certified, block, sigma, False)
            return
        if self.single_steps:  # float32 products: only the vectors themselves prove the values
            allowed *= self.certify_at
            if (broke or _error(sigma, residual + rounding) <= allowed) and self._certify(
                values, certified, block, final=broke or n >= self.limit[block]
            ):
                return
        elif broke or _error(sigma, residual + rounding) <= allowed:
            self._finish(values, certified, block, sigma, True)
            return
        if n >= self.limit[block]:
            self._finish(values, certified, block, sigma, False)
            return
        if self.dense is not None and self.dense.single is not None and not self.single:
            self.single = bool(_error(sigma, residual + rounding) <= SINGLE_AFTER * max(1.0, sigma[0]))
            if not self.single:  # test often enough to switch soon after the bound allows it
                self.next_check[block] = n + _SWITCH_TESTS
                self.last_check[block] = (n, residual)
                return
        # In eigenvalue terms, the residual that would prove the values.
        tolerance = max(allowed * float(sigma[min(self.want, sigma.size) - 1]) - rounding, 1e-300)
        steps = steps_to_converge(self.last_check[block], n, residual, tolerance)
        due = n + min(steps, self._test_interval(block))
        if self.frozen.size > 1:  # blocks tested together: the compiled steps run longer between tests
            due = max(n + 1, -(-due // _TEST_STRIDE) * _TEST_STRIDE)
        self.next_check[block] = due
        self.last_check[block] = (n, residual)

    def _test_interval(self, block: int) -> int:
        """Most steps before a block's next test: a block of costly steps is tested more often.

        Lanczos Ritz values stagnate and then converge within a few steps, so the geometric forecast
        of ``steps_to_converge`` can overshoot by half a run. Testing every ``k`` steps costs ``t/k``
        per step for a test of cost ``t`` and overshoots by ``k/2`` steps of cost ``c`` on average:
        ``k = sqrt(2 n t / c)`` over a run of ``n`` steps balances the two."""
        step_work = float(self.work[block] + self.row_sizes[block] * self.n)
        return max(1, math.ceil(math.sqrt(2.0 * self.n * _TEST_WORK / step_work)))

    def _certify(self, values, certified, block: int, final: bool) -> bool:
        """Finish a lone dense block from its top Ritz vectors where their float64 residuals prove
        them (or, ``final``, unproven where they do not); else ask for a 10 times smaller recurrence
        bound before the next try. Whether the block is finished."""
        n = self.n
        take = min(self.want, n)
        _, ritz = la.eigh_tridiagonal(
            self.alphas[block, :n],
            self.betas[block, : n - 1],
            select="i",
            select_range=(n - take, n - 1),
            check_finite=False,
        )
        vectors = ritz.T @ self.basis[:n]  # (take, rows), ascending values
        sigma, bounds = self.dense.certify(vectors, int(self.most[block]))
        order = np.argsort(sigma)[::-1]
        proven = bool(np.all(bounds <= ACCEPTED_ERROR * max(1.0, float(sigma.max()))))
        if proven or final:
            self._finish(values, certified, block, sigma[order], proven)
            return True
        self.certify_at *= 0.1
        return False

    def _finish(self, values, certified, block: int, sigma: np.ndarray, proven: bool) -> None:
        values[self.original[block], : sigma.size] = sigma[: self.want]
        certified[self.original[block]] = proven
        self.frozen[block] = True

    def _compact(self) -> None:
        keep, keep_rows, _, matrix = self._kept_operator()
        self.basis = self.basis[:, keep_rows]
        self._keep_blocks(keep)
        self._set_operator(matrix, self.row_sizes[keep], self.col_sizes[keep])
        self.any_frozen = False


def narrow_operator(matrix: sp.csr_matrix, binary: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | bool:
    """``(indptr, indices, data)`` of ``matrix`` for the compiled steps, or False where its indices do
    not fit 32 bits: unsigned, the column indices as ``uint16`` where the columns allow, the values
    as ``float32`` where every one is a float32 (a checkpoint's weights; a 0/1 block's are not read).
    Fewer bytes per edge make a run some 5% (0/1) and 12% (weighted) faster (measured on a 512 × 4608
    layer at 12%), for 2 and 4 more bytes per edge held, and the same arithmetic: a float32 value
    widens exactly, so every product and sum is unchanged."""
    if matrix.indices.dtype != np.int32:
        return False
    indptr = matrix.indptr.view(np.uint32 if matrix.indptr.dtype == np.int32 else np.uint64)
    indices = matrix.indices.view(np.uint32)
    if matrix.nnz > NARROW_EDGES:  # the arrays as they are: copies would cost memory
        return indptr, indices, matrix.data
    if matrix.shape[1] <= 1 << 16:
        indices = indices.astype(np.uint16)
    single = None if binary else float32_copy(matrix.data)
    return indptr, indices, matrix.data if single is None else single


def _error(sigma: np.ndarray, delta: float) -> float:
    """Largest bound on ``|sigma_i - true|`` from an eigenvalue error ``delta`` (see the module
    docstring). Plain floats: a test handles two values, where numpy's calls cost more than the sums."""
    root = math.sqrt(delta)
    return max((min(delta / s, root) if s > 0 else root) for s in sigma.tolist())


def _top_eigenpairs(alphas: np.ndarray, betas: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``want`` eigenvalues of the tridiagonal (descending) and the last entries of their vectors.

    LAPACK's MRRR (``stemr``, what ``eigh_tridiagonal`` runs with ``lapack_driver="stemr"``) called
    directly: a test costs some 4 µs instead of 35 µs through the wrapper's checks and its
    bisection with inverse iteration, and the tests are many (every block, every few steps)."""
    n = alphas.size
    take = min(want, n)
    off = np.zeros(n)  # stemr wants n entries (the last unused) and overwrites them
    off[: n - 1] = betas
    found, eigenvalues, vectors, info = la.lapack.dstemr(alphas, off, 3, 0.0, 0.0, n - take + 1, n)
    if info != 0 or found != take:  # pragma: no cover - MRRR declined: the wrapper's own route
        eigenvalues, vectors = la.eigh_tridiagonal(
            alphas, betas, select="i", select_range=(n - take, n - 1), check_finite=False
        )
    return eigenvalues[:take][::-1], vectors[-1, :take][::-1]


def load_compiled_kernels() -> bool:
    """Load numba so that every later Lanczos step runs compiled; whether it could be loaded.

    Tiny runs here compile the kernels (or read numba's cache: ~0.1 s), so the first real solve,
    e.g. a PAGS population's first candidate, does not pay for it: two of two blocks on CSR products
    (:func:`~fullspectrum.spectrum.kernels.steps_kernel`; 0/1 and weighted), one on a lone block's own products, which
    runs the recurrence alone (:func:`~fullspectrum.spectrum.kernels.recurrence_kernel`); the
    sort of a layer's entries into column groups, and the LAPACK call on a stack of Grams."""
    if compiled_recurrence() is None:
        return False
    tiny = sp.csr_matrix(
        np.array([[1.0, 1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0]])
    )
    for values in (tiny, tiny * 0.5):  # a 0/1 block and a weighted one (float32 values, as a checkpoint's)
        gram_lanczos(values, np.array([2, 1]), np.array([3, 2]), 2)
    state = _GramState(tiny, np.array([3]), np.array([5]), 2)
    state.dense = DenseProducts(lambda q: tiny @ (tiny.T @ q))
    while not state.frozen.all():
        state.step(np.zeros((1, 2)), np.zeros(1, dtype=bool))
    # and the sort of a layer's entries into column groups (dense.column_groups), and the Grams' LAPACK
    column_groups(tiny, np.ones(tiny.nnz), np.arange(5), np.array([2, 3]), np.arange(2), (0, 2))
    compiled_gram_tops()(np.eye(2)[None].copy(), 1, np.empty((1, 1)))
    return True
