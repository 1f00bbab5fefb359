"""MGE24's unrolled graph (SPEC §7): hand-counted tiny networks, ResNet-20's node counts, refusals."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fullspectrum.errors import FullSpectrumError, MaskError, TopologyError
from fullspectrum.models import build_model
from fullspectrum.topology import (
    PathsRecorder,
    effective_paths,
    load_npz_blocks,
    model_effective_paths,
    topometrics,
    unrolled_graph,
)
from fullspectrum.topology.patterns import conv_incidence


def bools(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def paths_by_layer(graph):
    return {r.layer: (r.kept, r.effective, r.ineffective) for r in effective_paths(graph).layers}


# ------------------------------------------------------------------ an MLP, counted by hand
def tiny_mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    # hidden unit 1 gets no input; output 1 gets nothing; input 2 feeds nobody
    masks = {"0.weight": bools([[1, 1, 0], [0, 0, 0]]), "2.weight": bools([[1, 1], [0, 0]])}
    return net, masks


def test_mlp_counts_by_hand():
    net, masks = tiny_mlp()
    graph = unrolled_graph(net, masks, (3,))
    assert [(p.name, p.shape, p.offset) for p in graph.partitions] == [
        ("input", (3,), 0),
        ("0", (2,), 3),
        ("2", (2,), 5),
    ]
    d = graph.as_dict()
    assert (d["nodes"], d["edges"], d["identity_edges"], d["dense_edges"]) == (7, 4, 0, 10)
    adjacency = graph.adjacency().toarray() > 0
    expected = np.zeros((7, 7), bool)
    for u, v in [(0, 3), (1, 3), (3, 5), (4, 5)]:  # in0,in1 -> h0; h0,h1 -> out0
        expected[u, v] = True
    assert (adjacency == expected).all()
    w = net[0].weight.detach().abs()
    assert graph.adjacency()[0, 3] == pytest.approx(float(w[0, 0]))
    # h1 is reached from nobody: its edge to out0 is ineffective
    assert paths_by_layer(graph) == {"0": (2, 2, 0), "2": (2, 1, 1)}
    paths = effective_paths(graph)
    assert (paths.effective_edges, paths.live_nodes) == (3, 4)  # live: in0, in1, h0, out0
    m = topometrics(graph)
    assert (m.sink_nodes, m.source_nodes, m.disconnected_nodes) == (0, 1, 2)  # source h1; in2, out1 isolated
    assert (m.removable_out, m.removable_in) == (0, 1)
    assert m.out_neighbourhood_1 == pytest.approx(4 / 7)
    assert m.out_neighbourhood_2 == pytest.approx(6 / 7)  # in0, in1 reach {h0, out0}; h0, h1 reach {out0}
    assert m.components == 3 and m.mean_component_size == pytest.approx(7 / 3)
    assert m.as_dict()["source_nodes_norm"] == pytest.approx(1 / 7)


# ------------------------------------------------------------------ a convnet with stride, padding, pooling
class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(1, 2)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv(x)), 2)  # (1, 2, 2) -> (1, 1, 1)
        return self.fc(torch.flatten(x, 1))


def tiny_convnet():
    torch.manual_seed(0)
    net = TinyConvNet()
    conv = torch.zeros(1, 1, 3, 3, dtype=torch.bool)
    conv[0, 0, 1, 1] = conv[0, 0, 0, 0] = True  # the centre tap and the top-left one
    return net, {"conv.weight": conv, "fc.weight": bools([[1], [0]])}


def test_convnet_counts_by_hand():
    net, masks = tiny_convnet()
    graph = unrolled_graph(net, masks, (1, 4, 4))
    # output (oy, ox) reads input (2oy - 1 + a, 2ox - 1 + b): the centre tap always (4 edges), the
    # top-left tap only at output (1, 1), reading input (1, 1) (1 edge); the pooled unit's fc edge is
    # copied to all 4 conv nodes of its window
    assert graph.nodes == 16 + 4 + 2 and graph.edges == 5 + 4
    conv_block, fc_block = graph.layers
    assert sorted(zip(*conv_block.matrix.nonzero())) == [(0, 0), (2, 1), (5, 3), (8, 2), (10, 3)]
    assert sorted(zip(*fc_block.matrix.nonzero())) == [(0, 0), (1, 0), (2, 0), (3, 0)]
    # dense: 1 + 2 + 2 = 5 valid (output, tap) pairs per dimension, 25 in 2-D; fc 4 nodes x 2 outputs
    assert [b.dense_edges for b in graph.layers] == [25, 8]
    assert paths_by_layer(graph) == {"conv": (2, 2, 0), "fc": (1, 1, 0)}
    assert effective_paths(graph).effective_edges == 9
    m = topometrics(graph)
    assert m.disconnected_nodes == 11 + 1  # input nodes no tap reads, and output 1
    assert (m.sink_nodes, m.source_nodes) == (0, 0)


def test_convnet_in_compatibility_mode():
    net, masks = tiny_convnet()
    graph = unrolled_graph(net, masks, (1, 4, 4), mge24_compat=True)
    assert graph.partitions[0].shape == (1, 6, 6) and graph.nodes == 36 + 4 + 2
    # on the padded input every tap is an edge: 2 kept taps x 4 positions, 3 of them from padding nodes
    assert graph.layers[0].edges == 8
    paths = effective_paths(graph)
    assert paths.effective_edges == 5 + 4  # padding nodes are never live
    assert paths_by_layer(graph) == paths_by_layer(unrolled_graph(net, masks, (1, 4, 4)))


def test_overlapping_pooling_merges_parallel_edges():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 1, 1, bias=False)
            self.pool = nn.AvgPool1d(2, stride=1)  # windows {0, 1} and {1, 2}
            self.fc = nn.Linear(2, 1)

        def forward(self, x):
            return self.fc(self.pool(self.conv(x)).view(x.size(0), -1))

    net = Net()
    graph = unrolled_graph(net, None, (1, 3))
    a, b = net.fc.weight.detach().abs()[0].tolist()
    fc = graph.layers[1].matrix.toarray()[:, 0]
    assert graph.layers[1].edges == 3 and graph.layers[1].dense_edges == 3
    assert fc == pytest.approx([a, a + b, b])  # node 1 sits in both windows: one edge, weights summed


# ------------------------------------------------------------------ residual blocks
class Residual(nn.Module):
    def __init__(self, projection: bool):
        super().__init__()
        self.stem = nn.Linear(2, 2)
        self.fc1 = nn.Linear(2, 2)
        self.fc2 = nn.Linear(2, 2)
        self.proj = nn.Linear(2, 2) if projection else nn.Identity()
        self.head = nn.Linear(2, 1)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        out = self.fc2(torch.relu(self.fc1(h))) + self.proj(h)
        return self.head(torch.relu(out))


RESIDUAL_MASKS = {
    "stem.weight": bools([[1, 0], [0, 1]]),
    "fc1.weight": bools([[1, 0], [0, 0]]),
    "fc2.weight": bools([[0, 0], [0, 0]]),  # the block's own path is cut
    "head.weight": bools([[1, 1]]),
}


def test_identity_shortcut_by_hand():
    graph = unrolled_graph(Residual(False), RESIDUAL_MASKS, (2,))
    assert [p.name for p in graph.partitions] == ["input", "stem", "fc1", "fc2", "head"]
    assert (graph.nodes, graph.edges, graph.identity_edges) == (9, 5, 2)
    (block,) = graph.identity
    assert (block.source, block.target) == (1, 3) and (block.matrix.toarray() == np.eye(2)).all()
    # the identity carries stem to head; fc1's kept weight reaches nothing
    assert paths_by_layer(graph) == {"stem": (2, 2, 0), "fc1": (1, 0, 1), "fc2": (0, 0, 0), "head": (2, 2, 0)}
    assert effective_paths(graph).effective_edges == 4
    m = topometrics(graph)
    assert (m.sink_nodes, m.source_nodes, m.disconnected_nodes) == (1, 0, 1)  # fc1 unit 0; fc1 unit 1

    none = unrolled_graph(Residual(False), RESIDUAL_MASKS, (2,), skips="none")
    assert (none.edges, none.identity_edges) == (5, 0)
    assert graph.adjacency().nnz - none.adjacency().nnz == graph.identity_edges
    # without the skip nothing reaches the output from the input
    assert effective_paths(none).effective_weights == 0
    m = topometrics(none)
    assert (m.source_nodes, m.removable_in) == (2, 2)  # fc2's units feed head but nobody feeds them


def test_projection_shortcut_shares_the_block_output():
    masks = {**RESIDUAL_MASKS, "proj.weight": bools([[1, 0], [0, 1]])}
    graph = unrolled_graph(Residual(True), masks, (2,))
    assert [p.name for p in graph.partitions] == ["input", "stem", "fc1", "fc2+proj", "head"]
    assert (graph.nodes, graph.edges, graph.identity_edges) == (9, 7, 0)
    proj = next(b for b in graph.layers if b.layer == "proj")
    fc2 = next(b for b in graph.layers if b.layer == "fc2")
    assert (proj.source, proj.target, fc2.source, fc2.target) == (1, 3, 2, 3)
    assert paths_by_layer(graph)["proj"] == (2, 2, 0)
    assert unrolled_graph(Residual(True), masks, (2,), skips="none").adjacency().nnz == graph.adjacency().nnz


# ------------------------------------------------------------------ the zoo's ResNet-20 (MGE24's node count)
@pytest.fixture(scope="module")
def resnet20():
    torch.manual_seed(0)
    model = build_model("resnet20", 10, (3, 32, 32))
    masks = {n: torch.rand(p.shape) < 0.01 for n, p in model.named_parameters() if p.dim() > 1}
    return model, masks


def test_resnet20_node_counts(resnet20):
    model, masks = resnet20
    plain = unrolled_graph(model, masks, (3, 32, 32))
    compat = unrolled_graph(model, masks, (3, 32, 32), mge24_compat=True)
    assert plain.nodes == 191_498 and compat.nodes == 191_894
    assert compat.partitions[0].shape == (3, 34, 34)
    assert plain.dense_edges == 37_259_968
    # identity shortcuts: 3 in stage 1 (16x32x32), 2 in stages 2 (32x16x16) and 3 (64x8x8)
    assert plain.identity_edges == 3 * 16384 + 2 * 8192 + 2 * 4096
    assert len(plain.partitions) == 1 + 19 + 1  # input, 19 conv outputs (shortcuts share theirs), fc
    assert "layer2.0.conv2+layer2.0.shortcut.0" in [p.name for p in plain.partitions]
    none = unrolled_graph(model, masks, (3, 32, 32), skips="none")
    assert none.edges == plain.edges and none.identity_edges == 0
    assert plain.adjacency().nnz - none.adjacency().nnz == plain.identity_edges


def test_resnet20_build_stays_under_40_bytes_per_edge(resnet20):
    model, _ = resnet20
    masks = {
        n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) < 0.1
        for n, p in model.named_parameters()
        if p.dim() > 1
    }
    unrolled_graph(model, masks, (3, 32, 32))  # warm: fx and torch allocate their caches once
    tracemalloc.start()
    graph = unrolled_graph(model, masks, (3, 32, 32))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert graph.edges > 3_000_000
    assert peak / graph.edges <= 40


@pytest.mark.slow
def test_dense_resnet20_has_mge24s_edge_count(resnet20):
    model, _ = resnet20
    graph = unrolled_graph(model, None, (3, 32, 32))
    assert graph.edges == graph.dense_edges == 37_259_968
    paths = effective_paths(graph)
    assert paths.effective_weights == paths.kept_weights == paths.weights  # dense: nothing ineffective


# ------------------------------------------------------------------ invariants and oracles
def test_conv_incidence_matches_loops():
    rng = np.random.default_rng(0)
    for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 1, 2)]:
        mask = rng.random((2, 3, 3, 2)) < 0.5
        in_size = (7, 6)
        out_size = tuple(
            (s + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for s, k in zip(in_size, (3, 2))
        )
        got = conv_incidence(
            mask,
            None,
            in_size,
            out_size,
            stride=(stride,) * 2,
            padding=(padding,) * 2,
            dilation=(dilation,) * 2,
        )
        expected = set()
        for c, j, a, b in zip(*np.nonzero(mask)):
            for oy, ox in itertools.product(range(out_size[0]), range(out_size[1])):
                iy, ix = oy * stride - padding + a * dilation, ox * stride - padding + b * dilation
                if 0 <= iy < in_size[0] and 0 <= ix < in_size[1]:
                    expected.add(
                        (j * 42 + iy * 6 + ix, c * out_size[0] * out_size[1] + oy * out_size[1] + ox)
                    )
        assert set(zip(*got.nonzero())) == expected


def _torch_effective(graph, model):
    """Oracle: a kept conv weight is effective where the weight gradient of a conv of the reached input
    map by the output units reaching the output is nonzero (torch's own conv arithmetic)."""
    from fullspectrum.topology.paths import reachability

    forward, backward = reachability(graph)
    modules = dict(model.named_modules())
    result = {}
    for block in graph.layers:
        reached = (
            forward[block.source] if block.reader is None else (block.reader.T @ forward[block.source]) > 0
        )
        live_out = torch.tensor(backward[block.target], dtype=torch.float64)
        if block.geometry is None:
            grad = torch.outer(live_out, torch.tensor(reached, dtype=torch.float64))
        else:
            g = block.geometry
            module = modules[block.layer]
            x = torch.tensor(reached, dtype=torch.float64).reshape(1, module.in_channels, *g.in_size)
            out = live_out.reshape(1, module.out_channels, *g.out_size)
            grad = torch.nn.grad.conv2d_weight(
                x, block.mask.shape, out, stride=g.stride, padding=g.padding, dilation=g.dilation
            )
        result[block.layer] = int(((grad > 0).numpy() & block.mask).sum())
    return result


@pytest.mark.parametrize("density", [0.02, 0.2])
def test_effective_weights_match_torch_oracle_and_stay_kept(density):
    torch.manual_seed(1)
    model = build_model("resnet20", 10, (3, 8, 8))
    masks = {n: torch.rand(p.shape) < density for n, p in model.named_parameters() if p.dim() > 1}
    graph = unrolled_graph(model, masks, (3, 8, 8))
    paths = effective_paths(graph)
    oracle = _torch_effective(graph, model)
    for row in paths.layers:
        assert 0 <= row.effective <= row.kept and row.kept + 0 == int(masks[f"{row.layer}.weight"].sum())
        assert row.effective == oracle[row.layer], row.layer
        assert row.effective_edges <= row.edges
    assert paths.effective_weights <= paths.kept_weights
    if density == 0.02:
        assert paths.effective_weights < paths.kept_weights  # the test can fail: some weights are dead


@pytest.mark.slow
@pytest.mark.parametrize("name, shape", [("lenet5", (1, 8, 8)), ("mlp", (1, 8, 8)), ("conv6", (1, 8, 8))])
def test_dense_zoo_networks_have_no_ineffective_weight(name, shape):
    torch.manual_seed(0)
    model = build_model(name, 10, shape)
    graph = unrolled_graph(model, None, shape)
    paths = effective_paths(graph)
    assert graph.edges == graph.dense_edges
    assert all(r.ineffective == 0 and r.effective == r.kept == r.weights for r in paths.layers)
    assert paths.effective_density == 1.0


@pytest.mark.slow
def test_dense_taps_that_only_read_padding_are_ineffective():
    """VGG-16 on 8x8 pools down to 1x1 maps: a 3x3 conv there has edges only at its centre tap."""
    torch.manual_seed(0)
    model = build_model("vgg16", 10, (1, 8, 8))
    graph = unrolled_graph(model, None, (1, 8, 8))
    for row, block in zip(effective_paths(graph).layers, graph.layers):
        if block.geometry is not None and block.geometry.in_size == (1, 1):
            out_ch, in_ch = block.mask.shape[:2]
            assert (row.effective, row.ineffective) == (out_ch * in_ch, 8 * out_ch * in_ch)
        else:
            assert row.ineffective == 0


def test_export_round_trip(tmp_path):
    net, masks = tiny_convnet()
    graph = unrolled_graph(net, masks, (1, 4, 4))
    graph.save_npz(tmp_path / "g.npz")
    partitions, blocks = load_npz_blocks(tmp_path / "g.npz")
    assert [p["nodes"] for p in partitions] == [16, 4, 2]
    assert [(k, s, t) for k, s, t, _ in blocks] == [("conv", 0, 1), ("fc", 1, 2)]
    for (_, _, _, matrix), block in zip(blocks, graph.layers):
        assert (matrix != block.matrix).nnz == 0


# ------------------------------------------------------------------ refusals
class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return self.fc(x)
        return x


def test_unsupported_operations_are_refused_by_name():
    with pytest.raises(TopologyError, match="function cat") as refused:
        unrolled_graph(Concat(), None, (2,))
    assert "\n" not in str(refused.value)  # one line, as the command line prints it
    grouped = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2))
    with pytest.raises(TopologyError, match=r"Conv2d module '0'.*groups=2"):
        unrolled_graph(grouped, None, (2, 5, 5))
    with pytest.raises(TopologyError, match="cannot be traced"):
        unrolled_graph(Branchy(), None, (2,))
    with pytest.raises(TopologyError, match="skips"):
        unrolled_graph(nn.Linear(2, 2), None, (2,), skips="all")
    assert issubclass(TopologyError, FullSpectrumError)


