"""The model registry: ``build_model(name, num_classes, input_shape, **options)``.

A typed mapping from name to builder, in the style of RigL's mask factory:
unknown names fail with the list of valid ones, unknown options with the
options the builder takes. Every builder accepts any dataset shape of the
project: ``(1, 8, 8)`` digits, ``(1, 40)`` MNIST-1D, ``(3, 32, 32)`` CIFAR; the
MLP also takes flat vectors (``flatten=True`` datasets), the CNNs do not.

Initialisation draws from torch's global generator (Kaiming-normal convs, unit
BatchNorm, PyTorch's default Linear), so ``torch.manual_seed(s)`` before
``build_model`` reproduces the same weights.

>>> import torch
>>> model = build_model("resnet20", 10, (1, 8, 8))
>>> model(torch.zeros(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType

from torch import nn

from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.models.conv6 import conv6
from fullspectrum.models.lenet import lenet5
from fullspectrum.models.mlp import mlp
from fullspectrum.models.resnet import resnet18, resnet20, resnet34
from fullspectrum.models.vgg import vgg16

ModelBuilder = Callable[..., nn.Module]
"""``builder(num_classes, input_shape, **options) -> nn.Module``."""

MODELS: Mapping[str, ModelBuilder] = MappingProxyType(
    {
        "mlp": mlp,
        "lenet5": lenet5,
        "conv6": conv6,
        "resnet20": resnet20,
        "resnet18": resnet18,
        "resnet34": resnet34,
        "vgg16": vgg16,
    }
)

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
"""Every name ``build_model`` accepts."""

CONV_MODEL_NAMES: tuple[str, ...] = tuple(name for name in MODEL_NAMES if name != "mlp")
"""Models that need ``(C, L)`` / ``(C, H, W)`` input (not flat vectors)."""


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options a model takes, e.g. ``("widths",)`` for ``mlp``."""
    builder = _lookup(name)
    params = inspect.signature(builder).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def build_model(name: str, num_classes: int, input_shape: tuple[int, ...], **options) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes and per-example ``input_shape``.

    The returned module carries ``input_shape`` and ``num_classes`` attributes.
    Raises ``UnknownNameError`` for an unknown name and ``FullSpectrumError`` for
    an unknown option, a bad class count or an input shape the model cannot take.
    """
    builder = _lookup(name)
    allowed = model_options(name)
    for key in options:
        if key not in allowed:
            choices = ", ".join(allowed) if allowed else "none"
            raise FullSpectrumError(f"model {name!r} has no option {key!r}; options: {choices}")
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
        raise FullSpectrumError(f"model {name!r}: num_classes must be a positive int, got {num_classes!r}")
    return builder(int(num_classes), tuple(input_shape), **options)


def _lookup(name: str) -> ModelBuilder:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise unknown_name("model", name, MODEL_NAMES) from None
