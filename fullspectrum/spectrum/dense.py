"""Top singular values of many small or mid-size matrices, in a few batched dense calls.

Two ways in. :class:`DensePool` gathers components given as edge lists (the small
trees of a sparse mask, graphs predicted cheaper dense than Lanczos) and fills
them, zero-padded, into stacks of a shared shape. :class:`ColumnGroups` holds
graphs that are groups of columns of one CSC matrix — a layer's degree classes,
or its whole graph — and fills each block straight from its column slice: the
rows of the layer that a class does not reach are zero rows, which change no
singular value, so no component analysis and no renumbering is needed. Either
way a dense call keeps every multiplicity.

Each stack goes to the backend's ``dense_top``: the Gram matrix under a proven
error bound (``gram.py``), an SVD where the bound fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from fullspectrum.spectrum.gram import gram_top
from fullspectrum.spectrum.graph import column_counts, concatenated_ranges, row_slices
from fullspectrum.spectrum.kernels import column_scatter_kernel

BATCH_SIDE = 48
"""Components whose larger side is at most this go to square buckets (sparse masks split into
many tiny trees)."""
_BUCKETS = ((0, 4), (4, 12), (12, 24), (24, BATCH_SIDE))
KINDS = (None, "nonnegative", "binary")
"""What may be known of a matrix's entries (see ``gram.gram_top``), least first."""
_POOL_EDGES = 1 << 19
"""Edges the pool gathers (from many graphs, for few batched calls) before it is solved."""
_SORT_EDGES = 1 << 16
"""Edges ``column_groups`` sorts into column order at once (its temporaries: about 40 bytes each)."""
_PLACE_RUN = 8
"""Entries per place (column) that a slice of the compiled column sort holds on average, at least."""
_BUCKET_ENTRIES = 1 << 22
"""Largest zero-padded stack (entries) one batched dense call is given."""


def dense_top(stack: np.ndarray, want: int, kind: str | None = None) -> np.ndarray:
    """Top ``want`` singular values of each matrix of a ``(batch, m, n)`` stack, ``(batch, want)``.

    From the Gram matrices where their error bound is proven, else from an SVD
    (``kind``: what is known of the entries, see ``gram.gram_top``).
    """
    values, certified = gram_top(stack, want, kind)
    if not certified.all():
        _rank_one(stack, values, certified)
    if not certified.all():
        unproven = np.flatnonzero(~certified)
        values[unproven] = np.linalg.svd(stack[unproven], compute_uv=False)[:, :want]
    return values


def _rank_one(stack: np.ndarray, values: np.ndarray, certified: np.ndarray) -> None:
    """The exact values of the unproven 0/1 matrices whose nonzero rows are all alike: a complete
    bipartite graph on its units, whose only nonzero singular value is ``sqrt(edges)``. The Gram
    bound cannot prove their zero ``sigma2`` (a dense layer, a class that is the whole layer), and an
    SVD of each would cost more than the rest of the layer."""
    for b in np.flatnonzero(~certified).tolist():
        matrix = stack[b]
        live = matrix[matrix.any(axis=1)]
        first = live[0] if live.size else live
        if (
            live.size
            and np.all((first == 0) | (first == 1))
            and np.array_equal(live, np.broadcast_to(first, live.shape))
        ):
            values[b] = 0.0
            values[b, 0] = np.sqrt(float(live.sum()))
            certified[b] = True


def kind_of(values: np.ndarray) -> str | None:
    """What the entries of a channel are known to be (the 0/1 mask, or weights' magnitudes)."""
    if values.size and values.min() >= 0:
        return "binary" if values.min() == 1 and values.max() == 1 else "nonnegative"
    return None


