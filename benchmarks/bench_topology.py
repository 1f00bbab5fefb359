"""Benchmark: MGE24's unrolled graph and topometrics, their route against ours; effective paths' cost.

**Setting.** CIFAR ResNet-20 (``build_model("resnet20", 10, (3, 32, 32))``) with an **ERK** mask
(``generate_masks(model, "erk", d)``, ITOP21's layer densities, uniform inside each layer) at
density 0.02 (``--density``), weights at initialisation. Both routes build MGE24's own graph
(identity skips left out, the first conv's padding nodes kept: ``skips="none", mge24_compat=True``,
191,894 nodes) and compute every topometric but motifs; the bench checks that both graphs have the
same nodes and edges and prints the metrics side by side.

**The baseline** re-implements the route of MGE24's code (``eliacunegatti/mge-snn``): one igraph
bipartite graph per layer from Python edge lists (the conv loops compiled with numba, as theirs are,
compilation not timed), built twice as their loop does (a layer is ``G2`` of one step and ``G1`` of
the next) and split into sides by a Python loop over its vertices (their ``get_ids``), the next
layer's padding vertices deleted, the layers concatenated by
iterating their igraph edges in Python with node offsets, pooled units expanded edge by edge, the
projection shortcuts added the same way; then their metric calls (igraph bridges, articulation
points, neighbourhood sizes, strength, coreness, components of ``as_undirected()``), Python loops
over the vertices for sources and sinks, and ARPACK (``eigsh``, float32 as theirs) on the
symmetric weighted adjacency (``k=3``) and its Laplacian (``k=2``). **Ours**:
:func:`~fullspectrum.topology.unrolled_graph` then :func:`~fullspectrum.topology.topometrics`.
Both run in this process, one BLAS thread each (``threadpoolctl``); wall-clock and CPU time
(``time.process_time``, steadier on a shared machine) are printed, with each route's build/metrics split. Peak memory of each route:
the resident-set peak over its run (``/proc/self/status`` ``VmHWM``, reset before each route by
writing 5 to ``/proc/self/clear_refs``), minus the resident size when it started; and NumPy's own
allocations at their peak (``tracemalloc``, ours only, in an untimed second run; igraph's C memory is not seen by it). Ours also prints
the graph build's peak NumPy bytes per edge (target: at most 40).

**Effective paths.** ResNet-18 at density 0.01 (ERK, its training input 3×32×32): the time of
:func:`~fullspectrum.topology.effective_paths` on the built graph (and of the build), and of
:func:`~fullspectrum.topology.model_effective_paths` (trace plus edge-free sweeps: what a training
snapshot would run) and of a :class:`~fullspectrum.topology.PathsRecorder` call (the model traced once
per run), against ``fullspectrum.layer_spectra`` of the same snapshot's layers.

    python benchmarks/bench_topology.py            # about 2 minutes on 2 loaded cores
    python benchmarks/bench_topology.py --quick    # density 0.01, no ResNet-18 part
    python benchmarks/bench_topology.py --no-paths # density 0.02, no ResNet-18 part
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from pathlib import Path

import igraph
import numpy as np
import scipy.sparse as sp
import torch
from numba import njit
from scipy.sparse.linalg import eigsh
from threadpoolctl import threadpool_limits
from torch import nn

from fullspectrum import layer_spectra
from fullspectrum.models import build_model
from fullspectrum.pruning import generate_masks
from fullspectrum.topology import (
    PathsRecorder,
    effective_paths,
    model_effective_paths,
    topometrics,
    unrolled_graph,
)

METRICS = (
    "nodes", "sink_nodes", "source_nodes", "disconnected_nodes", "removable_out", "removable_in",
    "out_neighbourhood_1", "out_neighbourhood_2", "strength", "coreness", "cut_edges", "cut_nodes",
    "components", "mean_component_size", "spectral_gap_w", "laplacian_radius_w",
)  # fmt: skip


# ---------------------------------------------------------------- the baseline (MGE24's route)
@njit(cache=False)
def _conv_edges(weight, in_size, out_size, stride):
    """Their ``optimize_cnn`` pattern: every (in, out) channel pair, position and tap, on the padded input."""
    connection = []
    edge_weight = []
    out_ch, in_ch, k, _ = weight.shape
    n_in = in_size * in_size
    for j in range(in_ch):
        for c in range(out_ch):
            for p in range(out_size * out_size):
                oy, ox = p // out_size, p % out_size
                for a in range(k):
                    for b in range(k):
                        w = weight[c, j, a, b]
                        if w != 0.0:
                            source = j * n_in + (oy * stride + a) * in_size + (ox * stride + b)
                            connection.append((source, in_ch * n_in + c * out_size * out_size + p))
                            edge_weight.append(abs(w))
    return connection, edge_weight


def _bipartite(n_left: int, n_right: int, connection, weights) -> igraph.Graph:
    graph = igraph.Graph(directed=True)
    graph.add_vertices(n_left + n_right)
    graph.vs["type"] = [False] * n_left + [True] * n_right
    graph.add_edges(connection)
    graph.es["weight"] = np.abs(np.array(weights, dtype=np.float16))
    return graph


def _layer_graph(conv: nn.Conv2d, masked: np.ndarray, in_hw: int, out_hw: int) -> igraph.Graph:
    pad = conv.padding[0]
    padded = in_hw + 2 * pad
    connection, weights = _conv_edges(masked, padded, out_hw, conv.stride[0])
    return _bipartite(
        conv.in_channels * padded * padded, conv.out_channels * out_hw * out_hw, connection, weights
    )


def _remove_padding(graph: igraph.Graph, channels: int, hw: int, pad: int) -> igraph.Graph:
    """Delete the left (input) vertices that sit on padding, found by Python loops (their ``remove_padding``)."""
    if not pad:
        return graph
    padded = hw + 2 * pad
    to_remove = []
    for j in range(channels):
        for y in range(padded):
            for x in range(padded):
                if y < pad or y >= pad + hw or x < pad or x >= pad + hw:
                    to_remove.append(j * padded * padded + y * padded + x)
    graph.delete_vertices(to_remove)
    return graph


def _get_ids(graph: igraph.Graph) -> tuple[list[int], list[int]]:
    """Their ``get_ids``: a layer graph's left and right vertices, by a Python loop over its vertices."""
    left, right = [], []
    for vertex in graph.vs:
        (right if vertex["type"] else left).append(vertex.index)
    return left, right


