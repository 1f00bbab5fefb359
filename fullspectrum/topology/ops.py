"""Which traced operations the unrolled encoding knows, and how each maps feature maps (SPEC §7).

:func:`classify` reads one ``torch.fx`` node and says what it is for the graph: a prunable
layer (``conv``/``linear``), a pooling (its window geometry), a reshape that keeps PyTorch's
element order (flatten, view, squeeze...), an addition (a shortcut), an operation that adds no
edges (BatchNorm, activations, dropout, a bias or a scalar factor: ``passthrough``) or none of
these. The tracer refuses everything else, naming it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_PASSTHROUGH_MODULES = (
    _BatchNorm, nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.PReLU,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
)  # fmt: skip
_PASSTHROUGH_FUNCTIONS = {
    torch.relu, torch.relu_, torch.sigmoid, torch.tanh, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu,
    F.celu, F.gelu, F.silu, F.mish, F.hardtanh, F.hardswish, F.hardsigmoid, F.sigmoid, F.tanh, F.softplus,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.batch_norm,
    torch.clone, torch.Tensor.contiguous,
}  # fmt: skip
_PASSTHROUGH_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone", "float", "double",
    "half", "to", "detach", "type_as",
}  # fmt: skip
_SCALING_FUNCTIONS = {operator.mul, operator.truediv, operator.sub, operator.neg, torch.mul, torch.div}
_SCALING_METHODS = {"mul", "mul_", "div", "div_", "__mul__", "__truediv__", "neg"}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_", "__add__", "__iadd__", "__radd__"}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
_RESHAPE_METHODS = {"flatten", "view", "reshape", "squeeze", "unsqueeze"}
_NON_TENSOR_METHODS = {"size", "dim", "numel"}
_MAX_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_POOL_ARGS = (
    "input",
    "kernel_size",
    "stride",
    "padding",
    "ceil_mode",
    "count_include_pad",
    "divisor_override",
)
_MAX_POOLS = {F.max_pool1d: 1, F.max_pool2d: 2, F.max_pool3d: 3}
_AVG_POOLS = {F.avg_pool1d: 1, F.avg_pool2d: 2, F.avg_pool3d: 3}
_ADAPTIVE_POOLS = {
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
}  # fmt: skip
_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE_MODULES = (
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Op:
    """What one traced node is for the unrolled graph."""

    kind: str
    """``conv``, ``linear``, ``pool``, ``adaptive_pool``, ``mean``, ``reshape``, ``add``,
    ``passthrough``, ``non_tensor`` or ``unsupported``."""
    module: nn.Module | None = None
    """The layer for ``conv``/``linear``."""
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    dims: tuple[int, ...] = ()
    """Reduced dimensions of a ``mean``."""
    reason: str = ""
    """Why an ``unsupported`` node cannot be encoded."""


def describe(node, modules: dict[str, nn.Module]) -> str:
    """A node as a user reads it: ``Conv2d module 'features.0'``, ``function cat``, ``method '.permute()'``."""
    if node.op == "call_module":
        return f"{type(modules[node.target]).__name__} module '{node.target}'"
    if node.op == "call_method":
        return f"method '.{node.target}()'"
    if node.op == "call_function":
        return f"function {getattr(node.target, '__name__', str(node.target))}"
    return f"{node.op} '{node.target}'"


def _tuple(value, dim: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * dim


def _bound(args, kwargs, names) -> dict:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _pool(kernel, stride, padding, dilation, dim: int) -> Op:
    kernel = _tuple(kernel, dim)
    stride = kernel if stride is None or stride == [] or stride == () else _tuple(stride, dim)
    return Op(
        "pool", kernel=kernel, stride=stride, padding=_tuple(padding, dim), dilation=_tuple(dilation, dim)
    )


def _conv(module: nn.Module) -> Op:
    dim = len(module.kernel_size)
    if module.groups != 1:
        return Op(
            "unsupported", reason=f"a grouped or depthwise conv (groups={module.groups}) is not a layer graph"
        )
    if module.padding_mode != "zeros":
        return Op("unsupported", reason=f"padding_mode={module.padding_mode!r}: only zero padding is encoded")
    padding = module.padding
    if padding == "valid":
        padding = (0,) * dim
    elif padding == "same":
        totals = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)]
        if any(t % 2 for t in totals):
            return Op("unsupported", reason="padding='same' with an even kernel pads one side more")
        padding = tuple(t // 2 for t in totals)
    return Op(
        "conv",
        module=module,
        kernel=tuple(module.kernel_size),
        stride=tuple(module.stride),
        padding=tuple(padding),
        dilation=tuple(module.dilation),
    )


def classify(node, modules: dict[str, nn.Module]) -> Op:
    """What ``node`` (a ``call_module``/``call_function``/``call_method`` node) is (see :class:`Op`)."""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, _CONVS):
            return _conv(module)
        if isinstance(module, nn.Linear):
            return Op("linear", module=module)
        if isinstance(module, _PASSTHROUGH_MODULES):
            return Op("passthrough")
        if isinstance(module, (nn.Flatten, nn.Unflatten)):
            return Op("reshape")
        if isinstance(module, _POOL_MODULES):
            if getattr(module, "return_indices", False):
                return Op("unsupported", reason="pooling that returns indices")
            dim = int(type(module).__name__[-2])
            return _pool(
                module.kernel_size, module.stride, module.padding, getattr(module, "dilation", 1), dim
            )
        if isinstance(module, _ADAPTIVE_MODULES):
            return Op("adaptive_pool")
        return Op("unsupported", reason="not an operation the unrolled encoding knows")
    target, args, kwargs = node.target, node.args, node.kwargs
    if node.op == "call_function":
        if target in _ADD_FUNCTIONS:
            return Op("add")
        if target in _PASSTHROUGH_FUNCTIONS:
            return Op("passthrough")
        if target in _SCALING_FUNCTIONS:
            return Op("passthrough")  # legal only with one traced operand: checked by the tracer
        if target in _RESHAPE_FUNCTIONS:
            return Op("reshape")
        if target in _MAX_POOLS:
            b = _bound(args, kwargs, _MAX_POOL_ARGS)
            if b.get("return_indices"):
                return Op("unsupported", reason="pooling that returns indices")
            return _pool(
                b["kernel_size"],
                b.get("stride"),
                b.get("padding", 0),
                b.get("dilation", 1),
                _MAX_POOLS[target],
            )
        if target in _AVG_POOLS:
            b = _bound(args, kwargs, _AVG_POOL_ARGS)
            return _pool(b["kernel_size"], b.get("stride"), b.get("padding", 0), 1, _AVG_POOLS[target])
        if target in _ADAPTIVE_POOLS:
            return Op("adaptive_pool")
        if target is torch.mean:
            return _mean(args[1] if len(args) > 1 else kwargs.get("dim"))
        if target in (operator.getitem, getattr):
            return Op("non_tensor")  # size tuples and attributes; an indexed tensor is refused by the tracer
        return Op("unsupported", reason="not an operation the unrolled encoding knows")
    if node.op == "call_method":
        if target in _ADD_METHODS:
            return Op("add")
        if target in _PASSTHROUGH_METHODS or target in _SCALING_METHODS:
            return Op("passthrough")
        if target in _RESHAPE_METHODS:
            return Op("reshape")
        if target in _NON_TENSOR_METHODS:
            return Op("non_tensor")
        if target == "mean":
            return _mean(args[1] if len(args) > 1 else kwargs.get("dim"))
        return Op("unsupported", reason="not an operation the unrolled encoding knows")
    return Op("unsupported", reason=f"fx node kind {node.op!r}")


def _mean(dims) -> Op:
    if dims is None:
        return Op("unsupported", reason="a mean over every dimension mixes the batch")
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return Op("mean", dims=dims)
