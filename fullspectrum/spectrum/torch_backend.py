"""The engine's two arithmetic kernels in torch, float64, on any device (a GPU above all).

:class:`TorchBackend` runs the algorithms of the numpy backend, so that a layer's
values agree across devices to rounding (SPEC §1; tested to ``1e-9``):
``golub_kahan`` is the lockstep Golub–Kahan–Lanczos run of ``lanczos.py`` (per step,
one sparse CSR matvec with the block-diagonal matrix and one with its transpose
serve every block; per-block inner products; full re-orthogonalisation; the same
start vector, convergence test, breakdown rule and compaction), and ``dense_top``
is the Gram route of ``gram.py`` under the same proven error bound, with a batched
SVD wherever the bound fails.

Why float64: SPEC §1 asks for it on every device, and neither the Gram bound nor
the Lanczos tolerance (``1e-9``) is reachable in float32 (its epsilon is ``6e-8``).

What stays on the host, and why: graph construction and component analysis
(``stack.py``, shared by every backend), and each block's recurrence coefficients
``alpha``/``beta`` with the convergence bookkeeping. The convergence test needs a
decision per block from the top Ritz pairs of a bidiagonal a few hundred wide at most
(``lanczos.top_ritz``, the numpy backend's own test), after one copy of ``blocks``
numbers per half-step; the vectors,
as long as the matrix is wide, never leave the device.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum.gram import ACCEPTED_ERROR, EPS, SOLVER_FACTOR
from fullspectrum.spectrum.lanczos import (
    BREAKDOWN,
    MAX_STEPS,
    RESIDUAL_TOL,
    ritz_after_breakdown,
    steps_to_converge,
    top_ritz,
)

_F64 = torch.float64
_COMPACT_SHARE = 0.25
"""Cut finished blocks out of the operator once they hold this share of the work per step."""


class TorchBackend:
    """The engine's kernels in torch on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``); see ``backends.py``.

    Inputs and outputs are numpy arrays, as for the numpy backend: the backend moves
    the data to its device and the values back. ``segmented`` picks how per-block
    inner products are taken: segmented sums (a few kernels for all blocks: best on a
    GPU, where a launch costs more than the arithmetic) or two BLAS calls per block
    (best on a CPU, 10-20x faster there); default: segmented on a GPU only.
    """

    batch_edges = 1 << 24
    """Kept weights ``layer_spectra`` gathers per batch: on a GPU a kernel launch costs more than
    its arithmetic, so the bigger the batch the better (bounded for memory)."""

    def __init__(self, device: str = "cpu", *, segmented: bool | None = None):
        self.device = _resolve(device)
        self.name = f"torch:{self.device}"
        self.segmented = self.device.type != "cpu" if segmented is None else segmented

    def golub_kahan(
        self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray, want: int
    ) -> np.ndarray:
        """Top ``want`` singular values of every diagonal block, ``(blocks, want)`` (``lanczos.py``)."""
        row_sizes = np.asarray(row_sizes, dtype=np.int64)
        col_sizes = np.asarray(col_sizes, dtype=np.int64)
        results = np.zeros((row_sizes.size, want))
        if row_sizes.size == 0:
            return results
        with torch.no_grad(), _one_cpu_thread(self.device):
            state = _State(sp.csr_matrix(matrix, dtype=np.float64), row_sizes, col_sizes, want, self)
            while state.active.any():
                state.step(results)
        return results

    def dense_top(self, stack: np.ndarray, want: int, kind: str | None = None) -> np.ndarray:
        """Top ``want`` singular values of each matrix of a ``(batch, m, n)`` stack, ``(batch, want)``.

        ``kind`` (what the caller knows of the entries) is not needed here: on the device the
        checks of the entries cost little beside the transfer."""
        if stack.shape[0] == 0:
            return np.zeros((0, want))
        with torch.no_grad(), _one_cpu_thread(self.device):
            matrices = torch.as_tensor(np.ascontiguousarray(stack, dtype=np.float64), device=self.device)
            values, certified = _gram_top(matrices, want)
            if not bool(certified.all()):
                unproven = torch.nonzero(~certified).squeeze(1)
                values[unproven] = torch.linalg.svdvals(matrices[unproven])[:, :want]
            return values.cpu().numpy()


def _resolve(device: str) -> torch.device:
    """``device`` as a torch device with its index, or a one-line error saying what is available."""
    try:
        target = torch.device(device)
    except RuntimeError:
        raise FullSpectrumError(
            f"device {device!r}: not a torch device (use 'cpu', 'cuda' or 'cuda:N')"
        ) from None
    if target.type == "cpu":
        return target
    if target.type != "cuda":
        raise FullSpectrumError(f"device {device!r}: the torch backend runs on 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise FullSpectrumError(f"device {device!r}: no CUDA device is available here (use device='cpu')")
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if target.index is None else target.index
    if index >= count:
        raise FullSpectrumError(
            f"device {device!r}: this machine has {count} CUDA device(s), cuda:0..{count - 1}"
        )
    return torch.device("cuda", index)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """One torch thread on the CPU while a kernel runs, as ``threads.py`` does for BLAS.

    The ops are small and many: idle threads spinning between them fight other
    processes for the cores (measured: 8x slower on a loaded 2-core machine).
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _gram_top(stack: torch.Tensor, want: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``gram.gram_top`` in torch: values from ``eigvalsh`` of the Gram matrices, and which are proven."""
    _, rows, cols = stack.shape
    transposed = rows < cols  # Gram on the smaller side
    gram = stack @ stack.mT if transposed else stack.mT @ stack
    inner, side = (cols, rows) if transposed else (rows, cols)
    eigenvalues = torch.linalg.eigvalsh(gram).flip(-1)[:, :want]  # descending
    values = eigenvalues.clamp(min=0.0).sqrt()
    if bool((stack >= 0).all()):
        scale = eigenvalues[:, 0].abs()  # ‖G‖ = σ1² for a non-negative matrix
        # 0/1 products are small integers: exact in float64 in any summation order.
        exact_products = bool(((stack == 0) | (stack == 1)).all()) and inner < 2**52
    else:
        scale = torch.einsum("bij,bij->b", stack, stack)  # ‖A‖_F² >= ‖|A|ᵀ|A|‖
        exact_products = False
    product_error = 0.0 if exact_products else inner * EPS / (1 - inner * EPS)
    delta = (product_error + SOLVER_FACTOR * side * EPS) * scale * (1 + 1e-6)
    error = torch.where(values > 0, delta[:, None] / values, torch.inf)
    error = torch.minimum(error, delta.sqrt()[:, None])  # |sqrt(a) - sqrt(b)| <= sqrt(|a - b|)
    certified = (error <= ACCEPTED_ERROR * values[:, :1].clamp(min=1.0)).all(dim=1)
    return values, certified


def _csr(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """A scipy CSR matrix as a float64 torch sparse CSR tensor on ``device``."""
    with warnings.catch_warnings():  # torch says once per process that sparse CSR is in beta
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.as_tensor(matrix.indptr.astype(np.int64), device=device),
            torch.as_tensor(matrix.indices.astype(np.int64), device=device),
            torch.as_tensor(matrix.data, device=device),
            size=matrix.shape,
            dtype=_F64,
            device=device,
            check_invariants=False,
        )


class _Side:
    """One side (rows or columns) of the block-diagonal operator: which block owns each entry."""

    def __init__(self, sizes: np.ndarray, device: torch.device):
        self.blocks = sizes.size
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self.ranges = list(zip(bounds[:-1], bounds[1:]))
        self.owner = torch.as_tensor(np.repeat(np.arange(sizes.size), sizes), device=device)

    def expand(self, values: torch.Tensor) -> torch.Tensor:
        """Per-block values spread over the side's entries (one block: broadcast as is)."""
        return values if self.blocks == 1 else values[self.owner]

    def sums(self, values: torch.Tensor) -> torch.Tensor:
        """Per-block sums along the last axis: ``(..., entries)`` -> ``(..., blocks)``."""
        if self.blocks == 1:
            return values.sum(dim=-1, keepdim=True)
        out = values.new_zeros((*values.shape[:-1], self.blocks))
        return out.index_add_(values.dim() - 1, self.owner, values)

    def orthogonalise(self, vector: torch.Tensor, basis: torch.Tensor, segmented: bool) -> None:
        """Remove from ``vector`` (in place) its per-block projections on the rows of ``basis``."""
        if basis.shape[0] == 0:
            return
        if self.blocks == 1:
            vector -= basis.T @ (basis @ vector)
        elif segmented:
            coefficients = self.sums(basis * vector)  # (steps, blocks)
            vector -= (coefficients[:, self.owner] * basis).sum(dim=0)
        else:
            for start, end in self.ranges:
                piece = basis[:, start:end]
                vector[start:end] -= piece.T @ (piece @ vector[start:end])


class _State:
    """``lanczos._State`` with its vectors on the device and its recurrences on the host."""

    def __init__(self, matrix: sp.csr_matrix, row_sizes, col_sizes, want: int, backend: TorchBackend):
        self.want, self.device, self.segmented = want, backend.device, backend.segmented
        self.original = np.arange(row_sizes.size)  # block index in the caller's numbering
        self.limit = np.minimum(np.minimum(row_sizes, col_sizes), MAX_STEPS)
        self._set_operator(matrix, row_sizes, col_sizes)
        capacity = int(min(self.limit.max(), 64))
        rng = np.random.default_rng(0)  # the numpy backend's start vector, bit for bit
        v = torch.as_tensor(rng.standard_normal(self.cols) + 1.0, device=self.device)
        v /= self.col_side.expand(self.col_side.sums(v * v).sqrt())
        self.right = torch.zeros((capacity + 1, self.cols), dtype=_F64, device=self.device)
        self.left = torch.zeros((capacity, self.rows), dtype=_F64, device=self.device)
        self.right[0] = v
        blocks = row_sizes.size
        self.alphas = np.zeros((blocks, capacity))
        self.betas = np.zeros((blocks, capacity))
        self.beta = torch.zeros(blocks, dtype=_F64, device=self.device)
        self.scale = np.zeros(blocks)
        self.active = np.ones(blocks, dtype=bool)
        self.keep: torch.Tensor | None = None  # ``active`` on the device; None when out of date
        self.next_check = np.full(blocks, want + 2)
        self.last_check = np.full((blocks, 2), np.nan)  # (step, residual) of the previous test
        self.n = 0  # steps taken

    def _set_operator(self, matrix: sp.csr_matrix, row_sizes: np.ndarray, col_sizes: np.ndarray) -> None:
        self.host = matrix  # for compaction: scipy slices CSR rows and columns, torch does not
        self.matrix = _csr(matrix, self.device)
        self.transpose = _csr(matrix.T.tocsr(), self.device)  # a CSR copy: the fastest matvec there is
        self.rows, self.cols = matrix.shape
        self.row_sizes, self.col_sizes = row_sizes, col_sizes
        self.row_side, self.col_side = _Side(row_sizes, self.device), _Side(col_sizes, self.device)
        # Work per block and step: its matvec entries and its vector lengths.
        starts = np.concatenate([[0], np.cumsum(row_sizes)[:-1]])
        self.work = np.add.reduceat(np.diff(matrix.indptr), starts) + row_sizes + col_sizes

    def _normalised(self, vector: torch.Tensor, norms: torch.Tensor, side: _Side) -> torch.Tensor:
        """``vector`` over its block's norm, zero in finished blocks (they stay frozen)."""
        if self.active.all():
            return vector / side.expand(norms)
        if self.keep is None:  # copied to the device only after a block has finished
            self.keep = torch.as_tensor(self.active, device=self.device)
        return vector / side.expand(torch.where(self.keep, norms, 1.0)) * side.expand(self.keep)

    def _broke(self, norms: np.ndarray) -> np.ndarray:
        return self.active & (norms <= BREAKDOWN * np.maximum(self.scale, 1.0))

    def step(self, results: np.ndarray) -> None:
        step = self.n
        if step == self.left.shape[0]:
            self._grow()
        u = self.matrix @ self.right[step]
        if step:
            u -= self.row_side.expand(self.beta) * self.left[step - 1]
        self.row_side.orthogonalise(u, self.left[:step], self.segmented)
        alpha_device = self.row_side.sums(u * u).sqrt()
        alpha = alpha_device.cpu().numpy()  # the one host copy of this half-step
        self.scale = np.maximum(self.scale, alpha)
        for block in np.flatnonzero(self._broke(alpha)):
            # A v_step lies in span(U): the space is invariant, the Ritz values exact.
            self._finish(
                results,
                block,
                ritz_after_breakdown(self.alphas[block, :step], self.betas[block, :step], self.want),
            )
        u = self._normalised(u, alpha_device, self.row_side)
        self.left[step] = u
        self.alphas[:, step] = alpha
        w = self.transpose @ u - self.col_side.expand(alpha_device) * self.right[step]
        self.col_side.orthogonalise(w, self.right[: step + 1], self.segmented)
        beta_device = self.col_side.sums(w * w).sqrt()
        beta = beta_device.cpu().numpy()
        self.scale = np.maximum(self.scale, beta)
        self.n = n = step + 1
        broke = self._broke(beta)
        due = self.active & (broke | (n >= self.limit) | (n >= self.next_check))
        if due.any():
            self._test(results, np.flatnonzero(due), broke, beta)
        self.betas[:, step] = beta
        self.beta = beta_device
        self.right[step + 1] = self._normalised(w, beta_device, self.col_side)
        if self.active.any() and self.work[~self.active].sum() >= _COMPACT_SHARE * self.work.sum():
            self._compact()

    def _grow(self) -> None:
        extra = self.left.shape[0]
        self.left = torch.cat([self.left, self.left.new_zeros((extra, self.rows))])
        self.right = torch.cat([self.right, self.right.new_zeros((extra, self.cols))])
        self.alphas = np.concatenate([self.alphas, np.zeros((self.alphas.shape[0], extra))], axis=1)
        self.betas = np.concatenate([self.betas, np.zeros((self.betas.shape[0], extra))], axis=1)

    def _test(self, results: np.ndarray, due: np.ndarray, broke: np.ndarray, beta: np.ndarray) -> None:
        """Convergence test of the blocks ``due``, on the host, as ``lanczos._State`` does it."""
        n = self.n
        for block in due.tolist():
            theta, last = top_ritz(self.alphas[block, :n], self.betas[block, : n - 1], self.want)
            if broke[block]:
                self._finish(results, block, theta)
                continue
            if n >= self.want:
                # Error bound of the top Ritz values: beta times the last entries of their vectors.
                residual = float(beta[block] * np.max(np.abs(last)))
                tolerance = RESIDUAL_TOL * max(1.0, float(theta[0]))
                if residual <= tolerance:
                    self._finish(results, block, theta)
                    continue
                self.next_check[block] = n + steps_to_converge(self.last_check[block], n, residual, tolerance)
                self.last_check[block] = (n, residual)
            if n >= self.limit[block]:
                self._finish(results, block, theta)

    def _finish(self, results: np.ndarray, block: int, values: np.ndarray) -> None:
        kept = values[: self.want]
        results[self.original[block], : kept.size] = kept
        self.active[block] = False
        self.keep = None

    def _compact(self) -> None:
        """Keep only the running blocks: their rows, columns, vectors and recurrences."""
        running = self.active
        keep_rows = np.flatnonzero(np.repeat(running, self.row_sizes))
        keep_cols = np.flatnonzero(np.repeat(running, self.col_sizes))
        matrix = self.host[keep_rows][:, keep_cols]
        self.left = self.left[:, torch.as_tensor(keep_rows, device=self.device)]
        self.right = self.right[:, torch.as_tensor(keep_cols, device=self.device)]
        self.beta = self.beta[torch.as_tensor(np.flatnonzero(running), device=self.device)]
        for name in ("alphas", "betas", "scale", "next_check", "last_check", "limit", "original"):
            setattr(self, name, getattr(self, name)[running])
        self._set_operator(matrix, self.row_sizes[running], self.col_sizes[running])
        self.active = np.ones(int(running.sum()), dtype=bool)
        self.keep = None
