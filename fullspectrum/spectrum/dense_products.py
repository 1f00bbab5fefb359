"""The products ``q -> A Aᵀ q`` of a lone Lanczos block on a dense copy of it (``dense_product``).

A block that is dense enough (a large pruned LLM layer at 50%) reads fewer bytes per edge as a dense
copy than as CSR arrays: through two compiled loops (numba, where it is installed) that accumulate in
float64, a 0/1 block as bytes and a weighted one whose values are all float32 (a checkpoint's) as
float32, which widen exactly; any other block as float64 through BLAS, with float32 BLAS products
for the end of a weighted block's run (``gram_lanczos`` proves those values from the Ritz vectors
themselves: :meth:`DenseProducts.certify`). The rounding is that of the sparse products: an exact
zero adds no error whatever the order of the sums, so the bound of ``gram_lanczos`` is unchanged.

The compiled products take the rows in :data:`PRODUCT_PIECES` fixed pieces, run side by side
(``threads.run_all``; the loops release the GIL): a product is bound by memory, and one core does
not draw all of it (measured on a 4096² block on 2 cores: 7.4 ms a float32 product
on one thread, 4.9 ms on two). The pieces, and so every sum, are the same whatever the threads,
so the values are the same bits on any thread count.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from fullspectrum.spectrum.gram import EPS
from fullspectrum.spectrum.kernels import byte_kernels, steps_kernel, vector_products
from fullspectrum.spectrum.threads import run_all

DENSE_SHARE = 0.2
"""A lone weighted block with at least this share of its entries kept runs its products on a dense
copy (measured break-even against CSR: 0.3 in float64, 0.13 in float32, which ends the run)."""
BYTES_SHARE = 0.08
"""A lone 0/1 block does so from this share (measured break-even of a byte product: 0.075; a ResNet-18
layer4 conv at ERK 0.2 keeps 0.12 of its 512 × 4608 weights)."""
COMPILED_BYTES_SHARE = 0.17
"""...or from this share where the Lanczos steps run compiled, CSR products included (measured break-even
0.17–0.2 on 512 × 4608 and 2048 × 2048 blocks)..."""
VECTOR_BYTES_SHARE = 0.35
"""...and from this one where those products gather with vector loads (``kernels.vector_products``;
measured break-even 0.3–0.4 on a 2048 × 2048 block, 0/1 and float32)."""
DENSE_ENTRIES = 1 << 20
"""...and at least this many entries (rows × columns): below, the products take microseconds either way."""
DENSE_BYTES = 3 << 26
"""Largest dense copies made (192 MiB: a 4096×4096 block in float64 and float32, or a 14189² one as bytes)."""
SINGLE_BYTES = 96 << 20
"""Largest float32 dense copy of a block's weights: a 4096² layer's 64 MiB. An 11008 × 4096 one
(172 MiB) keeps its CSR products: with that copy, a 7B model's analysis went past its memory budget."""
PRODUCT_PIECES = 4
"""Fixed pieces of rows a compiled dense product is taken in, whatever the threads (see the module
docstring); each piece's ``Aᵀq`` is summed into the whole in one fixed order."""
_CHECK_SLICE = 1 << 20


def float32_copy(values: np.ndarray) -> np.ndarray | None:
    """``values`` as float32 where that loses nothing (every value is a float32), else None."""
    single = values.astype(np.float32)
    for start in range(0, values.size, _CHECK_SLICE):  # no whole-array temporaries
        piece = slice(start, start + _CHECK_SLICE)
        if not np.array_equal(single[piece], values[piece]):
            return None
    return single