def test_bad_masks_are_refused():
    net, masks = tiny_mlp()
    with pytest.raises(MaskError, match="'1.weight'"):
        unrolled_graph(net, {**masks, "1.weight": bools([[1]])}, (3,))
    with pytest.raises(MaskError, match="shape"):
        unrolled_graph(net, {"0.weight": bools([[1, 1]])}, (3,))
    # a DataParallel prefix is fine
    assert unrolled_graph(net, {f"module.{k}": v for k, v in masks.items()}, (3,)).edges == 4


# ------------------------------------------------------------------ the edge-free route for snapshots
def _edge_free_cases():
    torch.manual_seed(2)
    resnet = build_model("resnet20", 10, (3, 8, 8))
    vgg = build_model("vgg16", 10, (1, 8, 8))  # max-pooling readers between convs
    net, masks = tiny_convnet()
    for model, shape, density in [
        (resnet, (3, 8, 8), 0.03),
        (resnet, (3, 8, 8), 0.3),
        (vgg, (1, 8, 8), 0.05),
    ]:
        gen = torch.Generator().manual_seed(int(density * 100))
        yield (
            model,
            {
                n: torch.rand(p.shape, generator=gen) < density
                for n, p in model.named_parameters()
                if p.dim() > 1
            },
            shape,
        )
    yield net, masks, (1, 4, 4)
    yield Residual(False), RESIDUAL_MASKS, (2,)


