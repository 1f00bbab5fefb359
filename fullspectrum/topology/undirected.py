"""k-cores, bridges and articulation points of a simple undirected graph, vectorised (NumPy and scipy).

The unrolled graph has about a million edges; handing them to igraph costs more (Python lists of
pairs) than igraph's own algorithms. Here the graph stays a symmetric CSR matrix:

* **coreness**: the peeling of Batagelj and Zaversnik in parallel rounds: at level ``k`` every
  vertex of degree ``<= k`` among those left is removed at once, and removals repeat until none is
  left; the vertices removed at level ``k`` have core number ``k`` (the ``(k+1)``-core is the unique
  largest subgraph of minimum degree ``> k``, so the order of removals does not matter).
* **bridges and articulation points**: Tarjan's low-link test on a depth-first tree. The tree is
  scipy's ``depth_first_order`` from a virtual root joined to one vertex per component; subtrees are
  ranges of the preorder (their ends: the next vertex at the same depth or above, found by binary
  lifting on a range-minimum table), so ``low(v)``, the smallest preorder any edge leaving ``v``'s
  subtree reaches, is a range minimum. A tree edge ``(p, v)`` is a bridge when ``low(v) = pre(v)``;
  ``p`` is an articulation point when some child has ``low(v) >= pre(p)`` (a component's root: when
  it has two children).

Both are exact. The low-link test needs a true depth-first tree (every non-tree edge joins a vertex
to one of its ancestors): that is checked on every edge, and a tree that fails it, like peeling that
needs too many rounds (long chains), hands the graph to igraph's C core instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import igraph
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, depth_first_order

MAX_PEEL_ROUNDS = 2_000
"""Peeling rounds after which the k-core decomposition is left to igraph (each round costs Python
overhead; a path of length ``L`` needs ``L / 2`` of them)."""


@dataclass(frozen=True)
class CutStructure:
    """Bridges and articulation points of an undirected graph."""

    bridges: int
    articulation_points: int


def coreness(symmetric: sp.csr_matrix) -> np.ndarray:
    """Core number of every vertex of the simple undirected graph ``symmetric`` (CSR, both directions
    stored, no self-loops), as igraph's ``Graph.coreness()``."""
    n = symmetric.shape[0]
    indptr, indices = symmetric.indptr, symmetric.indices
    degree = np.diff(indptr)
    core = np.zeros(n, degree.dtype)
    alive = np.ones(n, bool)
    slot = np.zeros(n, np.int64)  # scratch for dropping repeated vertices without sorting
    left, level, rounds = n, 0, 0
    while left:
        level = max(level, int(degree[alive].min()))
        frontier = np.flatnonzero(alive & (degree <= level))
        while frontier.size:
            rounds += 1
            if rounds > MAX_PEEL_ROUNDS:
                return np.asarray(igraph_graph(symmetric).coreness(), degree.dtype)
            core[frontier] = level
            alive[frontier] = False
            left -= frontier.size
            neighbours = indices[_row_ranges(indptr, frontier)]
            neighbours = neighbours[alive[neighbours]]
            np.subtract.at(degree, neighbours, degree.dtype.type(1))  # a typed 1: the fast path (40x)
            candidates = neighbours[degree[neighbours] <= level]
            slot[candidates] = np.arange(candidates.size)  # one position survives per vertex
            frontier = candidates[slot[candidates] == np.arange(candidates.size)]
    return core


