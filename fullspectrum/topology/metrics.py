"""Topometrics of an unrolled graph: MGE24's list (Cunegatti et al., TMLR 2024; SPEC §7 table).

All metrics read the whole graph (layer blocks plus, with ``skips="identity"``, the identity
edges) as one sparse matrix: degrees, sources and sinks, removable edges and strength are
vectorised NumPy; the 2-step out-neighbourhood is a row-chunked boolean sparse product
``A·(I + A)`` whose stored entries are the distinct nodes reached; components come from
``scipy.sparse.csgraph``; k-cores, bridges and articulation points from
:mod:`~fullspectrum.topology.undirected` (vectorised peeling and Tarjan's low-link test on one
scipy depth-first tree; igraph's C core when that cannot apply) and the two spectral terms from
:mod:`~fullspectrum.topology.spectral` (float32 ARPACK refined in float64; a bipartite graph's
gap from the singular values of its one block). No Python list of edges is ever made (igraph
only for the optional motifs).
Counts are also given normalised (``*_norm``): node counts by the number of nodes, edge counts
by the number of edges, as MGE24 report them.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import igraph
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from fullspectrum.spectrum.threads import one_blas_thread
from fullspectrum.topology.graph import UnrolledGraph
from fullspectrum.topology.paths import EffectivePaths, effective_paths
from fullspectrum.topology.spectral import spectral_terms
from fullspectrum.topology.undirected import coreness, cut_structure

_ROW_CHUNK_EDGES = 4_000_000  # bound on the stored entries of one chunk of A + A·A
MOTIF_SAMPLE_FRACTION = 0.001
"""Share of nodes igraph's motif estimate starts from (MGE24: ``sample=int(0.001 * n)``)."""

NODE_COUNTS = ("sink_nodes", "source_nodes", "disconnected_nodes", "cut_nodes", "components")
EDGE_COUNTS = ("removable_out", "removable_in", "cut_edges")


@dataclass(frozen=True)
class Topometrics:
    """MGE24's topometrics of one unrolled graph, with its counts and effective paths (SPEC §7)."""

    nodes: int
    edges: int
    """Prunable unrolled edges."""
    identity_edges: int
    """Identity-shortcut edges (0 with ``skips="none"``)."""
    total_edges: int
    """Edges of the graph the metrics read (prunable plus identity, parallel ones merged)."""
    effective_edges: int
    effective_weights: int
    effective_density: float
    density: float
    """Kept weights over all prunable weights."""
    sink_nodes: int
    """Out-degree 0, in-degree > 0, output partition excluded."""
    source_nodes: int
    """In-degree 0, out-degree > 0, input partition excluded."""
    disconnected_nodes: int
    """In- and out-degree 0 (every partition)."""
    removable_out: int
    """Edges into sink nodes (r-out)."""
    removable_in: int
    """Edges out of source nodes (r-in)."""
    out_neighbourhood_1: float
    """Mean number of distinct nodes reached in one step (the node itself excluded)."""
    out_neighbourhood_2: float
    """Mean number of distinct nodes reached in at most two steps."""
    strength: float
    """Mean node strength: sum of the ``|w|`` of its in- and out-edges."""
    coreness: float
    """Mean k-core number of the undirected graph."""
    cut_edges: int
    """Bridges of the undirected graph."""
    cut_nodes: int
    """Articulation points of the undirected graph."""
    components: int
    """Weakly connected components (isolated nodes included)."""
    mean_component_size: float
    spectral_gap_w: float
    """``|mu1| - |mu3|`` of the symmetric weighted adjacency (MGE24's definition)."""
    laplacian_radius_w: float
    """Largest eigenvalue of the weighted Laplacian ``D - A``."""
    motifs_4: float | None = None
    """igraph's estimate of the number of 4-node motifs (None unless asked)."""

    def as_dict(self) -> dict:
        values = asdict(self)
        for name in NODE_COUNTS:
            values[f"{name}_norm"] = values[name] / self.nodes if self.nodes else math.nan
        for name in EDGE_COUNTS:
            values[f"{name}_norm"] = values[name] / self.total_edges if self.total_edges else math.nan
        return values


