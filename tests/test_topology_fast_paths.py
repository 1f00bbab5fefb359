"""The fast paths of the topometrics against slow, obviously right oracles: vectorised k-cores, bridges and
articulation points (``topology.undirected``) against networkx, and the spectral terms (``topology.spectral``:
the loose-tolerance route, its fallback, the bipartite route) against dense eigendecompositions."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse import csgraph
from torch import nn

from fullspectrum.topology import spectral, topometrics, undirected, unrolled_graph
from tests.test_topology_metrics import networkx_metrics


def symmetric(n: int, edges) -> sp.csr_matrix:
    """The simple undirected graph of ``edges`` (self-loops and repeats dropped), both directions stored."""
    pairs = np.array([(u, v) for u, v in edges if u != v], dtype=np.int64).reshape(-1, 2)
    upper = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    both = (upper + upper.T).tocsr()
    both.data[:] = 1.0
    return both


def graphs(count: int = 400):
    """Random graphs of every shape the peeling and the depth-first tree must survive: dense and sparse,
    trees, paths with a few chords, many components, isolated vertices, empty."""
    rng = np.random.default_rng(7)
    for index in range(count):
        n = int(rng.integers(0, 45))
        kind = index % 4
        if n == 0:
            edges = []
        elif kind == 0:
            edges = rng.integers(0, n, size=(int(rng.integers(0, 3 * n + 1)), 2)).tolist()
        elif kind == 1:
            edges = [(i, int(rng.integers(0, i))) for i in range(1, n)]
        elif kind == 2:
            edges = [(i, i + 1) for i in range(n - 1)] + rng.integers(0, n, size=(2, 2)).tolist()
        else:
            edges = rng.integers(0, n, size=(int(rng.integers(0, n // 2 + 1)), 2)).tolist()
        yield symmetric(n, edges)


def oracle(matrix: sp.csr_matrix):
    graph = nx.Graph()
    graph.add_nodes_from(range(matrix.shape[0]))
    graph.add_edges_from(zip(*matrix.nonzero()))
    core = nx.core_number(graph)
    return (
        [core[v] for v in range(matrix.shape[0])],
        len(list(nx.bridges(graph))),
        len(list(nx.articulation_points(graph))),
    )


def ours(matrix: sp.csr_matrix):
    cuts = undirected.cut_structure(matrix)
    return undirected.coreness(matrix).tolist(), cuts.bridges, cuts.articulation_points


def test_cores_bridges_and_articulation_points_agree_with_networkx(monkeypatch):
    fallbacks = []
    monkeypatch.setattr(undirected, "_igraph_cut_structure", lambda m: fallbacks.append(m))
    for matrix in graphs():
        assert ours(matrix) == oracle(matrix)
    assert fallbacks == []  # every case took the vectorised route


def test_a_tree_that_is_not_depth_first_is_caught_and_igraph_answers(monkeypatch):
    """Low-link needs a depth-first tree; a breadth-first one (wrong answers if trusted) hands over to igraph."""

    def breadth_first(graph, start, directed=True, return_predecessors=True):
        return csgraph.breadth_first_order(graph, start, directed=directed, return_predecessors=True)

    monkeypatch.setattr(undirected, "depth_first_order", breadth_first)
    caught = []
    original = undirected._igraph_cut_structure
    monkeypatch.setattr(undirected, "_igraph_cut_structure", lambda m: caught.append(1) or original(m))
    for matrix in graphs(120):
        assert ours(matrix) == oracle(matrix)
    assert caught  # a cycle's breadth-first tree has cross edges


def test_peeling_past_its_round_budget_hands_over_to_igraph(monkeypatch):
    monkeypatch.setattr(undirected, "MAX_PEEL_ROUNDS", 1)
    for matrix in graphs(120):
        assert undirected.coreness(matrix).tolist() == oracle(matrix)[0]


def _dense_terms(matrix: sp.csr_matrix) -> tuple[float, float]:
    dense = matrix.toarray()
    mu = np.sort(np.abs(np.linalg.eigvalsh(dense)))[::-1]
    return mu[0] - mu[2], np.linalg.eigvalsh(np.diag(dense.sum(axis=1)) - dense).max()


def _weighted(matrix: sp.csr_matrix, seed: int) -> sp.csr_matrix:
    upper = sp.triu(matrix, k=1).tocoo()
    upper.data = np.random.default_rng(seed).random(upper.nnz) + 0.05
    return (upper + upper.T).tocsr()


def _bipartite(rows: int, cols: int, density: float, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    block = sp.random(rows, cols, density=density, random_state=seed, format="csr")
    block.data = np.abs(block.data) + 0.05
    matrix = sp.bmat([[None, block], [block.T, None]]).tocsr()
    return matrix, np.arange(rows + cols) >= rows


@pytest.mark.parametrize("seed", range(4))
def test_spectral_terms_agree_with_dense_eigendecompositions(seed):
    rng = np.random.default_rng(seed)
    n = 150
    general = _weighted(symmetric(n, rng.integers(0, n, size=(400, 2)).tolist()), seed)
    assert spectral.spectral_terms(general) == pytest.approx(_dense_terms(general), rel=1e-9)
    matrix, sides = _bipartite(90, 70, 0.06, seed)
    expected = _dense_terms(matrix)
    assert spectral.spectral_terms(matrix, sides) == pytest.approx(expected, rel=1e-9)
    assert spectral.spectral_terms(matrix) == pytest.approx(expected, rel=1e-9)  # the general route agrees


def test_a_rejected_estimate_reruns_arpack_at_float32_precision(monkeypatch):
    rng = np.random.default_rng(5)
    matrix = _weighted(symmetric(120, rng.integers(0, 120, size=(360, 2)).tolist()), 5)
    attempts = []
    original = spectral._refined
    monkeypatch.setattr(spectral, "_refined", lambda *a: attempts.append(a[-1]) or original(*a))
    monkeypatch.setattr(spectral, "ACCEPTED_ERROR", 0.0)
    assert spectral.spectral_terms(matrix) == pytest.approx(_dense_terms(matrix), rel=1e-9)
    assert spectral._THOROUGH in attempts


def test_edges_joining_one_side_leave_the_bipartite_route():
    """Sides that an edge does not cross are not a bipartition: the general route answers."""
    matrix, sides = _bipartite(80, 60, 0.08, 1)
    extra = symmetric(140, [(0, 1), (2, 3)])  # two edges inside the first side: odd cycles appear
    joined = (matrix + extra).tocsr()
    assert not spectral._crosses(joined, sides)
    assert spectral.spectral_terms(joined, sides) == pytest.approx(_dense_terms(joined), rel=1e-9)


def test_a_plain_mlp_takes_the_bipartite_route_and_agrees_with_networkx(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 10))
    masks = {name: torch.rand(p.shape) < 0.15 for name, p in model.named_parameters() if p.dim() > 1}
    graph = unrolled_graph(model, masks, (30,))
    routes = []
    original = spectral.bipartite_gap
    monkeypatch.setattr(spectral, "bipartite_gap", lambda *a: routes.append(1) or original(*a))
    values = topometrics(graph).as_dict()
    assert routes == [1]
    for name, value in networkx_metrics(graph).items():
        assert values[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
