"""The unrolled, input-aware view of MGE24 (SPEC §7): the whole network as one graph.

Cunegatti et al. (TMLR 2024) encode a sparse network as one directed multipartite graph over
the input and every feature map, end to end; this package builds it from a traced model and
computes their topometrics and the effective paths of Vysogorets & Kempe (2021).

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> graph = unrolled_graph(net, {"0.weight": torch.eye(3, 4, dtype=torch.bool)}, (4,))
>>> graph.as_dict()["nodes"], graph.as_dict()["edges"], effective_paths(graph).as_dict()["effective_weights"]
(9, 9, 9)

Modules:

* :mod:`~fullspectrum.topology.unrolled`: ``unrolled_graph``, the ``torch.fx`` tracer that follows
  every value as a partition seen through a reader and builds one block per layer;
* :mod:`~fullspectrum.topology.ops`: which traced operations the encoding knows (layers, pooling,
  reshapes, additions, operations without edges) and what each does;
* :mod:`~fullspectrum.topology.patterns`: the vectorised per-tap incidence of convs, Linear layers
  and pooling windows as ``scipy.sparse`` CSR blocks;
* :mod:`~fullspectrum.topology.graph`: the typed result (``UnrolledGraph``, its partitions and
  blocks, the whole adjacency, the ``.npz`` export);
* :mod:`~fullspectrum.topology.paths`: ``effective_paths``, live nodes and effective edges and weights
  (``model_effective_paths``: the same straight from a model, without building its edges);
* :mod:`~fullspectrum.topology.recording`: ``PathsRecorder``, effective paths of one model at many
  masks (a training run's snapshots), traced once;
* :mod:`~fullspectrum.topology.metrics`: ``topometrics``, MGE24's metric list.
* :mod:`~fullspectrum.topology.undirected`: k-cores, bridges and articulation points, vectorised (peeling
  rounds; Tarjan's low-link on one scipy depth-first tree), igraph as the fallback;
* :mod:`~fullspectrum.topology.spectral`: the two spectral terms (float32 ARPACK refined in float64; a
  bipartite graph's gap from its block's singular values).
"""

from __future__ import annotations

from fullspectrum.topology.graph import (
    ConvGeometry,
    IdentityBlock,
    LayerBlock,
    Partition,
    UnrolledGraph,
    load_npz_blocks,
)
from fullspectrum.topology.metrics import Topometrics, topometrics
from fullspectrum.topology.paths import EffectivePaths, LayerPaths, effective_paths, model_effective_paths
from fullspectrum.topology.recording import PathsRecorder
from fullspectrum.topology.unrolled import SKIP_MODES, unrolled_graph

__all__ = [
    "SKIP_MODES",
    "ConvGeometry",
    "EffectivePaths",
    "IdentityBlock",
    "LayerBlock",
    "LayerPaths",
    "Partition",
    "PathsRecorder",
    "Topometrics",
    "UnrolledGraph",
    "effective_paths",
    "load_npz_blocks",
    "model_effective_paths",
    "topometrics",
    "unrolled_graph",
]