@one_blas_thread  # ARPACK's many small dense steps: BLAS threads only fight each other (measured 20x)
def topometrics(
    graph: UnrolledGraph, motifs: bool = False, *, seed: int = 0, paths: EffectivePaths | None = None
) -> Topometrics:
    """Every SPEC §7 topometric of ``graph``; ``motifs=True`` adds the sampled 4-motif estimate
    (slow; ``seed`` fixes its sample). ``paths``: ``effective_paths(graph)`` if already computed."""
    paths = effective_paths(graph) if paths is None else paths
    adjacency = graph.adjacency(weighted=True)
    n = adjacency.shape[0]
    structure = sp.csr_matrix(
        (np.ones(adjacency.nnz, bool), adjacency.indices, adjacency.indptr), shape=adjacency.shape
    )
    out_degree = np.diff(adjacency.indptr)
    in_degree = np.bincount(adjacency.indices, minlength=n)
    part = graph.partition_of()
    inputs, outputs = part == 0, part == graph.output
    sinks = (out_degree == 0) & (in_degree > 0) & ~outputs
    sources = (in_degree == 0) & (out_degree > 0) & ~inputs
    strength = np.asarray(adjacency.sum(axis=1)).ravel() + np.asarray(adjacency.sum(axis=0)).ravel()
    symmetric = (adjacency + adjacency.T).tocsr()  # A and A^T share no entry: the graph is a DAG
    count, labels = connected_components(structure, directed=True, connection="weak")
    cuts = cut_structure(symmetric, labels)
    gap, radius = spectral_terms(
        symmetric, part % 2 == 1, strength
    )  # bipartite by parity unless skips join partitions
    return Topometrics(
        nodes=n,
        edges=graph.edges,
        identity_edges=graph.identity_edges,
        total_edges=int(adjacency.nnz),
        effective_edges=paths.effective_edges,
        effective_weights=paths.effective_weights,
        effective_density=paths.effective_density,
        density=paths.kept_weights / paths.weights if paths.weights else math.nan,
        sink_nodes=int(sinks.sum()),
        source_nodes=int(sources.sum()),
        disconnected_nodes=int(((in_degree == 0) & (out_degree == 0)).sum()),
        removable_out=int(in_degree[sinks].sum()),
        removable_in=int(out_degree[sources].sum()),
        out_neighbourhood_1=float(out_degree.mean()) if n else math.nan,
        out_neighbourhood_2=out_neighbourhood_2(structure),
        strength=float(strength.mean()) if n else math.nan,
        coreness=float(np.mean(coreness(symmetric))) if n else math.nan,
        cut_edges=cuts.bridges,
        cut_nodes=cuts.articulation_points,
        components=int(count),
        mean_component_size=n / count if count else math.nan,
        spectral_gap_w=gap,
        laplacian_radius_w=radius,
        motifs_4=_motifs(adjacency, seed) if motifs else None,
    )


def out_neighbourhood_2(structure: sp.csr_matrix) -> float:
    """Mean number of distinct nodes reached in one or two steps: stored entries per row of
    ``A + A·A = A·(I + A)`` (boolean, so no sum cancels and the product stores one byte per entry; 4x
    faster than float32), in row chunks that bound the product's memory. In a DAG no node reaches
    itself, so ``I`` adds no entry of its own."""
    n = structure.shape[0]
    if n == 0:
        return math.nan
    if structure.dtype != bool:
        structure = sp.csr_matrix(
            (np.ones(structure.nnz, bool), structure.indices, structure.indptr), shape=structure.shape
        )
    step = (structure + sp.identity(n, dtype=bool, format="csr")).tocsr()
    two_step = np.diff(step.indptr).astype(np.int64)
    reach = np.asarray(structure @ two_step.astype(np.float64)).ravel()  # upper bound of a row's entries
    total, start = 0, 0
    while start < n:
        # rows up to a budget of (bounded) entries per chunk
        cumulative = np.cumsum(reach[start:])
        stop = start + max(1, int(np.searchsorted(cumulative, _ROW_CHUNK_EDGES)))
        total += int((structure[start:stop] @ step).nnz)
        start = stop
    return total / n


def _edges_into(graph: igraph.Graph, adjacency: sp.csr_matrix) -> igraph.Graph:
    coo = adjacency.tocoo()
    graph.add_edges(zip(coo.row.tolist(), coo.col.tolist()))  # 3x faster than an (E, 2) array's tolist()
    return graph


def _motifs(adjacency: sp.csr_matrix, seed: int) -> float:
    """igraph's sampled estimate of the number of 4-node motifs of the directed graph (MGE24's call)."""
    graph = _edges_into(igraph.Graph(n=adjacency.shape[0], directed=True), adjacency)
    previous = random.getstate()
    igraph.set_random_number_generator(random.Random(seed))
    try:
        return float(
            graph.motifs_randesu_estimate(size=4, sample=max(1, int(MOTIF_SAMPLE_FRACTION * graph.vcount())))
        )
    finally:
        igraph.set_random_number_generator(random)
        random.setstate(previous)
