"""The unrolled multipartite graph of a network (MGE24's MGE, SPEC §7) as typed, sparse blocks.

A :class:`UnrolledGraph` is a list of node **partitions** (the network input and every feature
map a prunable layer writes, in topological order, nodes numbered consecutively) and of
**blocks**: one ``scipy.sparse`` CSR matrix per prunable layer (rows: nodes of the partition it
reads, columns: nodes of the partition it writes, data ``|w|``) and, with ``skips="identity"``,
one per identity shortcut (data 1, not prunable, counted apart as ``identity_edges``). The whole
graph is never needed as one matrix except by the metrics (:meth:`UnrolledGraph.adjacency`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Partition:
    """One feature map's nodes."""

    name: str
    """``input`` or the layers that write it (``layer2.0.conv2+layer2.0.shortcut.0`` when a projection
    shortcut and a conv add into one map)."""
    shape: tuple[int, ...]
    """Per-example shape of its nodes, ``(C, H, W)``, ``(C, L)`` or ``(features,)``; the input in
    compatibility mode includes the first layer's zero padding."""
    offset: int
    """Index of its first node in the graph."""
    padding: tuple[int, ...] = ()
    """Zero padding included in the input partition (``mge24_compat``), per spatial dimension."""

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def real_nodes(self) -> np.ndarray:
        """Bool over the partition's nodes: False on compatibility padding (never live)."""
        real = np.ones(self.shape, bool)
        if self.padding:
            for axis, pad in enumerate(self.padding, start=1):
                if pad:
                    index = [slice(None)] * len(self.shape)
                    index[axis] = np.r_[0:pad, self.shape[axis] - pad : self.shape[axis]]
                    real[tuple(index)] = False
        return real.ravel()


@dataclass(frozen=True)
class ConvGeometry:
    """How a conv block was unrolled: the map it read (after any pooling) and its geometry."""

    in_size: tuple[int, ...]
    out_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class LayerBlock:
    """The unrolled edges of one prunable layer (one call of it)."""

    layer: str
    """Layer name (SPEC §1: module path, no ``.weight``)."""
    kind: str
    """``Linear``, ``Conv1d``, ``Conv2d`` or ``Conv3d``."""
    source: int
    """Index of the partition it reads."""
    target: int
    """Index of the partition it writes."""
    matrix: sp.csr_matrix | None
    """``(source nodes, target nodes)``, data ``|w|`` (1 when the weights are not known); None in the
    edge-free structure :func:`~fullspectrum.topology.paths.model_effective_paths` traces."""
    mask: np.ndarray
    """Bool mask of the weight, shape ``(out, in, *kernel)``."""
    dense_edges: int
    """Unrolled edges the layer would have if dense (same geometry and pooling)."""
    reader: sp.csr_matrix | None = None
    """``(source nodes, elements read)``: pooling windows (and compatibility padding) between the
    partition and the map the layer reads; None when it reads the partition's nodes as they are."""
    geometry: ConvGeometry | None = None
    """Conv geometry (None for Linear)."""
    edge_count: int = -1
    """Unrolled edges (the matrix's entries, or counted from the mask when it is not built)."""

    @property
    def edges(self) -> int:
        return int(self.matrix.nnz) if self.matrix is not None else self.edge_count

    @property
    def kept(self) -> int:
        return int(self.mask.sum())


@dataclass(frozen=True, eq=False)
class IdentityBlock:
    """Fixed edges ``(c, p) -> (c, p)`` of an identity shortcut (weight 1, not prunable)."""

    source: int
    target: int
    matrix: sp.csr_matrix


