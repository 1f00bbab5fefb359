"""``unrolled_graph``: trace a model with ``torch.fx`` and build MGE24's unrolled graph (SPEC §7).

Cunegatti et al. (TMLR 2024, "MGE24") encode a sparse network as one directed multipartite
graph: a node per (channel, position) of the input and of every feature map a prunable layer
writes, an edge per kept weight and output position it acts at. The model is traced
(``torch.fx.symbolic_trace``) and run once on a batch of two zeros (eval mode, so shapes are
real and BatchNorm is harmless), and every traced value is followed abstractly as *the nodes of
one partition, seen through a reader* (a sparse ``nodes × elements`` matrix: pooling windows,
compatibility padding; ``None`` = the nodes themselves):

* a prunable layer reads a value and writes a new partition: its block is ``reader @ incidence``
  (an edge out of a pooled unit copied to every unit of the window, parallel edges merged with
  their weights summed);
* pooling composes the reader; flatten/view/reshape keep the element order; BatchNorm,
  activations, dropout, biases and scalar factors pass the value through (no edges);
* an addition joins a layer's fresh output with another value: two fresh outputs (a conv and a
  projection shortcut) become one partition; a fresh output plus an earlier value (an identity
  shortcut) gets identity edges from that value (with ``skips="identity"``).

Anything else on the path from the input to the output is refused with a
:class:`~fullspectrum.errors.TopologyError` naming the operation.

>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
>>> graph = unrolled_graph(net, {"0.weight": torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.bool)}, (3,))
>>> graph.nodes, graph.edges, [p.name for p in graph.partitions]
(6, 5, ['input', '0', '2'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.fx
from torch import nn

from fullspectrum.errors import MaskError, TopologyError
from fullspectrum.layers.names import layer_name, weight_key
from fullspectrum.topology.graph import ConvGeometry, IdentityBlock, LayerBlock, Partition, UnrolledGraph
from fullspectrum.topology.ops import Op, classify, describe
from fullspectrum.topology.patterns import (
    adaptive_pool_incidence,
    conv_edge_count,
    conv_incidence,
    dense_conv_edges,
    linear_incidence,
    pool_incidence,
)

SKIP_MODES = ("identity", "none")
"""``identity``: identity shortcuts are edges of weight 1 (the faithful graph); ``none``: left out (MGE24's)."""
_BATCH = 2  # a batch of two tells a reshape that keeps the batch dimension from one that does not


@dataclass
class _Value:
    """A traced tensor: the nodes of one partition seen through a reader."""

    partition: int
    reader: sp.csr_matrix | None
    """``(partition nodes, elements)``; None: the elements are the partition's nodes."""
    shape: tuple[int, ...]
    """Per-example shape of the elements."""
    padded_input: bool = False
    """The untouched network input in compatibility mode (its reader drops the padding nodes)."""


@dataclass
class _Part:
    name: str
    shape: tuple[int, ...]
    fresh: bool
    """Written by a layer and not read yet: an addition may merge it with another fresh output."""
    padding: tuple[int, ...] = ()


def unrolled_graph(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None,
    input_shape,
    skips: str = "identity",
    mge24_compat: bool = False,
) -> UnrolledGraph:
    """MGE24's unrolled graph of ``model`` with ``masks`` (``{param_name: bool tensor}``, missing layers
    dense) for per-example ``input_shape`` (``(C, H, W)``, ``(C, L)`` or ``(features,)``).

    ``skips``: ``"identity"`` (default) or ``"none"`` (see :data:`SKIP_MODES`); ``mge24_compat``: the
    input partition holds the first conv's zero padding, as MGE24's code does. Edge weights are
    ``|w|`` of the model's current weights. Raises :class:`~fullspectrum.errors.TopologyError` for a
    model that cannot be traced or holds an operation the encoding does not know, and
    :class:`~fullspectrum.errors.MaskError` for a mask that fits no traced layer.
    """
    return trace_graph(model, masks, input_shape, skips, mge24_compat, edges="all")


EDGE_MODES = ("all", "readers", "none")


def trace_graph(model, masks, input_shape, skips: str, mge24_compat: bool, *, edges: str) -> UnrolledGraph:
    """:func:`unrolled_graph` building the matrices of ``edges``: ``"all"`` blocks; ``"readers"``: only
    of layers that read through pooling (the others' edges are counted, not built: the structure
    :func:`~fullspectrum.topology.paths.model_effective_paths` sweeps); ``"none"``: no layer matrix at
    all (a template that :class:`~fullspectrum.topology.recording.PathsRecorder` fills per mask)."""
    if edges not in EDGE_MODES:
        raise ValueError(f"edges={edges!r}: choose from {', '.join(EDGE_MODES)}")
    if skips not in SKIP_MODES:
        raise TopologyError(f"skips={skips!r}: choose from {', '.join(SKIP_MODES)}")
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TopologyError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise TopologyError(f"input_shape must be non-empty and positive, got {shape}")
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception as error:  # fx raises many kinds (TraceError, TypeError...) for untraceable code
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TopologyError(f"model {type(model).__name__}: cannot be traced by torch.fx ({first})") from None
    masks = {weight_key(name): mask for name, mask in (masks or {}).items()}
    tracer = _Tracer(traced, masks, shape, skips, mge24_compat, type(model).__name__)
    tracer.edges = edges
    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(1)  # a batch of two zeros: threads only fight over the cores (measured 10x slower)
    try:
        with torch.no_grad():
            tracer.run(torch.zeros((_BATCH, *shape)))
    except RuntimeError as error:  # the model cannot run on this input shape
        first = str(error).strip().splitlines()[0]
        raise TopologyError(
            f"model {type(model).__name__}: does not run on input shape {shape} ({first})"
        ) from None
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
    unused = sorted(set(masks) - tracer.used_masks)
    if unused:
        raise MaskError(f"mask {unused[0]!r} matches no Conv/Linear layer on the traced path of the model")
    return tracer.finish()


class _Tracer(torch.fx.Interpreter):
    """Runs the traced model for real (shapes) while following every value abstractly (partitions)."""

    def __init__(self, traced, masks, shape, skips, compat, model_name):
        super().__init__(traced)
        self.extra_traceback = False  # our errors are one line; fx would append the node's listing
        self.edges = "all"
        self.modules = dict(traced.named_modules())
        self.masks = masks
        self.input_shape = shape
        self.skips = skips
        self.model_name = model_name
        self.used_masks: set[str] = set()
        self.abstract: dict[torch.fx.Node, _Value | None] = {}
        self.parts: list[_Part] = []
        self.parent: list[int] = []
        self.layer_blocks: list[dict] = []
        self.identity_blocks: list[tuple[int, int, sp.csr_matrix]] = []
        self.output_part: int | None = None
        self.compat = bool(compat)
        self.compat_padding = _first_conv_padding(traced, self.modules) if compat else ()

    # ----- partitions (a union-find: a conv and its projection shortcut write one partition)
    def find(self, index: int) -> int:
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def new_part(self, name: str, shape: tuple[int, ...], *, fresh: bool, padding=()) -> int:
        self.parts.append(_Part(name, shape, fresh, tuple(padding)))
        self.parent.append(len(self.parent))
        return len(self.parts) - 1

    def read(self, value: _Value) -> int:
        root = self.find(value.partition)
        self.parts[root].fresh = False
        return root

    # ----- the interpreter
    def run_node(self, n):
        result = super().run_node(n)
        if n.op == "placeholder":
            self.abstract[n] = self._input(n, result)
        elif n.op == "get_attr":
            self.abstract[n] = None
        elif n.op == "output":
            self._output(n)
        else:
            self.abstract[n] = self._step(n, result)
        return result

    def _refuse(self, n, reason: str) -> TopologyError:
        what = describe(n, self.modules)
        return TopologyError(f"model {self.model_name}: cannot encode {what} (fx node {n.name!r}): {reason}")

    def _input(self, n, result) -> _Value:
        if self.parts:
            raise self._refuse(n, "a model with more than one input")
        real = self.input_shape
        if self.compat_padding and any(self.compat_padding):
            pad = self.compat_padding
            padded = (real[0], *(s + 2 * p for s, p in zip(real[1:], pad)))
            index = self.new_part("input", padded, fresh=False, padding=pad)
            embed = np.zeros(padded, bool)
            embed[(slice(None), *(slice(p, p + s) for p, s in zip(pad, real[1:])))] = True
            nodes = np.flatnonzero(embed.ravel())
            reader = sp.csr_matrix(
                (np.ones(len(nodes)), (nodes, np.arange(len(nodes)))), shape=(math.prod(padded), len(nodes))
            )
            return _Value(index, reader, real, padded_input=True)
        return _Value(self.new_part("input", real, fresh=False), None, real)

    def _output(self, n) -> None:
        returned = n.args[0]
        if not isinstance(returned, torch.fx.Node) or self.abstract.get(returned) is None:
            raise self._refuse(n, "the model must return one tensor computed from its input")
        self.output_part = self.read(self.abstract[returned])

    def _step(self, n, result) -> _Value | None:
        inputs = [a for a in n.all_input_nodes if self.abstract.get(a) is not None]
        if not inputs:
            return None  # constants, buffers, sizes: nothing of the input flows here
        op = classify(n, self.modules)
        if op.kind == "unsupported":
            raise self._refuse(n, op.reason)
        if op.kind == "non_tensor" or not isinstance(result, torch.Tensor):
            if isinstance(result, torch.Tensor) or (
                isinstance(result, (tuple, list)) and any(isinstance(r, torch.Tensor) for r in result)
            ):
                raise self._refuse(n, "indexing or splitting a feature map is not encoded")
            return None
        if result.shape[0] != _BATCH:
            raise self._refuse(n, f"its result {tuple(result.shape)} does not keep the batch dimension first")
        shape = tuple(result.shape[1:])
        if op.kind == "add":
            return self._add(n, [self.abstract[a] for a in inputs], shape)
        if len(inputs) != 1:
            raise self._refuse(n, "it combines two traced tensors")
        value = self.abstract[inputs[0]]
        if n.args and n.args[0] is not inputs[0] and op.kind in ("conv", "linear", "pool", "adaptive_pool"):
            raise self._refuse(n, "its traced tensor is not its first argument")
        if op.kind == "passthrough":
            if shape != value.shape:
                raise self._refuse(n, f"it changes the shape {value.shape} -> {shape}")
            return value
        if op.kind == "reshape":
            if math.prod(shape) != math.prod(value.shape):
                raise self._refuse(n, "it changes the number of elements")
            return _Value(value.partition, value.reader, shape, value.padded_input and shape == value.shape)
        if op.kind in ("pool", "adaptive_pool", "mean"):
            return self._pool(n, op, value, shape)
        return self._layer(n, op, value, shape)

    def _pool(self, n, op: Op, value: _Value, shape) -> _Value:
        channels, in_size = value.shape[0], value.shape[1:]
        if op.kind == "mean":
            spatial = set(range(2, len(value.shape) + 1))
            if {d % (len(value.shape) + 1) for d in op.dims} != spatial or not spatial:
                raise self._refuse(n, "only a mean over every spatial dimension (global pooling) is encoded")
            pooling = adaptive_pool_incidence(channels, in_size, (1,) * len(in_size))
        elif len(shape) != len(value.shape) or shape[0] != channels:
            raise self._refuse(n, f"pooling a {value.shape} map into {shape}")
        elif op.kind == "adaptive_pool":
            pooling = adaptive_pool_incidence(channels, in_size, shape[1:])
        else:
            pooling = pool_incidence(
                channels, in_size, shape[1:], kernel=op.kernel, stride=op.stride, padding=op.padding,
                dilation=op.dilation,
            )  # fmt: skip
        reader = pooling if value.reader is None else (value.reader @ pooling).tocsr()
        return _Value(value.partition, reader, shape)

    def _layer(self, n, op: Op, value: _Value, shape) -> _Value:
        module = op.module
        param = weight_key(f"{n.target}.weight")
        name = layer_name(param)
        weight = module.weight.detach().cpu()
        mask = self.masks.get(param)
        if mask is None and isinstance(getattr(module, "weight_mask", None), torch.Tensor):
            mask = module.weight_mask  # a torch.nn.utils.prune-pruned module carries its own mask
        if mask is None:
            mask = torch.ones(weight.shape, dtype=torch.bool)
        else:
            self.used_masks.add(param)
            if tuple(mask.shape) != tuple(weight.shape):
                raise MaskError(
                    f"mask {param!r}: shape {tuple(mask.shape)} does not match the weight's {tuple(weight.shape)}"
                )
        mask_np = mask.detach().cpu().numpy().astype(bool)
        weight_np = weight.numpy()
        reader = value.reader
        if op.kind == "linear":
            if len(value.shape) != 1:
                raise self._refuse(
                    n, f"it reads a {value.shape} map per example; only flat features are encoded"
                )
            build = self.edges == "all" or (self.edges == "readers" and reader is not None)
            incidence = linear_incidence(mask_np, weight_np) if build else None
            count = int(mask_np.sum())
            geometry = None
            dense = mask_np.shape[0] * (
                value.shape[0] if reader is None else int(np.count_nonzero(np.diff(reader.indptr)))
            )
        else:
            if len(value.shape) != len(op.kernel) + 1 or value.shape[0] != mask_np.shape[1]:
                raise self._refuse(n, f"it reads a {value.shape} map")
            in_size, padding = value.shape[1:], op.padding
            if value.padded_input and tuple(op.padding) == self.compat_padding:
                # MGE24's first layer reads the padded input: its padding taps are edges from padding nodes
                in_size = self.parts[self.find(value.partition)].shape[1:]
                padding, reader = (0,) * len(padding), None
            geometry = ConvGeometry(tuple(in_size), tuple(shape[1:]), op.stride, tuple(padding), op.dilation)
            common = {"stride": op.stride, "padding": geometry.padding, "dilation": op.dilation}
            incidence = None
            if self.edges == "all" or (self.edges == "readers" and reader is not None):
                incidence = conv_incidence(mask_np, weight_np, geometry.in_size, geometry.out_size, **common)
                count = -1
            else:
                count = conv_edge_count(mask_np, geometry.in_size, geometry.out_size, **common)
            dense = _dense_conv(mask_np.shape, geometry, reader)
        matrix = incidence if reader is None or incidence is None else (reader @ incidence).tocsr()
        del incidence
        source = self.read(value)
        target = self.new_part(name, shape, fresh=True)
        self.layer_blocks.append(
            {"layer": name, "kind": type(module).__name__ if op.kind == "conv" else "Linear", "source": source,
             "target": target, "matrix": matrix, "mask": mask_np, "dense": dense, "reader": reader,
             "geometry": geometry, "count": count}
        )  # fmt: skip
        return _Value(target, None, shape)

    def _add(self, n, values: list[_Value], shape) -> _Value:
        if len(values) == 1 or all(
            self.find(v.partition) == self.find(values[0].partition) and v.reader is None for v in values
        ):
            if values[0].shape != shape:
                raise self._refuse(n, "it broadcasts a feature map")
            return values[0]  # a value plus a constant (a bias), or a value added to itself
        if len(values) != 2 or any(v.shape != shape for v in values):
            raise self._refuse(n, "only the sum of two feature maps of one shape is encoded")
        fresh = [v for v in values if v.reader is None and self.parts[self.find(v.partition)].fresh]
        if not fresh:
            raise self._refuse(n, "neither operand is the fresh output of a prunable layer")
        target = self.find(fresh[0].partition)
        other = values[1] if fresh[0] is values[0] else values[0]
        if other in fresh:  # a conv and a projection shortcut: one partition
            merged = self.find(other.partition)
            self.parent[merged] = target
            self.parts[target].name = f"{self.parts[target].name}+{self.parts[merged].name}"
        else:  # an identity shortcut
            source = self.read(other)
            size = math.prod(shape)
            matrix = other.reader if other.reader is not None else sp.identity(size, format="csr")
            if self.skips == "identity":
                ones = sp.csr_matrix((np.ones(matrix.nnz), matrix.indices, matrix.indptr), shape=matrix.shape)
                self.identity_blocks.append((source, target, ones))
        return _Value(target, None, shape)

    # ----- the result
    def finish(self) -> UnrolledGraph:
        roots = sorted({self.find(i) for i in range(len(self.parts))})
        edges = [(self.find(b["source"]), self.find(b["target"])) for b in self.layer_blocks]
        edges += [(self.find(s), self.find(t)) for s, t, _ in self.identity_blocks]
        order = _topological(roots, edges)
        index = {root: i for i, root in enumerate(order)}
        partitions, offset = [], 0
        for root in order:
            part = self.parts[root]
            partitions.append(Partition(part.name, part.shape, offset, part.padding))
            offset += math.prod(part.shape)
        layers = tuple(
            LayerBlock(
                layer=b["layer"],
                kind=b["kind"],
                source=index[self.find(b["source"])],
                target=index[self.find(b["target"])],
                matrix=b["matrix"],
                mask=b["mask"],
                dense_edges=b["dense"],
                reader=b["reader"],
                geometry=b["geometry"],
                edge_count=b["count"],
            )  # fmt: skip
            for b in self.layer_blocks
        )
        identity = tuple(
            IdentityBlock(index[self.find(s)], index[self.find(t)], m) for s, t, m in self.identity_blocks
        )
        return UnrolledGraph(
            partitions=tuple(partitions), layers=layers, identity=identity, output=index[self.output_part],
            input_shape=self.input_shape, skips=self.skips, mge24_compat=self.compat,
        )  # fmt: skip


def _topological(roots: list[int], edges: list[tuple[int, int]]) -> list[int]:
    """Partitions ordered so that every block goes forward (Kahn; ties by creation order, input first)."""
    incoming = {r: 0 for r in roots}
    out: dict[int, list[int]] = {r: [] for r in roots}
    for s, t in edges:
        out[s].append(t)
        incoming[t] += 1
    ready = sorted(r for r in roots if incoming[r] == 0)
    order = []
    while ready:
        r = ready.pop(0)
        order.append(r)
        for t in out[r]:
            incoming[t] -= 1
            if incoming[t] == 0:
                ready.append(t)
                ready.sort()
    return order


def _first_conv_padding(traced, modules) -> tuple[int, ...]:
    """Zero padding of the first prunable layer in execution order, if it is a conv (MGE24's input padding)."""
    for node in traced.graph.nodes:
        if node.op == "call_module":
            op = classify(node, modules)
            if op.kind == "conv":
                return tuple(op.padding)
            if op.kind == "linear":
                return ()
    return ()


def _dense_conv(shape, geometry: ConvGeometry, reader: sp.csr_matrix | None) -> int:
    """Unrolled edges of the dense layer: analytic without a reader, else through one channel's windows."""
    out_ch, in_ch = shape[:2]
    kernel = shape[2:]
    common = {"stride": geometry.stride, "padding": geometry.padding, "dilation": geometry.dilation}
    if reader is None:
        return dense_conv_edges(in_ch, out_ch, kernel, geometry.in_size, geometry.out_size, **common)
    spatial = conv_incidence(
        np.ones((1, 1, *kernel), bool), None, geometry.in_size, geometry.out_size, **common
    )
    n_el = math.prod(geometry.in_size)
    n_nodes = reader.shape[0] // in_ch
    channel = reader[:n_nodes, :n_el]
    if (
        reader.shape[0] % in_ch == 0 and channel.nnz * in_ch == reader.nnz
    ):  # the same windows in every channel
        return in_ch * out_ch * int((channel @ spatial).nnz)
    full = conv_incidence(
        np.ones((1, in_ch, *kernel), bool), None, geometry.in_size, geometry.out_size, **common
    )
    return out_ch * int((reader @ full).nnz)
