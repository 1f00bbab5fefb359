"""Top singular values of many bipartite graphs at once, exactly, with multiplicity.

A :class:`GraphStack` holds many graphs (every layer's full graph and degree
classes, of the mask and of the weights) in two forms. *Column groups*
(``dense.ColumnGroups``) are graphs predicted cheaper dense: each is filled whole
into a batched dense call, which keeps every multiplicity. *Parts* are CSR
sparsity patterns whose rows may belong to different graphs (the other degree
classes of a layer sit as diagonal blocks of one part), carrying one value array
per *channel* (the 0/1 mask and ``|W|`` share a pattern when no kept weight is 0),
so their connected components are found once for all channels
(``components.py``). By Perron–Frobenius the top singular value of a
connected non-negative block is simple, so repeated values across components
(disjoint unions) are never lost. Each component takes the cheapest exact route:

* a star (one unit on a side): its one non-zero value, the norm of its edges;
* small and mid-size components: zero-padded batched dense calls (``dense.py``:
  Gram matrices under a proven error bound, ``gram.py``, else an SVD);
* the rest: one lockstep Lanczos run on ``A Aᵀ`` of each block's shorter side,
  where the backend has it and its bound proves the values (``gram_lanczos.py``),
  and lockstep Golub–Kahan for any block left (``lanczos.py``); a block of 2^18
  edges or more runs alone, so a large layer's edges are never copied into one matrix.

A graph's values are the largest of its components' values; what is missing is zero.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from fullspectrum.spectrum.blocks import (
    block_diagonal,
    component_blocks,
    oriented,
    rank_within_groups,
    split_blocks,
)
from fullspectrum.spectrum.components import connected_parts
from fullspectrum.spectrum.dense import (
    BATCH_SIDE,
    ColumnGroups,
    DensePool,
    dense_top,
    kind_of,
)
from fullspectrum.spectrum.gram_lanczos import gram_lanczos
from fullspectrum.spectrum.graph import concatenated_ranges, row_slices
from fullspectrum.spectrum.kernels import gram_tops_kernel
from fullspectrum.spectrum.lanczos import batched_golub_kahan
from fullspectrum.spectrum.threads import run_all

SEPARATE_EDGES = 1 << 18
"""A Lanczos block with this many edges runs on its own (see ``_Pool.tasks``)."""
PARALLEL_EDGES = 1 << 21
"""A stack of at most this many edges (every ResNet layer's) runs its solves side by side
(``threads.run_all``; a backend with ``parallel``): a 512 × 4608 layer's two Lanczos runs and its
dense class solves take about a third of its time each. A larger one runs them one by one, each
large block's matrix made and let go in turn, and its dense products take the threads instead."""
PARALLEL_MIN_EDGES = 1 << 15
"""...and at least this many: a smaller one takes a few milliseconds, where handing work to another
thread costs about what it saves (measured on ResNet-18 at density 0.01, whose largest layer has 12.5k)."""


@dataclass(frozen=True)
class GraphPart:
    """Graphs sharing one CSR sparsity pattern, with one positive value array per channel.

    Local graph ``g`` owns rows ``row_bounds[g]:row_bounds[g+1]`` and columns
    ``col_bounds[g]:col_bounds[g+1]`` (no edge leaves its block); in channel
    ``c`` it is graph ``graph_ids[g] + offsets[c]`` of the stack. Rows and columns without
    edges add only zero singular values.
    """

    indptr: np.ndarray
    indices: np.ndarray
    shape: tuple[int, int]
    row_bounds: np.ndarray
    col_bounds: np.ndarray
    graph_ids: np.ndarray
    values: tuple[np.ndarray, ...]
    offsets: tuple[int, ...]


@dataclass(frozen=True)
class GraphStack:
    """Graphs ``0 .. n_graphs-1``, given as sparse parts and as column groups solved dense."""

    parts: tuple[GraphPart, ...]
    n_graphs: int
    columns: tuple[ColumnGroups, ...] = ()

    @staticmethod
    def of_matrix(matrix: sp.spmatrix) -> GraphStack:
        """One graph: the biadjacency ``matrix`` (exact zeros dropped, signs kept)."""
        csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        csr.eliminate_zeros()
        csr.sort_indices()
        bounds = (np.array([0, csr.shape[0]]), np.array([0, csr.shape[1]]))
        return GraphStack((part_of(csr, *bounds, [(csr.data, 0)]),), 1)

    @staticmethod
    def concatenate(stacks: list[GraphStack]) -> GraphStack:
        """One stack of every graph of ``stacks``, numbered in order."""
        parts, columns, base = [], [], 0
        for stack in stacks:
            parts.extend(replace(p, offsets=tuple(o + base for o in p.offsets)) for p in stack.parts)
            columns.extend(c.shifted(base) for c in stack.columns)
            base += stack.n_graphs
        return GraphStack(tuple(parts), base, tuple(columns))


def part_of(
    pattern: sp.csr_matrix,
    row_bounds: np.ndarray,
    col_bounds: np.ndarray,
    channels: list[tuple[np.ndarray, int]],
    graph_ids: np.ndarray | None = None,
) -> GraphPart:
    """A part over ``pattern``'s structure, its graphs' row and column ranges (and, if not
    ``0, 1, ...``, their ids), and ``channels`` of ``(values, graph offset)``."""
    graphs = len(row_bounds) - 1
    return GraphPart(
        indptr=pattern.indptr,
        indices=pattern.indices,
        shape=pattern.shape,
        row_bounds=np.asarray(row_bounds, dtype=np.int64),
        col_bounds=np.asarray(col_bounds, dtype=np.int64),
        graph_ids=np.arange(graphs) if graph_ids is None else np.asarray(graph_ids, dtype=np.int64),
        values=tuple(v for v, _ in channels),
        offsets=tuple(int(o) for _, o in channels),
    )


def stack_top(stack: GraphStack, want: int = 2, backend=None) -> np.ndarray:
    """The ``want`` largest singular values of every graph of ``stack``, ``(n_graphs, want)``, descending.

    Values a graph does not have (fewer units on a side than ``want``, or a
    smaller rank) are zero. With ``want > 2`` every non-star component is solved
    densely: Lanczos finds distinct values only, and a component's third value
    may be repeated. ``backend`` (default numpy, see ``backends.py``) runs the
    batched dense calls and the Lanczos run. Where the caller holds no other reference to
    ``stack`` (``stack_top(GraphStack.concatenate(...))``), each column group of a stack of more than
    :data:`PARALLEL_EDGES` edges is freed once solved (a smaller stack's solves run side by side).
    """
    pool = _Pool(want, backend or NUMPY)
    columns, parts, n_graphs = list(stack.columns), stack.parts, stack.n_graphs
    del stack  # a stack handed over whole lets go of each column group once it is solved
    edges = sum(c.indices.size for c in columns) + sum(p.indices.size for p in parts)
    if getattr(pool.backend, "parallel", False) and PARALLEL_MIN_EDGES <= edges <= PARALLEL_EDGES:
        for part in parts:  # the routes first, then every solve side by side
            if part.indices.size:
                _split_part(part, pool)
        column_tasks = [
            functools.partial(_into_list, functools.partial(c.solve, channels=(channel,)), want, pool.backend)
            for c in columns
            for channel in range(len(c.values))
        ]
        dense_task, *lanczos_tasks = pool.tasks(by_channel=True)
        # On any thread: the Lanczos runs (compiled loops), the large first, and the column groups'
        # dense solves (BLAS, and LAPACK called from compiled code, without the GIL, once numba is
        # loaded: ``gram.gram_top``); the pooled small components here. Measured on ResNet-18 at
        # 0.2, a loop of per-layer calls: 0.43 s, against 0.50 s with the dense solves all here
        # and 0.59 s one by one.
        tasks = lanczos_tasks[::-1] + column_tasks + [dense_task]
        compiled = gram_tops_kernel() is not None  # else scipy's LAPACK, which holds the GIL
        shared = [True] * len(lanczos_tasks) + [compiled] * len(column_tasks) + [False]
        for found in run_all(tasks, shared):  # the same values in any order
            pool.found.extend(found)
    else:
        while columns:
            columns.pop(0).solve(want, pool.backend, pool.found)
        for part in parts:
            if part.indices.size:
                _split_part(part, pool)
        for task in pool.tasks():
            pool.found.extend(task())
    graph_ids, values = pool.gathered()
    out = np.zeros((n_graphs, want))
    if graph_ids.size == 0:
        return out
    # Per graph, the largest `want` values over its components (multiplicity kept).
    order = np.lexsort((-values, graph_ids))
    graph_ids, values = graph_ids[order], values[order]
    rank = np.arange(graph_ids.size) - np.searchsorted(graph_ids, graph_ids, side="left")
    keep = rank < want
    out[graph_ids[keep], rank[keep]] = values[keep]
    return out


class _Pool:
    """Components of every part, gathered by route, then solved in batches."""

    def __init__(self, want: int, backend):
        self.want = want
        self.backend = backend
        self.found: list[tuple[np.ndarray, np.ndarray]] = []  # (graph, value) pairs
        self.dense = DensePool(want, backend, self.found)
        self.lanczos: list[tuple] = []  # (matrix or a function making it, nnz, rows, cols, graphs, channel)

    def add_values(self, graphs: np.ndarray, values: np.ndarray) -> None:
        self.found.append((graphs, values))

    def add_dense(self, *component_arrays) -> None:
        """Components for the dense route (see ``dense.DensePool.add``)."""
        self.dense.add(*component_arrays)

    def add_lanczos(self, matrix, rows, cols, graphs, channel: int, nnz: int | None = None) -> None:
        """Diagonal blocks of ``matrix`` with ``rows[k] <= cols[k]`` (the shorter side as rows), of
        a part's ``channel`` (its place in the part's channels: 0 the 0/1 mask, 1 the weights).

        ``matrix`` may be a function making it, given with its ``nnz``: it is then made only when
        its run starts, and let go when it ends (a large layer's channels, each transposed to put
        its shorter side as rows, are then never held together)."""
        self.lanczos.append((matrix, matrix.nnz if nnz is None else nnz, rows, cols, graphs, channel))

    def tasks(self, by_channel: bool = False) -> list[Callable[[], list]]:
        """What is left to solve, as independent tasks each giving its ``(graph, value)`` pairs: the
        pooled dense components, then the lockstep Lanczos runs over the collected blocks: the small
        together (one sparse product per step serves them all; ``by_channel``: one run per channel,
        two tasks to run side by side, a 0/1 one on the products that read no values), each block
        of at least :data:`SEPARATE_EDGES` edges alone (its own products dwarf the per-step
        overhead, and no block-diagonal copy of its edges is made). Run one after the other, each
        large block's matrix is made when its run starts and let go when it ends."""
        large = [[entry] for entry in self.lanczos if entry[1] >= SEPARATE_EDGES]
        small = [entry for entry in self.lanczos if entry[1] < SEPARATE_EDGES]
        self.lanczos = []
        if by_channel:
            channels = sorted({entry[5] for entry in small})
            groups = [[entry for entry in small if entry[5] == c] for c in channels] + large
        else:
            groups = ([small] if small else []) + large
        dense_task = functools.partial(_into_list, self.dense.solve)
        return [dense_task] + [functools.partial(self._solve_group, group) for group in groups]

    def gathered(self) -> tuple[np.ndarray, np.ndarray]:
        """Every ``(graph, value)`` pair found."""
        if not self.found:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate([g for g, _ in self.found]), np.concatenate([v for _, v in self.found])

    def _solve_group(self, entries: list) -> list:
        """One lockstep run on ``A Aᵀ`` of every block (shorter side as rows), where the backend has
        one and its bound proves the values; Golub–Kahan for the rest (``gram_lanczos.py``)."""
        matrix = block_diagonal([m if isinstance(m, sp.spmatrix | sp.sparray) else m() for m, *_ in entries])
        short = np.concatenate([entry[2] for entry in entries])
        long = np.concatenate([entry[3] for entry in entries])
        graphs = np.concatenate([entry[4] for entry in entries])
        entries.clear()  # a matrix made for this run goes with it
        gram = getattr(self.backend, "gram_lanczos", None)
        if gram is None:
            values = self.backend.golub_kahan(matrix, short, long, self.want)
        else:
            values, proven = gram(matrix, short, long, self.want)
            pending = np.flatnonzero(~proven)
            if pending.size:  # those blocks alone, to Golub–Kahan
                blocks = split_blocks(matrix, short, long)
                chosen = block_diagonal([blocks[i] for i in pending.tolist()])
                values[pending] = self.backend.golub_kahan(chosen, short[pending], long[pending], self.want)
        return [(np.repeat(graphs, self.want), values.ravel())]


def _into_list(solve: Callable[..., None], *arguments) -> list:
    """The ``(graph, value)`` pairs ``solve(*arguments, found)`` appends to a list of its own."""
    found: list = []
    solve(*arguments, found)
    return found


def _split_part(part: GraphPart, pool: _Pool) -> None:
    """Hand every graph of ``part`` to its route: whole to a dense call where that is predicted
    cheapest (no component analysis needed: a dense SVD keeps every multiplicity), else split
    into connected components."""
    rows = np.diff(part.row_bounds)
    cols = np.diff(part.col_bounds)
    edge_bounds = part.indptr[part.row_bounds]
    nnz = np.diff(edge_bounds)
    has_edges = nnz > 0
    direct = has_edges & _dense_is_cheaper(rows, cols, nnz)
    if direct.any():
        chosen = np.flatnonzero(direct)
        edges = concatenated_ranges(edge_bounds[chosen], edge_bounds[chosen + 1])
        row_ids = concatenated_ranges(part.row_bounds[chosen], part.row_bounds[chosen + 1])
        edge_rows = np.repeat(row_ids, np.diff(part.indptr)[row_ids])
        edge_graph = np.repeat(np.arange(chosen.size), nnz[chosen])
        local_rows = edge_rows - part.row_bounds[chosen][edge_graph]
        local_cols = part.indices[edges] - part.col_bounds[chosen][edge_graph]
        for values, offset in zip(part.values, part.offsets):
            pool.add_dense(
                rows[chosen],
                cols[chosen],
                part.graph_ids[chosen] + offset,
                edge_graph,
                local_rows,
                local_cols,
                values[edges],
                kind_of(values),
            )
    rest = np.flatnonzero(has_edges & ~direct)
    if rest.size == 0:
        return
    if rest.size == rows.size:
        indptr, indices, values = part.indptr, part.indices, part.values
    else:  # only the rows and edges of the graphs left
        row_ids = concatenated_ranges(part.row_bounds[rest], part.row_bounds[rest + 1])
        edges = concatenated_ranges(edge_bounds[rest], edge_bounds[rest + 1])
        indptr = np.concatenate([[0], np.cumsum(np.diff(part.indptr)[row_ids])])
        indices, values = part.indices[edges], tuple(v[edges] for v in part.values)
    row_graph = np.repeat(part.graph_ids[rest], rows[rest])
    _split_components(indptr, indices, part.shape[1], row_graph, values, part.offsets, pool)


def _split_components(indptr, indices, n_cols, row_graph, channels, offsets, pool: _Pool) -> None:
    """Find the connected components of a pattern once and hand each, per channel, to its route."""
    n_rows = indptr.size - 1
    count, row_label, col_label = connected_parts(indptr, indices, n_cols)
    row_degree = np.diff(indptr)
    rows = np.bincount(row_label, minlength=count)
    cols = np.bincount(col_label, minlength=count)
    edge_counts = np.bincount(row_label, weights=row_degree, minlength=count).astype(np.int64)
    component_graph = np.zeros(count, dtype=np.int64)
    component_graph[row_label] = row_graph
    has_edges = edge_counts > 0
    star = has_edges & (np.minimum(rows, cols) == 1)
    large = has_edges & ~star & (np.maximum(rows, cols) > BATCH_SIDE)
    lanczos_route = (
        large & ~_dense_is_cheaper(rows, cols, edge_counts) if pool.want <= 2 else np.zeros(count, bool)
    )
    dense_route = has_edges & ~star & ~lanczos_route
    stars = np.flatnonzero(star)
    lanczos_ids = np.flatnonzero(lanczos_route)
    dense_ids = np.flatnonzero(dense_route)
    whole = lanczos_ids.size == 1 and edge_counts[lanczos_ids[0]] == indices.size
    if dense_ids.size or (lanczos_ids.size and not whole):  # per-edge labels and ranks are needed
        edge_rows = np.repeat(np.arange(n_rows, dtype=np.int32 if n_rows < 2**31 else np.int64), row_degree)
        edge_label = row_label[edge_rows]
        row_rank = rank_within_groups(row_label, count)
        col_rank = rank_within_groups(col_label, count)
    for channel, (values, offset) in enumerate(zip(channels, offsets)):
        graphs = component_graph + offset
        if stars.size:
            squares = _row_sums_of_squares(values, indptr)
            norms = np.sqrt(np.bincount(row_label, weights=squares, minlength=count))
            pool.add_values(graphs[stars], norms[stars])
        if dense_ids.size:
            slot = np.full(count, -1)
            slot[dense_ids] = np.arange(dense_ids.size)
            edges = np.flatnonzero(slot[edge_label] >= 0)
            pool.add_dense(
                rows[dense_ids],
                cols[dense_ids],
                graphs[dense_ids],
                slot[edge_label[edges]],
                row_rank[edge_rows[edges]],
                col_rank[indices[edges]],
                values[edges],
                kind_of(values),
            )
        if lanczos_ids.size:
            short = np.minimum(rows[lanczos_ids], cols[lanczos_ids])
            long = np.maximum(rows[lanczos_ids], cols[lanczos_ids])
            if whole:  # one connected component holds every edge: the matrix as it is, made when solved
                pool.add_lanczos(
                    oriented(values, indices, indptr, n_cols),
                    short,
                    long,
                    graphs[lanczos_ids],
                    channel,
                    indices.size,
                )
            else:
                blocks = component_blocks(
                    lanczos_ids, edge_label, row_rank[edge_rows], col_rank[indices], rows, cols, count
                )
                pool.add_lanczos(blocks(values), short, long, graphs[lanczos_ids], channel)


def _row_sums_of_squares(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Sum of the squared values of each CSR row (zero for a row without edges), a slice at a time."""
    sums = np.zeros(indptr.size - 1)
    row_degree = np.diff(indptr)
    for first, stop in row_slices(indptr):
        live = first + np.flatnonzero(row_degree[first:stop])
        if live.size:
            piece = values[indptr[first] : indptr[stop]]
            sums[live] = np.add.reduceat(piece * piece, indptr[live] - indptr[first])
    return sums


def _dense_is_cheaper(rows: np.ndarray, cols: np.ndarray, nnz: np.ndarray) -> np.ndarray:
    """Per graph or component: whether a dense Gram or SVD is predicted cheaper than its share of
    a Lanczos run.

    Seconds, fitted on one BLAS thread (2-core x86 dev machine): the Gram product and
    its tridiagonalisation, LAPACK's SVD, and ~40 lockstep Lanczos steps of
    re-orthogonalisation and matvecs (the fixed per-step overhead is shared).
    """
    rows, cols, nnz = (np.asarray(x, dtype=np.float64) for x in (rows, cols, nnz))
    small, large = np.minimum(rows, cols), np.maximum(rows, cols)
    gram_seconds = 1e-4 + 2.0 * small * small * large * 1.1e-11 + small**3 * 1e-10
    svd_seconds = 4.0 * rows * cols * small * 7e-11
    lanczos_seconds = 1.5e-4 + 8e-7 * (rows + cols) + 5e-8 * nnz
    return np.minimum(gram_seconds, svd_seconds) <= lanczos_seconds


class NumpyBackend:
    """numpy/scipy on the CPU, one BLAS thread (``threads.py``); see ``backends.py``."""

    name = "numpy"
    parallel = True
    """Its solves may run side by side (``stack.PARALLEL_EDGES``): each holds its own arrays."""
    batch_edges = 1 << 17
    """Kept weights ``layer_spectra`` gathers per batch (measured: ResNet-18's larger layers run as
    fast alone as together, while its small ones gain from company)."""

    def golub_kahan(self, matrix, row_sizes, col_sizes, want):
        return batched_golub_kahan(matrix, row_sizes, col_sizes, want)

    def gram_lanczos(self, matrix, row_sizes, col_sizes, want):
        return gram_lanczos(matrix, row_sizes, col_sizes, want)

    def dense_top(self, stack, want, kind=None):
        return dense_top(stack, want, kind)


NUMPY = NumpyBackend()
"""The default backend."""