@dataclass(frozen=True, eq=False)
class UnrolledGraph:
    """MGE24's unrolled multipartite graph of a masked network for one input shape (SPEC §7)."""

    partitions: tuple[Partition, ...]
    """In topological order; ``partitions[0]`` is the input."""
    layers: tuple[LayerBlock, ...]
    """One block per call of a prunable layer, in execution order."""
    identity: tuple[IdentityBlock, ...]
    """Identity shortcuts (empty with ``skips="none"``)."""
    output: int
    """Index of the output partition."""
    input_shape: tuple[int, ...]
    skips: str
    mge24_compat: bool
    notes: tuple[str, ...] = field(default=())
    """What the tracer did that a user may want to know (e.g. a skipped unused parameter)."""

    @property
    def nodes(self) -> int:
        return sum(p.size for p in self.partitions)

    @property
    def edges(self) -> int:
        """Prunable unrolled edges (layer blocks only)."""
        return sum(b.edges for b in self.layers)

    @property
    def identity_edges(self) -> int:
        return sum(int(b.matrix.nnz) for b in self.identity)

    @property
    def dense_edges(self) -> int:
        return sum(b.dense_edges for b in self.layers)

    def layer_weights(self) -> dict[str, tuple[int, int]]:
        """Layer name -> (kept, total) weights, each layer once (a layer called twice is one weight)."""
        seen: dict[str, tuple[int, int]] = {}
        for block in self.layers:
            seen.setdefault(block.layer, (block.kept, int(block.mask.size)))
        return seen

    def partition_of(self) -> np.ndarray:
        """``(nodes,)`` int: the partition index of every node."""
        return np.repeat(np.arange(len(self.partitions)), [p.size for p in self.partitions])

    def real_nodes(self) -> np.ndarray:
        """``(nodes,)`` bool: False on the compatibility padding nodes."""
        return np.concatenate([p.real_nodes() for p in self.partitions])

    def blocks(self, *, identity: bool = True):
        """``(source, target, matrix)`` of every block, layers first."""
        for block in self.layers:
            yield block.source, block.target, block.matrix
        if identity:
            for block in self.identity:
                yield block.source, block.target, block.matrix

    def adjacency(self, *, weighted: bool = True, identity: bool = True) -> sp.csr_matrix:
        """The whole graph as one ``(nodes, nodes)`` CSR matrix (``A[u, v]``: edge ``u -> v``).

        Blocks sharing source and target are summed (a pair joined twice is one edge); ``weighted=False``
        gives ones (the structure, explicit zero weights included).
        """
        n = self.nodes
        rows, cols, data = [], [], []
        for source, target, matrix in self.blocks(identity=identity):
            coo = matrix.tocoo()
            rows.append(coo.row.astype(np.int32) + np.int32(self.partitions[source].offset))
            cols.append(coo.col.astype(np.int32) + np.int32(self.partitions[target].offset))
            data.append(coo.data if weighted else np.ones(coo.nnz, np.float32))
            del coo
        dtype = np.float64 if weighted else np.float32
        if not rows:
            return sp.csr_matrix((n, n), dtype=dtype)
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        values = np.concatenate(data).astype(dtype, copy=False)
        adjacency = sp.coo_matrix((values, (rows, cols)), shape=(n, n)).tocsr()  # sums duplicates
        if not weighted:
            adjacency.data[:] = 1.0
        return adjacency

    def as_dict(self) -> dict:
        """Counts, partitions and per-layer blocks (JSON-ready)."""
        return {
            "nodes": self.nodes,
            "edges": self.edges,
            "identity_edges": self.identity_edges,
            "dense_edges": self.dense_edges,
            "input_shape": list(self.input_shape),
            "skips": self.skips,
            "mge24_compat": self.mge24_compat,
            "output_partition": self.output,
            "partitions": [
                {"name": p.name, "shape": list(p.shape), "nodes": p.size, "offset": p.offset}
                for p in self.partitions
            ],
            "layers": [
                {
                    "layer": b.layer,
                    "kind": b.kind,
                    "source": b.source,
                    "target": b.target,
                    "edges": b.edges,
                    "dense_edges": b.dense_edges,
                    "kept": b.kept,
                    "weights": int(b.mask.size),
                }
                for b in self.layers
            ],
        }

    def save_npz(self, file) -> None:
        """Write the graph for other tools: every block's CSR arrays and the node partitions (NumPy ``.npz``).

        Keys: ``partition_names``, ``partition_offsets``, ``partition_sizes``, ``partition_shapes``
        (JSON strings), ``output``; per block ``i`` (``kinds[i]`` is a layer name or ``identity``):
        ``block{i}_source``, ``block{i}_target``, ``block{i}_indptr``, ``block{i}_indices``,
        ``block{i}_data``, ``block{i}_shape`` (rows: source partition's nodes, columns: target's).
        """
        arrays: dict[str, np.ndarray] = {
            "partition_names": np.array([p.name for p in self.partitions]),
            "partition_offsets": np.array([p.offset for p in self.partitions], np.int64),
            "partition_sizes": np.array([p.size for p in self.partitions], np.int64),
            "partition_shapes": np.array([json.dumps(list(p.shape)) for p in self.partitions]),
            "output": np.array(self.output),
        }
        kinds = [b.layer for b in self.layers] + ["identity"] * len(self.identity)
        arrays["kinds"] = np.array(kinds)
        for i, (source, target, matrix) in enumerate(self.blocks()):
            arrays[f"block{i}_source"] = np.array(source)
            arrays[f"block{i}_target"] = np.array(target)
            arrays[f"block{i}_indptr"] = matrix.indptr
            arrays[f"block{i}_indices"] = matrix.indices
            arrays[f"block{i}_data"] = matrix.data
            arrays[f"block{i}_shape"] = np.array(matrix.shape, np.int64)
        np.savez_compressed(file, **arrays)


def load_npz_blocks(path: str | Path) -> tuple[list[dict], list[tuple[str, int, int, sp.csr_matrix]]]:
    """Read back :meth:`UnrolledGraph.save_npz`: the partitions and ``(kind, source, target, matrix)`` blocks."""
    import json  # only the export needs it

    with np.load(path, allow_pickle=False) as data:
        partitions = [
            {"name": str(name), "offset": int(offset), "nodes": int(size), "shape": json.loads(str(shape))}
            for name, offset, size, shape in zip(
                data["partition_names"],
                data["partition_offsets"],
                data["partition_sizes"],
                data["partition_shapes"],
            )
        ]
        blocks = []
        for i, kind in enumerate(data["kinds"]):
            matrix = sp.csr_matrix(
                (data[f"block{i}_data"], data[f"block{i}_indices"], data[f"block{i}_indptr"]),
                shape=tuple(int(s) for s in data[f"block{i}_shape"]),
            )
            blocks.append((str(kind), int(data[f"block{i}_source"]), int(data[f"block{i}_target"]), matrix))
    return partitions, blocks
