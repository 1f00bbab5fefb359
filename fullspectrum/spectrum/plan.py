"""Which graphs a layer needs, stacked with those of other layers, and their values read back.

A layer needs the top two singular values of its full graph and of the degree
classes chosen (the qualifying ones, or all), each for the 0/1 mask and, with
weights, for ``|W ⊙ M|``. :func:`layer_tops` puts every such graph of every
layer given into one :class:`~fullspectrum.spectrum.stack.GraphStack`, so a few
batched dense calls and one lockstep Lanczos run serve them all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from fullspectrum.spectrum.classes import ClassTable
from fullspectrum.spectrum.dense import column_groups
from fullspectrum.spectrum.graph import LayerGraph
from fullspectrum.spectrum.stack import GraphPart, GraphStack, _dense_is_cheaper, part_of, stack_top

NAN = float("nan")


@dataclass(frozen=True)
class LayerRequest:
    """One layer's graph, its degree classes, and which classes need spectra."""

    graph: LayerGraph
    classes: ClassTable
    chosen: np.ndarray  # bool per class


@dataclass(frozen=True)
class LayerTops:
    """Top two singular values of a layer's graphs (NaN where not computed)."""

    sigma: np.ndarray  # (2,) of the 0/1 biadjacency
    omega: np.ndarray  # (2,) of |W ⊙ M|, NaN without weights
    class_sigma: np.ndarray  # (classes, 2) of each class's 0/1 biadjacency
    class_omega: np.ndarray  # (classes, 2) of each class's |W ⊙ M|


def layer_tops(requests: list[LayerRequest], backend=None) -> list[LayerTops]:
    """The values every request needs, from one stack of all their graphs (``backend``: see ``backends.py``)."""
    # A layer whose one chosen class holds every live input unit (a regular left side: a dense layer,
    # a row-wise N:M mask) has that class for its whole graph: solved once, read twice.
    whole = [_class_is_whole(request) for request in requests]
    stacks = [
        _layer_stack(replace(request, chosen=np.zeros_like(request.chosen)) if same else request)
        for request, same in zip(requests, whole)
    ]
    if not stacks:
        return []
    counts = [stack.n_graphs for stack in stacks]
    combined = [GraphStack.concatenate(stacks)]
    del stacks  # stack_top then holds the only reference, and lets go of each column group once solved
    values = stack_top(combined.pop(), 2, backend)
    tops, start = [], 0
    for request, count, same in zip(requests, counts, whole):
        tops.append(_read(request, values[start : start + count], same))
        start += count
    return tops


def _class_is_whole(request: LayerRequest) -> bool:
    """Whether the layer's only chosen class is its whole graph (all live columns, so all live rows)."""
    chosen = np.flatnonzero(request.chosen)
    return chosen.size == 1 and int(request.classes.sizes[chosen[0]]) == request.graph.biadjacency.shape[1]


def _layer_stack(request: LayerRequest) -> GraphStack:
    """Graph 0: the full mask; 1..Q: the chosen classes; then the same again with weights.

    A graph predicted cheaper dense than by Lanczos (``stack._dense_is_cheaper``,
    with every live row of the layer: a class's unreached rows are zero rows)
    becomes a column group of the layer's CSC form, filled straight into a dense
    block. The rest form sparse parts: the full graph, and the other chosen
    classes as diagonal blocks of one matrix (rows: the classes' (class, row)
    pairs; columns: grouped by class).
    """
    graph, table, chosen = request.graph, request.classes, request.chosen
    n_right, n_left = graph.biadjacency.shape
    chosen_count = int(chosen.sum())
    weights_at = 1 + chosen_count  # graph id of the weighted full graph
    weights = graph.kept_weights
    class_graph = np.cumsum(chosen)  # graph id of a chosen class
    dense_class = chosen & _dense_is_cheaper(n_right, table.sizes, table.sizes * table.degrees)
    dense_full = bool(_dense_is_cheaper(n_right, n_left, graph.edges))
    parts: list[GraphPart] = []
    columns = []
    pattern = graph.biadjacency
    if dense_full:
        columns.append(
            column_groups(
                pattern, weights, np.arange(n_left), np.array([n_left]), np.array([0]), (0, weights_at)
            )
        )
    if dense_class.any():
        order = np.flatnonzero(dense_class[table.column_class])
        order = order[np.argsort(table.column_class[order], kind="stable")]
        ids = np.flatnonzero(dense_class)
        columns.append(
            column_groups(pattern, weights, order, table.sizes[ids], class_graph[ids], (0, weights_at))
        )
    if not dense_full:
        parts += _with_weights(graph.biadjacency, ([0, n_right], [0, n_left]), [0], weights, 0, weights_at)
    sparse_class = chosen & ~dense_class
    if sparse_class.any():
        parts += _class_parts(graph, table, sparse_class, class_graph[sparse_class], weights_at)
    n_graphs = 2 * weights_at if weights is not None else weights_at
    return GraphStack(tuple(parts), n_graphs, tuple(columns))