class DenseProducts:
    """``q -> A Aᵀ q`` of one block on a dense copy: ``exact`` (float64 accumulation), and for a
    weighted block ``single`` (float32 BLAS) with ``certify`` (see the module docstring)."""

    def __init__(self, exact: Callable, dense: np.ndarray | None = None):
        self.exact = exact
        self.dense = dense  # (rows, cols) float64, for the float32 copy and the certificates
        self.single = None
        if dense is not None and 12 * dense.size <= DENSE_BYTES:
            single = dense.astype(np.float32)  # (rows, cols)
            self.single = lambda q: (single @ (single.T @ q.astype(np.float32))).astype(np.float64)

    def certify(self, vectors: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
        """``(σ̂, bound)`` per row ``u`` of ``vectors``: a singular value lies within ``bound`` of ``σ̂``.

        For ``v = Aᵀu/σ̂``, ``σ̂ = ‖Aᵀu‖``, the pair ``x = (u, v)`` has ``Hx - σ̂x = (Av - σ̂u, 0)`` for
        ``H = [[0, A], [Aᵀ, 0]]``: some singular value lies within ``‖Av - σ̂u‖/√2`` of ``σ̂``.
        ``most``: the most entries in a row plus in a column (the rounding of that float64 residual,
        at most ``2·most·eps·σ1`` per product for a non-negative block, generously doubled)."""
        sigma, residual = np.zeros(len(vectors)), np.zeros(len(vectors))
        for i, u in enumerate(vectors):
            u = u / np.linalg.norm(u)
            image = self.dense.T @ u
            sigma[i] = np.linalg.norm(image)
            if sigma[i] > 0:
                residual[i] = np.linalg.norm(self.dense @ (image / sigma[i]) - sigma[i] * u)
        rounding = 4.0 * (most + 2) * EPS * float(sigma.max())
        return sigma, (residual + rounding) / math.sqrt(2.0) * (1 + 1e-6)


def dense_product(matrix: sp.csr_matrix) -> DenseProducts | None:
    """The products of ``matrix`` on a dense copy where that is cheaper than CSR products (see
    :data:`DENSE_SHARE` and the byte shares after it), else None. Through the compiled loops of
    :func:`~fullspectrum.spectrum.kernels.byte_kernels`, which accumulate in float64: a 0/1 matrix as
    bytes, a weighted one whose values are all float32 (a checkpoint's) as float32, which widen
    exactly, so the products are those of the float64 values. Any other matrix (or any without numba)
    as float64 through BLAS, with float32 BLAS products for a weighted one late in its run."""
    rows, cols = matrix.shape
    entries = rows * cols
    share = BYTES_SHARE
    if steps_kernel() is not None:
        share = VECTOR_BYTES_SHARE if vector_products() else COMPILED_BYTES_SHARE
    if entries < DENSE_ENTRIES or matrix.nnz < share * entries:
        return None
    binary = bool(np.all(matrix.data == 1))
    single = None if binary or 4 * entries > SINGLE_BYTES else float32_copy(matrix.data)
    kernels = byte_kernels() if binary or single is not None else None
    if kernels is None and matrix.nnz < DENSE_SHARE * entries:
        return None
    if kernels is not None and (single is not None or entries <= DENSE_BYTES):  # a float32 copy fits
        values = np.ones(matrix.nnz, dtype=np.uint8) if binary else single
        dense = sp.csr_matrix((values, matrix.indices, matrix.indptr), shape=(rows, cols)).toarray()
        return DenseProducts(PiecewiseProduct(dense, *kernels))
    if 8 * entries > DENSE_BYTES:
        return None
    dense = matrix.toarray()  # (rows, cols) float64
    return DenseProducts(lambda q: dense @ (dense.T @ q), None if binary else dense)


class PiecewiseProduct:
    """``q -> A (Aᵀ q)`` through the compiled loops, the rows of ``A`` in :data:`PRODUCT_PIECES`
    pieces run side by side (see the module docstring)."""

    def __init__(self, dense: np.ndarray, row_sums: Callable, row_combination: Callable):
        self.dense = dense
        self.row_sums, self.row_combination = row_sums, row_combination
        rows = dense.shape[0]
        # Piece bounds on multiples of 4 rows: the loops take 4 rows a pass, the same passes as whole.
        cuts = [min(rows, 4 * math.ceil(rows * k / PRODUCT_PIECES / 4)) for k in range(PRODUCT_PIECES + 1)]
        self.pieces = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

    def __call__(self, q: np.ndarray) -> np.ndarray:
        rows, cols = self.dense.shape
        middles = np.empty((len(self.pieces), cols))
        out = np.empty(rows)
        run_all(
            [
                functools.partial(self.row_combination, self.dense[piece], q[piece], middles[k])
                for k, piece in enumerate(self.pieces)
            ]
        )  # Aᵀ q, piece by piece
        middle = middles[0]
        for k in range(1, len(self.pieces)):  # in piece order: the same sum on any thread count
            middle += middles[k]
        run_all(
            [functools.partial(self.row_sums, self.dense[piece], middle, out[piece]) for piece in self.pieces]
        )
        return out
