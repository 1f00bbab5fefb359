"""Effective paths of an unrolled graph (Vysogorets & Kempe 2021, "Connectivity Matters"; SPEC §7).

A node is **live** when it is reachable from the input and reaches the output. Since every
block goes forward, an edge ``u -> v`` has both ends live exactly when ``u`` is reachable from
the input and ``v`` reaches the output, so one forward and one backward sweep of boolean sparse
products over the blocks decide everything:

* ``forward``: input nodes (not the compatibility padding) reach themselves; a target node is
  reached when an edge from a reached node enters it;
* ``backward``: output nodes reach the output; a source node does when an edge leaves it to one
  that does (the product ``B @ backward`` counts those edges, which also gives the number of
  effective edges per block for free);
* a kept **weight** is effective when at least one of its unrolled edges is: for a conv weight
  ``(c, j, tap)``, some output position ``p`` where output ``(c, p)`` reaches the output and the
  input unit the tap reads there is reached from the input; checked per tap on bit-packed maps.

>>> import torch
>>> from torch import nn
>>> from fullspectrum.topology.unrolled import unrolled_graph
>>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
>>> masks = {"0.weight": torch.tensor([[1, 0], [0, 1]]).bool(), "1.weight": torch.tensor([[1, 0]]).bool()}
>>> paths = effective_paths(unrolled_graph(net, masks, (2,)))
>>> [(r.layer, r.kept, r.effective, r.ineffective) for r in paths.layers]
[('0', 2, 1, 1), ('1', 1, 1, 0)]
"""

from __future__ import annotations

import itertools
import math
from contextvars import ContextVar
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from fullspectrum.topology.graph import LayerBlock, UnrolledGraph
from fullspectrum.topology.patterns import shifted_live, tap_slices
from fullspectrum.topology.unrolled import trace_graph

_TAPS: ContextVar[dict | None] = ContextVar("fullspectrum_topology_taps", default=None)
"""Per call of :func:`effective_paths`: mask id -> its kept weights grouped by tap (the masks live as
long as the graph the call holds, so ids stay valid)."""


@dataclass(frozen=True)
class LayerPaths:
    """Kept weights of one layer that can and cannot carry information from the input to the output."""

    layer: str
    """Layer name (SPEC §1)."""
    kept: int
    """Kept weights (mask ones)."""
    effective: int
    """Kept weights with at least one effective unrolled edge."""
    ineffective: int
    """``kept - effective``."""
    weights: int
    """All weights of the layer (the mask's size)."""
    edges: int
    """Unrolled edges of the layer's blocks."""
    effective_edges: int
    """Unrolled edges with both ends live."""


@dataclass(frozen=True)
class EffectivePaths:
    """Effective paths of a whole network (SPEC §7)."""

    layers: tuple[LayerPaths, ...]
    """Per layer, in execution order (a layer called twice appears once)."""
    edges: int
    """Prunable unrolled edges."""
    effective_edges: int
    """Prunable unrolled edges with both ends live."""
    kept_weights: int
    effective_weights: int
    """Kept weights with an effective edge."""
    weights: int
    """All prunable weights."""
    live_nodes: int
    """Nodes reachable from the input that reach the output."""

    @property
    def effective_density(self) -> float:
        """Effective weights over all prunable weights (comparable with the density)."""
        return self.effective_weights / self.weights if self.weights else math.nan

    def as_dict(self) -> dict:
        return {
            "layers": [asdict(layer) for layer in self.layers],
            "edges": self.edges,
            "effective_edges": self.effective_edges,
            "kept_weights": self.kept_weights,
            "effective_weights": self.effective_weights,
            "weights": self.weights,
            "effective_density": self.effective_density,
            "density": self.kept_weights / self.weights if self.weights else math.nan,
            "live_nodes": self.live_nodes,
        }