def _append(total: igraph.Graph, graph: igraph.Graph, left_offset: int) -> None:
    """Their ``concatenate_bipartite_graphs_all``: add the right vertices and shift every edge in Python."""
    n_left = sum(1 for v in graph.vs if not v["type"])
    total.add_vertices(graph.vcount() - n_left)
    weights = total.es["weight"]
    edges = [(e.source + left_offset, e.target + left_offset) for e in graph.es]
    total.add_edges(edges)
    total.es["weight"] = weights + graph.es["weight"]


def baseline_graph(model: nn.Module, masks: dict[str, torch.Tensor], input_hw: int = 32) -> igraph.Graph:
    """MGE24's unrolled graph of a zoo CIFAR ResNet (no identity skips, input padding kept)."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o, name=name: sizes.__setitem__(name, (i[0].shape[-1], o.shape[-1]))
        )
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, input_hw, input_hw))
    for hook in hooks:
        hook.remove()

    def masked(name: str, module: nn.Module) -> np.ndarray:
        weight = module.weight.detach().numpy().astype(np.float32)
        return weight * masks[f"{name}.weight"].numpy()

    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "shortcut" not in n]
    shortcuts = {
        n.rsplit(".shortcut", 1)[0]: (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and "shortcut" in n
    }
    offsets = {}  # partition name -> offset of its first vertex
    name, conv = convs[0]
    in_hw, out_hw = sizes[name]
    total = _layer_graph(conv, masked(name, conv), in_hw, out_hw)
    offsets["input"] = 0
    offsets[name] = conv.in_channels * (in_hw + 2 * conv.padding[0]) ** 2
    previous, previous_conv = name, conv
    for name, conv in convs[1:]:
        in_hw, out_hw = sizes[name]
        # their loop builds layer i again as G1 of step i (it was G2 of step i - 1) and splits both by get_ids
        g1 = _layer_graph(previous_conv, masked(previous, previous_conv), *sizes[previous])
        _get_ids(g1)
        graph = _layer_graph(conv, masked(name, conv), in_hw, out_hw)
        _get_ids(graph)
        graph = _remove_padding(graph, conv.in_channels, in_hw, conv.padding[0])
        _get_ids(graph)
        _append(total, graph, offsets[previous])
        offsets[name] = total.vcount() - graph.vcount() + sum(1 for v in graph.vs if not v["type"])
        block = name.rsplit(".", 1)[0]
        if name.endswith("conv2") and block in shortcuts:  # the projection shortcut, block input -> output
            sc_name, sc = shortcuts[block]
            sc_in, sc_out = sizes[sc_name]
            gr = _layer_graph(sc, masked(sc_name, sc), sc_in, sc_out)
            n_left = sum(1 for v in gr.vs if not v["type"])
            block_input = offsets[_block_input(convs, block)]
            weights = total.es["weight"]
            edges = [(e.source + block_input, e.target - n_left + offsets[name]) for e in gr.es]
            total.add_edges(edges)
            total.es["weight"] = weights + gr.es["weight"]
        previous, previous_conv = name, conv
    # the classifier after global average pooling: every edge copied to each unit of its window
    fc = model.fc
    weight = (fc.weight.detach().numpy() * masks["fc.weight"].numpy()).T
    window = out_hw * out_hw
    last = offsets[previous]
    start = total.vcount()
    total.add_vertices(fc.out_features)
    weights = total.es["weight"]
    edges, new_weights = [], []
    for i in range(weight.shape[0]):
        for j in range(weight.shape[1]):
            if weight[i, j] != 0:
                for u in range(window):
                    edges.append((last + i * window + u, start + j))
                    new_weights.append(abs(float(weight[i, j])))
    total.add_edges(edges)
    total.es["weight"] = weights + new_weights
    return total


def _block_input(convs, block: str) -> str:
    names = [n for n, _ in convs]
    index = names.index(f"{block}.conv1")
    return names[index - 1] if index else "input"


def baseline_metrics(graph: igraph.Graph, n_input: int, n_output: int) -> dict[str, float]:
    """Their metric calls on the whole graph (``main.py`` of MGE24's code, motifs left out)."""
    values = {"nodes": graph.vcount()}
    values["cut_edges"] = len(graph.bridges())
    values["cut_nodes"] = len(graph.articulation_points())
    values["out_neighbourhood_1"] = float(np.mean(graph.neighborhood_size(order=1, mode="out"))) - 1
    values["out_neighbourhood_2"] = float(np.mean(graph.neighborhood_size(order=2, mode="out"))) - 1
    values["strength"] = float(np.mean(graph.strength(weights="weight", mode="all")))
    n = graph.vcount()
    values["sink_nodes"] = len(
        [v.index for v in graph.vs if v.outdegree() == 0 and v.indegree() != 0 and v.index < n - n_output]
    )
    values["source_nodes"] = len(
        [v.index for v in graph.vs if v.outdegree() != 0 and v.indegree() == 0 and v.index >= n_input]
    )
    values["disconnected_nodes"] = len(
        [v.index for v in graph.vs if v.outdegree() == 0 and v.indegree() == 0]
    )
    values["removable_out"] = sum(
        v.indegree() for v in graph.vs if v.outdegree() == 0 and v.indegree() != 0 and v.index < n - n_output
    )
    values["removable_in"] = sum(
        v.outdegree() for v in graph.vs if v.outdegree() != 0 and v.indegree() == 0 and v.index >= n_input
    )
    values["coreness"] = float(np.mean(graph.coreness(mode="all")))
    undirected = graph.as_undirected(combine_edges="first")
    undirected.to_directed()
    components = undirected.connected_components(mode="strong")
    values["components"] = len(components)
    values["mean_component_size"] = float(np.mean([len(c) for c in components]))
    edges = np.array(undirected.get_edgelist())
    weights = np.array(undirected.es["weight"], dtype=np.float32)
    adjacency = sp.csc_matrix((weights, (edges[:, 0], edges[:, 1])), shape=(n, n))
    mu = sorted(np.abs(eigsh(adjacency, k=3, which="LM")[0]), reverse=True)
    values["spectral_gap_w"] = float(mu[0] - mu[2])
    degrees = np.asarray(adjacency.sum(axis=0)).ravel()
    laplacian = sp.diags(degrees, 0, format="csr") - adjacency
    values["laplacian_radius_w"] = float(max(eigsh(sp.csc_matrix(laplacian), k=2, which="LM")[0]))
    return values


# ---------------------------------------------------------------- measuring
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def measured(function, *args, trace: bool = False):
    """``(result, seconds, peak extra RSS MiB, peak NumPy MiB)`` of ``function(*args)``; NumPy's peak
    (``tracemalloc``, which slows every Python allocation) only with ``trace``, and then untimed."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass
    start_rss = _rss_kib("VmRSS:")
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - start
    numpy_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    return result, seconds, (_rss_kib("VmHWM:") - start_rss) / 1024, numpy_peak / 2**20


def erk_masks(model: nn.Module, density: float, seed: int) -> dict[str, torch.Tensor]:
    return generate_masks(model, "erk", density, seed=seed).masks


def ours(model, masks):
    start = time.process_time()
    graph = unrolled_graph(model, masks, (3, 32, 32), skips="none", mge24_compat=True)
    built = time.process_time()
    return graph, topometrics(graph), (built - start, time.process_time() - built)


def theirs(model, masks):
    start = time.process_time()
    graph = baseline_graph(model, masks)
    built = time.process_time()
    return graph, baseline_metrics(graph, 3 * 34 * 34, 10), (built - start, time.process_time() - built)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--density", type=float, default=0.02)
    parser.add_argument("--quick", action="store_true", help="density 0.01 and no ResNet-18 part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-paths", action="store_true", help="the two routes only (no ResNet-18 part)")
    args = parser.parse_args()
    density = 0.01 if args.quick else args.density
    torch.manual_seed(args.seed)
    model = build_model("resnet20", 10, (3, 32, 32))
    masks = erk_masks(model, density, args.seed)
    with threadpool_limits(limits=1, user_api="blas"):
        _conv_edges(np.ones((1, 1, 3, 3), np.float32), 4, 2, 1)  # numba compiles outside the timing
        (their_graph, their_values, cpu_theirs), t_theirs, rss_theirs, _ = measured(theirs, model, masks)
        del their_graph
        (graph, result, cpu_ours), t_ours, rss_ours, _ = measured(ours, model, masks)
        _, _, _, np_ours = measured(ours, model, masks, trace=True)
        _, t_build, _, _ = measured(unrolled_graph, model, masks, (3, 32, 32), "none", True)
        _, _, _, np_build = measured(unrolled_graph, model, masks, (3, 32, 32), "none", True, trace=True)
    values = result.as_dict()
    print(f"ResNet-20, ERK density {density}: {graph.nodes} nodes, {graph.edges} edges (MGE24's graph)")
    print(f"{'metric':<22} {'MGE24 route':>16} {'ours':>16}")
    for name in METRICS:
        print(f"{name:<22} {their_values[name]:>16.6g} {values[name]:>16.6g}")
    for label, wall, (build, metrics), rss, extra in (
        ("MGE24 route", t_theirs, cpu_theirs, rss_theirs, ""),
        ("ours", t_ours, cpu_ours, rss_ours, f" ({np_ours:.1f} MiB NumPy)"),
    ):
        print(
            f"{label:<12} {wall:7.2f} s wall, {build + metrics:7.2f} s CPU (build {build:6.2f}, metrics "
            f"{metrics:6.2f}), peak +{rss:6.1f} MiB RSS{extra}"
        )
    cpu_ratio = sum(cpu_theirs) / sum(cpu_ours)
    print(
        f"ratio: {t_theirs / t_ours:.1f}x faster (wall), {cpu_ratio:.1f}x (CPU), "
        f"{rss_theirs / max(rss_ours, 1e-9):.1f}x less peak RSS"
    )
    print(
        f"graph build alone: {t_build * 1e3:.0f} ms, peak NumPy {np_build * 2**20 / graph.edges:.1f} bytes per edge"
    )
    if args.quick or args.no_paths:
        return
    torch.manual_seed(args.seed)
    resnet18 = build_model("resnet18", 10, (3, 32, 32))
    masks18 = erk_masks(resnet18, 0.01, args.seed)
    with threadpool_limits(limits=1, user_api="blas"):
        graph18, t_build18, _, _ = measured(unrolled_graph, resnet18, masks18, (3, 32, 32))
        _, _, _, np18 = measured(unrolled_graph, resnet18, masks18, (3, 32, 32), trace=True)
        best = min(measured(effective_paths, graph18)[1] for _ in range(3))
        cpu = time.process_time()
        effective_paths(graph18)
        cpu = time.process_time() - cpu
        model_best = min(measured(model_effective_paths, resnet18, masks18, (3, 32, 32))[1] for _ in range(3))
        model_cpu = time.process_time()
        model_effective_paths(resnet18, masks18, (3, 32, 32))
        model_cpu = time.process_time() - model_cpu
        recorder = PathsRecorder(resnet18, (3, 32, 32))  # what a run would make once
        recorder_best = min(measured(recorder, masks18)[1] for _ in range(3))
        recorder_cpu = time.process_time()
        recorder(masks18)
        recorder_cpu = time.process_time() - recorder_cpu
        layers = [
            (masks18[f"{name}.weight"], module.weight.detach(), name)
            for name, module in resnet18.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear))
        ]
        _, t_spectra, _, _ = measured(layer_spectra, layers)
        spectra_cpu = time.process_time()
        layer_spectra(layers)
        spectra_cpu = time.process_time() - spectra_cpu
    print(
        f"ResNet-18, ERK density 0.01: {graph18.edges} edges; build {t_build18 * 1e3:.0f} ms "
        f"({np18 * 2**20 / graph18.edges:.1f} bytes per edge); effective_paths of the built graph "
        f"{best * 1e3:.0f} ms wall ({cpu * 1e3:.0f} ms CPU); model_effective_paths (trace + edge-free sweeps) "
        f"{model_best * 1e3:.0f} ms wall ({model_cpu * 1e3:.0f} ms CPU); layer_spectra {t_spectra * 1e3:.0f} ms "
        f"wall ({spectra_cpu * 1e3:.0f} ms CPU): model_effective_paths = {model_best / t_spectra:.0%} (wall), "
        f"{model_cpu / spectra_cpu:.0%} (CPU) of the spectra"
    )
    print(
        f"PathsRecorder (traced once) per snapshot: {recorder_best * 1e3:.0f} ms wall ({recorder_cpu * 1e3:.0f} ms "
        f"CPU) = {recorder_best / t_spectra:.0%} (wall), {recorder_cpu / spectra_cpu:.0%} (CPU) of the spectra"
    )


if __name__ == "__main__":
    main()