def round_up(sizes: np.ndarray) -> np.ndarray:
    """Sizes rounded up to a grid with at most 1/8 of padding (few bucket shapes, little waste)."""
    step = 2 ** np.maximum(0, np.floor(np.log2(np.maximum(sizes, 1))).astype(np.int64) - 3)
    return -(-sizes // step) * step


class DensePool:
    """Components given as edge lists, solved in batched dense calls; ``found`` collects
    ``(graph, value)`` arrays."""

    def __init__(self, want: int, backend, found: list):
        self.want, self.backend, self.found = want, backend, found
        self.pending: list[tuple[np.ndarray, ...]] = []
        self.edges = 0

    def add(self, rows, cols, graphs, edge_component, edge_row, edge_col, edge_value, kind) -> None:
        """Components of ``rows × cols`` with their edges in component-local coordinates."""
        kinds = np.full(rows.size, KINDS.index(kind), dtype=np.int8)
        self.pending.append((rows, cols, graphs, edge_component, edge_row, edge_col, edge_value, kinds))
        self.edges += edge_value.size
        if self.edges >= _POOL_EDGES:  # enough to batch well: solve now, keep memory bounded
            self.solve()

    def solve(self, found: list | None = None) -> None:
        """Every pooled component, padded into batched dense calls by (long side, short side); the
        values go to ``found`` (default: the pool's own list)."""
        found = self.found if found is None else found
        if not self.pending:
            return
        pooled, self.pending, self.edges = self.pending, [], 0
        rows, cols, graphs = (np.concatenate([d[i] for d in pooled]) for i in range(3))
        starts = np.cumsum([0] + [d[0].size for d in pooled])
        edge_component = np.concatenate([d[3] + s for d, s in zip(pooled, starts)])
        edge_row, edge_col, edge_value = (np.concatenate([d[i] for d in pooled]) for i in (4, 5, 6))
        kinds = np.concatenate([d[7] for d in pooled])
        flip = rows < cols  # stored transposed: long side first
        if flip.any():
            flipped = flip[edge_component]
            edge_row, edge_col = np.where(flipped, edge_col, edge_row), np.where(flipped, edge_row, edge_col)
        short, long = np.minimum(rows, cols), np.maximum(rows, cols)
        small = long <= BATCH_SIDE
        long_pad, short_pad = round_up(long), round_up(short)
        for low, high in _BUCKETS:  # small components: square buckets by their larger side
            in_bucket = small & (long > low) & (long <= high)
            long_pad[in_bucket] = short_pad[in_bucket] = high
        keys = long_pad * (1 << 32) + short_pad
        order = np.argsort(keys, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(keys[order])) + 1)
        # Edges grouped by component (direct graphs arrive so): sort only when they are not.
        grouped = bool(np.all(edge_component[1:] >= edge_component[:-1]))
        edge_order = np.arange(edge_component.size) if grouped else np.argsort(edge_component, kind="stable")
        edge_bounds = np.concatenate([[0], np.cumsum(np.bincount(edge_component, minlength=rows.size))])
        slot_of = np.empty(rows.size, dtype=np.int64)
        for members in groups:
            long_side, short_side = int(long_pad[members[0]]), int(short_pad[members[0]])
            take = min(self.want, short_side)  # padding adds only zeros
            for piece in _pieces(members, long_side * short_side):
                slot_of[piece] = np.arange(piece.size)
                edges = edge_order[concatenated_ranges(edge_bounds[piece], edge_bounds[piece + 1])]
                block = np.zeros((piece.size, long_side, short_side))
                block[slot_of[edge_component[edges]], edge_row[edges], edge_col[edges]] = edge_value[edges]
                # What all members are known to be: the least of their kinds.
                values = self.backend.dense_top(block, take, KINDS[int(kinds[piece].min())])
                found.append((np.repeat(graphs[piece], take), values.ravel()))


@dataclass(frozen=True)
class ColumnGroups:
    """Graphs that are consecutive column groups of one CSC matrix, one value array per channel.

    Group ``g`` (columns ``col_bounds[g]:col_bounds[g+1]``, every row) is graph
    ``graph_ids[g] + offsets[c]`` in channel ``c``. Its width is its size rounded up
    (``round_up``): the columns past its size are empty, and the groups come by increasing width,
    so the groups of one width are one slice of the arrays, scattered into their dense calls in
    one pass (as transposed blocks: the same singular values). A channel's values are ``None`` for
    the 0/1 mask: every entry is 1, and no array of ones is held.
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_rows: int
    col_bounds: np.ndarray
    graph_ids: np.ndarray
    values: tuple[np.ndarray | None, ...]
    offsets: tuple[int, ...]

    def shifted(self, base: int) -> ColumnGroups:
        return replace(self, offsets=tuple(o + base for o in self.offsets))

    def solve(self, want: int, backend, found: list, channels: Sequence[int] | None = None) -> None:
        """Each group's top ``want`` values, batched by width, in every channel (or those given)."""
        channels = range(len(self.values)) if channels is None else channels
        kinds = {c: "binary" if self.values[c] is None else kind_of(self.values[c]) for c in channels}
        widths = np.diff(self.col_bounds)
        take = min(want, self.n_rows)
        for width in np.unique(widths).tolist():
            members = np.flatnonzero(widths == width)  # consecutive groups
            for piece in _pieces(members, self.n_rows * width):
                first, stop = int(self.col_bounds[piece[0]]), int(self.col_bounds[piece[-1] + 1])
                start, end = int(self.indptr[first]), int(self.indptr[stop])
                # Each entry's place in the piece's blocks (p, width, n_rows), each group transposed
                # (the same singular values); zero rows and padded columns add only zero values.
                flat = np.repeat(
                    np.arange(stop - first) * self.n_rows, np.diff(self.indptr[first : stop + 1])
                )
                flat += self.indices[start:end]
                for c in channels:  # a call per channel: a 0/1 one's Gram is exact in float32
                    values = self.values[c]
                    block = np.zeros((piece.size, width, self.n_rows))
                    block.reshape(-1)[flat] = 1.0 if values is None else values[start:end]
                    got = backend.dense_top(block, min(take, width), kinds[c])
                    graphs = self.graph_ids[piece] + self.offsets[c]
                    found.append((np.repeat(graphs, got.shape[1]), got.ravel()))