@pytest.mark.parametrize("skips", ["identity", "none"])
def test_model_effective_paths_equal_the_graph_route(skips):
    for model, masks, shape in _edge_free_cases():
        cheap = model_effective_paths(model, masks, shape, skips=skips)
        full = effective_paths(unrolled_graph(model, masks, shape, skips=skips))
        assert cheap == full


def test_a_recorder_traces_once_and_follows_every_mask():
    cases = list(_edge_free_cases())
    for model, masks, shape in cases:
        recorder = PathsRecorder(model, shape)
        assert recorder(masks) == effective_paths(unrolled_graph(model, masks, shape))
        assert recorder(None) == effective_paths(unrolled_graph(model, None, shape))  # dense, reused
    model, masks, shape = cases[0]
    recorder = PathsRecorder(model, shape, skips="none")
    assert recorder(masks) == effective_paths(unrolled_graph(model, masks, shape, skips="none"))
    with pytest.raises(MaskError, match="matches no"):
        recorder({"nope.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(MaskError, match="shape"):
        recorder({"conv1.weight": torch.ones(2, 2, dtype=torch.bool)})


def test_tap_slices_match_tap_positions():
    from fullspectrum.topology.patterns import tap_positions, tap_slices

    rng = np.random.default_rng(5)
    for _ in range(300):
        in_size = tuple(int(v) for v in rng.integers(1, 9, 2))
        k, s, p, d = (
            int(v) for v in (rng.integers(1, 4), rng.integers(1, 4), rng.integers(0, 3), rng.integers(1, 3))
        )
        out_size = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in in_size)
        if min(out_size) < 1:
            continue
        geometry = {"stride": (s, s), "padding": (p, p), "dilation": (d, d)}
        for tap in itertools.product(range(k), repeat=2):
            flat_out, flat_in = tap_positions(in_size, out_size, tap, **geometry)
            boxes = tap_slices(in_size, out_size, tap, **geometry)
            if boxes is None:
                assert len(flat_out) == 0
                continue
            out_index = np.arange(np.prod(out_size)).reshape(out_size)[boxes[0]].ravel()
            in_index = np.arange(np.prod(in_size)).reshape(in_size)[boxes[1]].ravel()
            assert (out_index == flat_out).all() and (in_index == flat_in).all()