def cut_structure(symmetric: sp.csr_matrix, labels: np.ndarray | None = None) -> CutStructure:
    """Bridges and articulation points of the simple undirected graph ``symmetric`` (CSR, both
    directions stored, no self-loops), as igraph's ``bridges()`` and ``articulation_points()``.
    ``labels``: its connected components' labels, if already known."""
    n = symmetric.shape[0]
    if n == 0 or symmetric.nnz == 0:
        return CutStructure(0, 0)
    indptr, indices = symmetric.indptr, symmetric.indices
    if labels is None:
        _, labels = connected_components(symmetric, directed=False)
    _, roots = np.unique(labels, return_index=True)
    # a virtual vertex n joined to one vertex of every component: one depth-first tree for all
    rooted = sp.csr_matrix(
        (
            np.ones(indices.size + roots.size),
            np.concatenate([indices, roots.astype(indices.dtype)]),
            np.append(indptr, indptr[-1] + roots.size).astype(indptr.dtype),
        ),
        shape=(n + 1, n + 1),
    )
    order, parent = depth_first_order(rooted, n, directed=True, return_predecessors=True)
    del rooted
    if order.size != n + 1:
        return _igraph_cut_structure(symmetric)
    order = order[1:]  # preorder of the real vertices
    parent = parent[:n]  # n for a component's root
    pre = np.empty(n, order.dtype)
    pre[order] = np.arange(n, dtype=order.dtype)
    end = _next_not_deeper(_depths(parent, n)[order])  # subtree of order[i]: preorder positions [i, end[i])
    degree = np.diff(indptr)
    pre_col = pre[indices]
    pre_row = np.repeat(pre, degree)
    # the depth-first property low-link needs: every edge joins a vertex and one of its descendants
    if np.any((pre_col > pre_row) & (pre_col >= np.repeat(end[pre], degree))):
        return _igraph_cut_structure(symmetric)
    del pre_row
    # the smallest preorder each vertex's edges reach, the tree edge to its parent excluded
    reached = np.where(indices == np.repeat(parent, degree), n, pre_col)
    low_direct = pre.copy()
    has_edges = np.flatnonzero(degree > 0)
    # reduceat over the starts of the non-empty rows: each range runs to the next such start
    low_direct[has_edges] = np.minimum(low_direct[has_edges], np.minimum.reduceat(reached, indptr[has_edges]))
    low = _range_minimum(low_direct[order], np.arange(n), end)[pre]
    child = np.flatnonzero(parent < n)
    bridges = int(np.count_nonzero(low[child] == pre[child]))
    children = np.bincount(parent[child], minlength=n)
    is_root = parent == n
    separating = child[(low[child] >= pre[parent[child]]) & ~is_root[parent[child]]]
    cut = np.zeros(n, bool)
    cut[parent[separating]] = True
    cut |= is_root & (children >= 2)
    return CutStructure(bridges=bridges, articulation_points=int(cut.sum()))


def igraph_graph(symmetric: sp.csr_matrix) -> igraph.Graph:
    """The undirected graph of ``symmetric`` in igraph, each edge once."""
    upper = sp.triu(symmetric, k=1).tocoo()
    return igraph.Graph(n=symmetric.shape[0], edges=list(zip(upper.row.tolist(), upper.col.tolist())))


def _igraph_cut_structure(symmetric: sp.csr_matrix) -> CutStructure:
    graph = igraph_graph(symmetric)
    return CutStructure(len(graph.bridges()), len(graph.articulation_points()))


def _row_ranges(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of the stored entries of ``rows`` (concatenated row ranges of a CSR matrix)."""
    starts, stops = indptr[rows], indptr[rows + 1]
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    shifts = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return shifts + np.arange(total)


def _depths(parent: np.ndarray, root: int) -> np.ndarray:
    """Depth of every vertex below ``root`` (the index of the virtual root) by pointer jumping."""
    ancestor = np.append(parent, root)
    depth = np.append(np.ones(parent.size, np.int64), 0)
    while True:
        jumped = ancestor[ancestor]
        if np.array_equal(jumped, ancestor):
            return depth[:-1]
        depth = depth + depth[ancestor]  # steps to the ancestor, then from it to its own (0 at the root)
        ancestor = jumped


def _sparse_table(values: np.ndarray) -> list[np.ndarray]:
    """``table[k][i] = min(values[i : i + 2**k])`` for every ``i`` with ``i + 2**k <= len(values)``."""
    table = [values]
    width = 1
    while 2 * width <= values.size:
        previous = table[-1]
        table.append(np.minimum(previous[:-width], previous[width:]))
        width *= 2
    return table


def _range_minimum(values: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``min(values[s:t])`` for every pair (every range non-empty)."""
    table = _sparse_table(values)
    level = np.floor(np.log2(stops - starts)).astype(np.int64)
    result = np.empty(starts.size, values.dtype)
    for k in np.unique(level):
        at = level == k
        width = 1 << int(k)
        result[at] = np.minimum(table[k][starts[at]], table[k][stops[at] - width])
    return result


def _next_not_deeper(depth: np.ndarray) -> np.ndarray:
    """For every position ``i`` of a preorder's depths, the first ``j > i`` with ``depth[j] <= depth[i]``
    (``len(depth)`` if none): where the subtree that starts at ``i`` ends."""
    n = depth.size
    table = _sparse_table(depth)
    position = np.arange(1, n + 1)
    for k in range(len(table) - 1, -1, -1):
        width = 1 << k
        fits = position + width <= n
        at = np.flatnonzero(fits)
        deeper = table[k][position[at]] > depth[at]
        position[at[deeper]] += width
    return position