def column_groups(
    pattern: sp.csr_matrix,
    weights: np.ndarray | None,
    columns: np.ndarray,
    sizes: np.ndarray,
    graph_ids: np.ndarray,
    offsets: tuple[int, ...],
) -> ColumnGroups:
    """Groups of ``sizes[g]`` columns of the 0/1 ``pattern`` (CSR), taken in the order ``columns``:
    the 0/1 channel (graph offset ``offsets[0]``) and, with ``weights`` (aligned with the pattern's
    edges), the weighted one (``offsets[1]``). The groups are reordered by width (see
    :class:`ColumnGroups`) and the chosen columns' entries sorted into that column-major order
    (each column's rows ascending, as a CSC conversion gives them), a slice of rows at a time: the
    groups hold row indices and the weights, never an array of ones, and no whole-layer temporary
    is made on the way."""
    n_rows, n_columns = pattern.shape
    sizes = np.asarray(sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    widths = round_up(sizes)
    by_width = np.argsort(widths, kind="stable")
    columns = columns[concatenated_ranges(starts[by_width], starts[by_width] + sizes[by_width])]
    sizes, widths, graph_ids = sizes[by_width], widths[by_width], np.asarray(graph_ids)[by_width]
    col_bounds = np.concatenate([[0], np.cumsum(widths)])
    place = concatenated_ranges(col_bounds[:-1], col_bounds[:-1] + sizes)  # of each chosen column
    n_places = int(col_bounds[-1])
    index = np.int32 if max(n_rows, n_places, pattern.nnz) < 2**31 else np.int64
    # Sort keys: each column's place (the unchosen ones last), as uint16 where that fits: numpy
    # sorts those by radix, stably, some 20 times faster than int32 keys.
    key = np.uint16 if n_places < 2**16 else index
    position = np.full(n_columns, n_places, dtype=key)
    position[columns] = place
    counts = np.zeros(n_places, dtype=np.int64)
    counts[place] = column_counts(pattern.indices, n_columns)[columns]
    indptr = np.concatenate([[0], np.cumsum(counts)])
    rows_out = np.empty(int(indptr[-1]), dtype=index)
    data_out = None if weights is None else np.empty(rows_out.size)
    free = indptr[:-1].copy()  # next free entry of each place
    scatter = column_scatter_kernel()
    if scatter is not None:  # one compiled pass
        unsigned = pattern.indices.view(np.uint32 if pattern.indices.dtype == np.int32 else np.uint64)
        dummy = np.zeros(0)
        slice_edges = max(_SORT_EDGES, _PLACE_RUN * n_places)  # each slice's pass over the places pays off
        scatter(pattern.indptr, unsigned, position, n_places, dummy if weights is None else weights,
                weights is not None, free, rows_out, dummy if data_out is None else data_out, slice_edges)  # fmt: skip
        return _groups(indptr, rows_out, n_rows, col_bounds, graph_ids, data_out, offsets)
    row_degree = np.diff(pattern.indptr)
    for first, stop in row_slices(pattern.indptr, _SORT_EDGES):
        edges = slice(pattern.indptr[first], pattern.indptr[stop])
        where = position[pattern.indices[edges]]
        rows = np.repeat(np.arange(first, stop, dtype=index), row_degree[first:stop])
        order = np.argsort(where, kind="stable")  # by place, rows ascending within
        if columns.size < n_columns:  # only the chosen columns' entries: the unchosen sort last
            order = order[: np.count_nonzero(where < n_places)]
        sorted_where = where[order]
        run = np.bincount(sorted_where, minlength=n_places)
        run_start = np.cumsum(run) - run  # first entry of each place's run in ``order``
        slot = free[sorted_where] + np.arange(order.size) - run_start[sorted_where]
        rows_out[slot] = rows[order]
        if data_out is not None:
            data_out[slot] = weights[edges][order]
        free += run
    return _groups(indptr, rows_out, n_rows, col_bounds, graph_ids, data_out, offsets)


def _groups(indptr, rows_out, n_rows, col_bounds, graph_ids, data_out, offsets) -> ColumnGroups:
    channels = (None,) if data_out is None else (None, data_out)
    return ColumnGroups(
        indptr=indptr,
        indices=rows_out,
        n_rows=n_rows,
        col_bounds=col_bounds,
        graph_ids=graph_ids.astype(np.int64),
        values=channels,
        offsets=tuple(int(o) for o in offsets[: len(channels)]),
    )


def _pieces(members: np.ndarray, entries_each: int) -> list[np.ndarray]:
    """``members`` split so that no stack exceeds the entry limit."""
    count = -(-members.size * entries_each // _BUCKET_ENTRIES)  # entries_each: one member's
    return np.array_split(members, max(1, min(count, members.size)))
