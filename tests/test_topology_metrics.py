"""Topometrics (SPEC §7) against slow, obviously right oracles: networkx and dense eigendecompositions."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from fullspectrum.topology import effective_paths, topometrics, unrolled_graph
from fullspectrum.topology.metrics import out_neighbourhood_2


class SmallResNet(nn.Module):
    """A conv stem, one identity block, a strided projection block, pooling and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.a1 = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.a2 = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.b1 = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
        self.b2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.proj = nn.Conv2d(2, 3, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = torch.relu(self.a2(torch.relu(self.a1(h))) + h)
        h = torch.relu(self.bn(self.b2(torch.relu(self.b1(h)))) + self.proj(h))
        return self.fc(nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))


def random_graphs():
    for seed, density in [(0, 0.15), (1, 0.3), (2, 0.5), (3, 0.08)]:
        torch.manual_seed(seed)
        model = SmallResNet()
        masks = {n: torch.rand(p.shape) < density for n, p in model.named_parameters() if p.dim() > 1}
        for skips in ("identity", "none"):
            yield pytest.param(model, masks, skips, id=f"seed{seed}-{skips}")


def networkx_metrics(graph) -> dict[str, float]:
    adjacency = graph.adjacency()
    n = adjacency.shape[0]
    directed = nx.DiGraph()
    directed.add_nodes_from(range(n))
    coo = adjacency.tocoo()
    directed.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()))
    undirected = directed.to_undirected()
    part = graph.partition_of()
    inputs = set(np.flatnonzero(part == 0).tolist())
    outputs = set(np.flatnonzero(part == graph.output).tolist())
    sinks = [
        v for v in directed if directed.out_degree(v) == 0 and directed.in_degree(v) > 0 and v not in outputs
    ]
    sources = [
        v for v in directed if directed.in_degree(v) == 0 and directed.out_degree(v) > 0 and v not in inputs
    ]
    two = [len(nx.single_source_shortest_path_length(directed, v, cutoff=2)) - 1 for v in directed]
    dense = adjacency.toarray()
    symmetric = dense + dense.T
    mu = np.sort(np.abs(np.linalg.eigvalsh(symmetric)))[::-1]
    laplacian = np.diag(symmetric.sum(axis=1)) - symmetric
    components = list(nx.weakly_connected_components(directed))
    return {
        "sink_nodes": len(sinks),
        "source_nodes": len(sources),
        "disconnected_nodes": sum(1 for v in directed if directed.degree(v) == 0),
        "removable_out": sum(directed.in_degree(v) for v in sinks),
        "removable_in": sum(directed.out_degree(v) for v in sources),
        "out_neighbourhood_1": np.mean([directed.out_degree(v) for v in directed]),
        "out_neighbourhood_2": np.mean(two),
        "strength": np.mean([directed.degree(v, weight="weight") for v in directed]),
        "coreness": np.mean(list(nx.core_number(undirected).values())),
        "cut_edges": len(list(nx.bridges(undirected))),
        "cut_nodes": len(list(nx.articulation_points(undirected))),
        "components": len(components),
        "mean_component_size": np.mean([len(c) for c in components]),
        "spectral_gap_w": mu[0] - mu[2],
        "laplacian_radius_w": np.linalg.eigvalsh(laplacian).max(),
    }


@pytest.mark.parametrize("model, masks, skips", list(random_graphs()))
def test_topometrics_agree_with_networkx(model, masks, skips):
    graph = unrolled_graph(model, masks, (1, 6, 6), skips=skips)
    ours = topometrics(graph).as_dict()
    oracle = networkx_metrics(graph)
    assert graph.nodes > 64  # the spectral terms run ARPACK, not the small-graph dense path
    for name, value in oracle.items():
        assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


def test_effective_edges_agree_with_networkx_reachability():
    for model, masks, skips in (p.values for p in random_graphs()):
        graph = unrolled_graph(model, masks, (1, 6, 6), skips=skips)
        directed = nx.DiGraph(graph.adjacency())
        part = graph.partition_of()
        inputs = np.flatnonzero(part == 0).tolist()
        outputs = np.flatnonzero(part == graph.output).tolist()
        forward = set().union(*(nx.descendants(directed, v) | {v} for v in inputs))
        backward = set().union(*(nx.ancestors(directed, v) | {v} for v in outputs))
        live = forward & backward
        expected = 0
        for block in graph.layers:
            s, t = graph.partitions[block.source].offset, graph.partitions[block.target].offset
            rows, cols = block.matrix.nonzero()
            expected += sum(1 for u, v in zip(rows + s, cols + t) if u in live and v in live)
        paths = effective_paths(graph)
        assert paths.effective_edges == expected
        assert paths.live_nodes == len(live)


def test_out_neighbourhood_2_in_small_chunks(monkeypatch):
    """The row chunks bound memory and change nothing."""
    torch.manual_seed(0)
    model = SmallResNet()
    graph = unrolled_graph(model, None, (1, 6, 6))
    structure = graph.adjacency(weighted=False)
    whole = out_neighbourhood_2(structure)
    monkeypatch.setattr("fullspectrum.topology.metrics._ROW_CHUNK_EDGES", 50)
    assert out_neighbourhood_2(structure) == whole


def test_motifs_are_seeded():
    torch.manual_seed(0)
    model = SmallResNet()
    graph = unrolled_graph(model, None, (1, 6, 6))
    first = topometrics(graph, motifs=True, seed=3).motifs_4
    assert first is not None and first >= 0
    assert topometrics(graph, motifs=True, seed=3).motifs_4 == first
    assert topometrics(graph).motifs_4 is None