def reachability(graph: UnrolledGraph) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per partition, bool over its nodes: reached from the input (``forward``), reaching the output (``backward``)."""
    forward, backward, _ = _sweeps(graph)
    return forward, backward


def _sweeps(graph: UnrolledGraph):
    """Forward and backward reachability, and per layer block the number of effective edges (None for
    a block without a matrix: :func:`_effective_weights` counts those)."""
    parts = graph.partitions
    layers = list(graph.layers) + [None] * len(graph.identity)
    blocks = [
        (s, t, None if m is None else _structure(m), layer)
        for (s, t, m), layer in zip(graph.blocks(), layers)
    ]
    forward = [np.zeros(p.size, bool) for p in parts]
    forward[0] = parts[0].real_nodes()
    backward = [np.zeros(p.size, bool) for p in parts]
    backward[graph.output][:] = True
    into: dict[int, list[int]] = {}
    out_of: dict[int, list[int]] = {}
    for i, (source, target, _, _) in enumerate(blocks):
        into.setdefault(target, []).append(i)
        out_of.setdefault(source, []).append(i)
    for index in range(1, len(parts)):  # blocks go forward: a partition is final once its sources are
        for i in into.get(index, ()):
            source, _, ones, layer = blocks[i]
            if not forward[source].any():
                continue
            if ones is None:
                forward[index] |= _push_forward(layer, forward[source])
            else:
                forward[index] |= (ones.T @ forward[source].view(np.uint8).astype(np.float32)) > 0
    leaving: list[np.ndarray | None] = [None] * len(blocks)
    for index in range(len(parts) - 1, -1, -1):
        for i in out_of.get(index, ()):
            _, target, ones, layer = blocks[i]
            if ones is None:
                backward[index] |= _pull_backward(layer, backward[target])
            else:
                leaving[i] = ones @ backward[target].view(np.uint8).astype(
                    np.float32
                )  # edges to live targets
                backward[index] |= leaving[i] > 0
    backward[0] &= parts[0].real_nodes()
    effective = [
        None if leaving[i] is None else int(leaving[i][forward[s]].sum())
        for i, (s, _, _, _) in enumerate(blocks[: len(graph.layers)])
    ]
    return forward, backward, effective


def _kept_by_tap(mask: np.ndarray) -> list[tuple]:
    """Kept weights of a conv mask grouped by kernel tap: ``(tap, flat index, out c, in j)`` per tap, in
    flat order (so ``c`` ascends within a tap); computed once per mask and call of :func:`effective_paths`."""
    key = id(mask)
    cache = _TAPS.get()
    if cache is not None and key in cache:
        return cache[key]
    groups = list(_group_by_tap(mask))
    if cache is not None:
        cache[key] = groups
    return groups


def _group_by_tap(mask: np.ndarray):
    kernel = mask.shape[2:]
    taps = math.prod(kernel)
    kept = np.flatnonzero(mask)
    c, rest = np.divmod(kept, mask.shape[1] * taps)
    j, tap_index = np.divmod(rest, taps)
    order = np.argsort(tap_index, kind="stable")
    bounds = np.searchsorted(tap_index[order], np.arange(taps + 1))
    for t, tap in enumerate(itertools.product(*(range(k) for k in kernel))):
        members = order[bounds[t] : bounds[t + 1]]
        if len(members):
            yield tap, kept[members], c[members], j[members]


def _runs(keys: np.ndarray) -> np.ndarray:
    """Start of every run of equal values in a sorted array."""
    change = np.empty(len(keys), bool)
    change[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    return np.flatnonzero(change)


def _push_forward(block: LayerBlock, reached: np.ndarray) -> np.ndarray:
    """Target nodes reached through a block without a matrix (it reads its source's nodes directly)."""
    mask = block.mask
    if block.geometry is None:  # Linear
        return (mask.astype(np.float32) @ reached.astype(np.float32)) > 0
    g = block.geometry
    out_ch, in_ch = mask.shape[:2]
    n_out = math.prod(g.out_size)
    reached = reached.reshape(in_ch, -1)
    out = np.zeros((out_ch, -(-n_out // 64)), np.uint64)
    for tap, _, c, j in _kept_by_tap(mask):
        shifted = _packed(shifted_live(reached, g.in_size, g.out_size, tap, **_common(g)))
        starts = _runs(c)
        out[c[starts]] |= np.bitwise_or.reduceat(shifted[j], starts, axis=0)
    return _unpacked(out, n_out).ravel()


def _pull_backward(block: LayerBlock, live: np.ndarray) -> np.ndarray:
    """Source nodes with an edge of a matrix-free block into a target node that reaches the output."""
    mask = block.mask
    if block.geometry is None:  # Linear
        return (mask.T.astype(np.float32) @ live.astype(np.float32)) > 0
    g = block.geometry
    out_ch, in_ch = mask.shape[:2]
    n_out = math.prod(g.out_size)
    live_out = _packed(live.reshape(out_ch, n_out))
    result = np.zeros((in_ch, *g.in_size), bool)
    for tap, _, c, j in _kept_by_tap(mask):
        boxes = tap_slices(g.in_size, g.out_size, tap, **_common(g))
        if boxes is None:
            continue
        out_box, in_box = boxes
        order = np.argsort(j, kind="stable")
        starts = _runs(j[order])
        per_input = _unpacked(np.bitwise_or.reduceat(live_out[c[order]], starts, axis=0), n_out)
        rows = j[order][starts]
        per_input = per_input.reshape(len(rows), *g.out_size)[(slice(None), *out_box)]
        result[(rows, *in_box)] |= per_input
    return result.reshape(in_ch, -1).ravel()


def _common(g) -> dict:
    return {"stride": g.stride, "padding": g.padding, "dilation": g.dilation}


def _unpacked(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`_packed`: ``(rows, words)`` uint64 -> ``(rows, n)`` bool."""
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), axis=1, count=n).astype(bool)


def model_effective_paths(model, masks, input_shape, skips: str = "identity") -> EffectivePaths:
    """``effective_paths(unrolled_graph(model, masks, input_shape, skips))`` without building the edges of
    layers that read a feature map directly: the sweeps run per kernel tap on bit-packed maps
    (kept weights × positions / 64 word operations instead of one per unrolled edge), so a training
    snapshot can afford it. Same values, same refusals (:class:`~fullspectrum.errors.TopologyError`)."""
    return effective_paths(trace_graph(model, masks, input_shape, skips, False, edges="readers"))


def effective_paths(graph: UnrolledGraph) -> EffectivePaths:
    """Live nodes, effective edges and effective weights of ``graph`` (see the module docstring)."""
    token = _TAPS.set({})
    try:
        return _effective_paths(graph)
    finally:
        _TAPS.reset(token)


def _effective_paths(graph: UnrolledGraph) -> EffectivePaths:
    forward, backward, block_edges = _sweeps(graph)
    per_layer: dict[str, dict] = {}
    for block, block_effective in zip(graph.layers, block_edges):
        weights, counted = _effective_weights(block, forward[block.source], backward[block.target])
        block_effective = counted if block_effective is None else block_effective
        entry = per_layer.setdefault(
            block.layer,
            {"mask": block.mask, "effective": np.zeros(block.mask.shape, bool), "edges": 0, "eff": 0},
        )
        entry["effective"] |= weights
        entry["edges"] += block.edges
        entry["eff"] += block_effective
    rows = tuple(
        LayerPaths(
            layer=name,
            kept=int(e["mask"].sum()),
            effective=int(e["effective"].sum()),
            ineffective=int(e["mask"].sum() - e["effective"].sum()),
            weights=int(e["mask"].size),
            edges=e["edges"],
            effective_edges=e["eff"],
        )
        for name, e in per_layer.items()
    )
    live = sum(int(np.count_nonzero(f & b)) for f, b in zip(forward, backward))
    return EffectivePaths(
        layers=rows,
        edges=graph.edges,
        effective_edges=sum(entry["eff"] for entry in per_layer.values()),
        kept_weights=sum(r.kept for r in rows),
        effective_weights=sum(r.effective for r in rows),
        weights=sum(r.weights for r in rows),
        live_nodes=live,
    )


def _structure(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """The block's pattern as float32 ones (an explicit zero weight is still an edge: edges come from the mask)."""
    return sp.csr_matrix((np.ones(matrix.nnz, np.float32), matrix.indices, matrix.indptr), shape=matrix.shape)


def _effective_weights(
    block: LayerBlock, forward: np.ndarray, backward: np.ndarray
) -> tuple[np.ndarray, int]:
    """Bool of the mask's shape: kept weights with an unrolled edge from a reached unit to one reaching
    the output; and the number of such edges when the block reads its source's nodes directly (else -1)."""
    mask = block.mask
    reached = forward if block.reader is None else (block.reader.T @ forward.astype(np.float32)) > 0
    if block.geometry is None:  # Linear: weight (c, j) is its one edge
        effective = mask & backward[:, None] & reached[None, :]
        return effective, int(effective.sum()) if block.reader is None else -1
    g = block.geometry
    out_ch, in_ch = mask.shape[:2]
    live_out = _packed(backward.reshape(out_ch, -1))  # (out, words)
    reached = reached.reshape(in_ch, -1)
    effective = np.zeros(mask.size, bool)
    edges = 0
    for tap, flat, c, j in _kept_by_tap(mask):
        live_in = _packed(shifted_live(reached, g.in_size, g.out_size, tap, **_common(g)))  # (in, words)
        both = np.bitwise_and(live_out[c], live_in[j])
        effective[flat[both.any(axis=1)]] = True
        edges += int(np.bitwise_count(both).sum())
    return effective.reshape(mask.shape), edges if block.reader is None else -1


def _packed(bits: np.ndarray) -> np.ndarray:
    """``(rows, n)`` bool -> ``(rows, ceil(n / 64))`` uint64 words."""
    words = np.zeros((bits.shape[0], -(-bits.shape[1] // 64) * 8), np.uint8)
    words[:, : -(-bits.shape[1] // 8)] = np.packbits(bits, axis=1)
    return words.view(np.uint64)