def _class_parts(graph: LayerGraph, table: ClassTable, chosen: np.ndarray, ids: np.ndarray, weights_at: int):
    """The ``chosen`` classes (graph ids ``ids``) as diagonal blocks of one sparse part."""
    n_right, n_left = graph.biadjacency.shape
    pair_chosen = chosen[table.class_row_class]
    pair_id = np.cumsum(pair_chosen) - 1
    chosen_columns = np.flatnonzero(chosen[table.column_class])
    column_order = chosen_columns[np.argsort(table.column_class[chosen_columns], kind="stable")]
    column_id = np.empty(n_left, dtype=np.int64)
    column_id[column_order] = np.arange(column_order.size)
    # Edges of the chosen classes, by class then row: a stable sort by class keeps CSR order.
    pattern = graph.biadjacency
    edge_class = table.column_class[pattern.indices]
    in_class = np.flatnonzero(chosen[edge_class])
    edge_class = edge_class[in_class]
    if table.degrees.size < 1 << 16:
        edge_class = edge_class.astype(np.uint16)  # radix sort
    order = np.argsort(edge_class, kind="stable")
    edges, edge_class = in_class[order], edge_class[order]
    del in_class, order
    edge_rows = np.searchsorted(pattern.indptr, edges, side="right") - 1
    pair_rows = pair_id[table.pair_of(edge_class, edge_rows, n_right)]
    del edge_class, edge_rows
    n_pairs = int(pair_chosen.sum())
    indptr = np.concatenate([[0], np.cumsum(np.bincount(pair_rows, minlength=n_pairs))])
    classes = sp.csr_matrix(
        (np.ones(edges.size), column_id[graph.biadjacency.indices[edges]], indptr),
        shape=(n_pairs, column_order.size),
    )
    bounds = (
        np.concatenate([[0], np.cumsum(table.right_sizes[chosen])]),
        np.concatenate([[0], np.cumsum(table.sizes[chosen])]),
    )
    weights = graph.kept_weights[edges] if graph.kept_weights is not None else None
    return _with_weights(classes, bounds, ids, weights, 0, weights_at)


def _with_weights(
    pattern: sp.csr_matrix, bounds, ids, weights, mask_at: int, weights_at: int
) -> list[GraphPart]:
    """Parts of a 0/1 pattern and its weights (graphs ``ids`` plus ``mask_at`` or ``weights_at``):
    one part with two channels, or two parts when a kept weight is exactly 0 (that edge is not
    in ``|W ⊙ M|``, so the components may differ)."""
    # The 0/1 channel: the pattern's own values when they are its ones (no second array per edge).
    ones = pattern.data if pattern.data.dtype == np.float64 and np.all(pattern.data == 1) else None
    mask = (np.ones(pattern.indices.size) if ones is None else ones, mask_at)
    if weights is None:
        return [part_of(pattern, *bounds, [mask], ids)]
    if np.all(weights != 0):
        return [part_of(pattern, *bounds, [mask, (weights, weights_at)], ids)]
    # A copy: eliminate_zeros works in place, and the pattern's arrays are shared.
    weighted = sp.csr_matrix((weights, pattern.indices, pattern.indptr), shape=pattern.shape, copy=True)
    weighted.eliminate_zeros()
    return [
        part_of(pattern, *bounds, [mask], ids),
        part_of(weighted, *bounds, [(weighted.data, weights_at)], ids),
    ]


def _read(request: LayerRequest, values: np.ndarray, whole: bool = False) -> LayerTops:
    """The request's values from its graphs' rows of ``values``; ``whole``: its one chosen class is
    the full graph, which alone was solved (rows: the full graph, then with weights)."""
    if whole:  # the class's rows are the full graph's
        values = np.repeat(values, 2, axis=0)
    chosen = np.flatnonzero(request.chosen)
    count = 1 + chosen.size
    classes = request.chosen.size
    class_sigma = np.full((classes, 2), NAN)
    class_omega = np.full((classes, 2), NAN)
    class_sigma[chosen] = values[1:count]
    omega = np.full(2, NAN)
    if request.graph.kept_weights is not None:
        omega = values[count]
        class_omega[chosen] = values[count + 1 : 2 * count]
    return LayerTops(sigma=values[0], omega=omega, class_sigma=class_sigma, class_omega=class_omega)
