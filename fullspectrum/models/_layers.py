"""Dimension-generic building blocks shared by the model zoo.

The same network definition serves 1-D sequences ``(C, L)`` (MNIST-1D), 2-D
images ``(C, H, W)`` (digits, CIFAR) and 3-D volumes ``(C, D, H, W)``: the
convolution, normalisation and pooling classes are picked from the number of
spatial dimensions, and the builders track the spatial size as they go so a
downsampling stage whose input is already 1 wide is skipped instead of failing
(an 8×8 digit runs through VGG-16's five pooling stages this way).
"""

from __future__ import annotations

import math

from torch import nn

from fullspectrum.errors import FullSpectrumError

Spatial = tuple[int, ...]
"""Spatial size of a feature map, e.g. ``(32, 32)`` or ``(40,)``."""

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_MAX_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_ADAPTIVE_AVG_POOL = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def check_input_shape(input_shape, *, model: str, conv: bool) -> tuple[int, ...]:
    """Validate a per-example input shape and return it as a tuple of ints.

    Convolutional models need ``(C, L)``, ``(C, H, W)`` or ``(C, D, H, W)``;
    ``conv=False`` (the MLP) takes any shape and flattens it.
    """
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise FullSpectrumError(
            f"model {model!r}: input_shape must be a tuple of ints, got {input_shape!r}"
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise FullSpectrumError(f"model {model!r}: input_shape must be non-empty and positive, got {shape}")
    if conv and not 2 <= len(shape) <= 4:
        raise FullSpectrumError(
            f"model {model!r} needs (channels, length) or (channels, height, width) input, got {shape}; "
            "load the dataset without flatten, or use the mlp"
        )
    return shape


def split_shape(input_shape: tuple[int, ...]) -> tuple[int, Spatial]:
    """``(C, *spatial)`` -> ``(C, spatial)``."""
    return input_shape[0], tuple(input_shape[1:])


def conv(
    dim: int,
    in_ch: int,
    out_ch: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    bias: bool = True,
) -> nn.Module:
    """``Conv{dim}d`` with a cubic kernel."""
    return _CONV[dim - 1](in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias)


def batch_norm(dim: int, channels: int) -> nn.Module:
    """``BatchNorm{dim}d``."""
    return _BATCH_NORM[dim - 1](channels)


def max_pool(dim: int, kernel_size: int = 2) -> nn.Module:
    """``MaxPool{dim}d`` with stride equal to the kernel."""
    return _MAX_POOL[dim - 1](kernel_size)


def global_avg_pool(dim: int) -> nn.Module:
    """Adaptive average pooling to a single position per channel."""
    return _ADAPTIVE_AVG_POOL[dim - 1](1)


def can_downsample(spatial: Spatial) -> bool:
    """A stride-2 stage needs every spatial side to be at least 2."""
    return min(spatial) >= 2


def conv_out(spatial: Spatial, kernel_size: int, stride: int = 1, padding: int = 0) -> Spatial:
    """Spatial size after a convolution or pooling (PyTorch's floor rule)."""
    out = tuple((s + 2 * padding - kernel_size) // stride + 1 for s in spatial)
    if min(out) < 1:
        raise FullSpectrumError(f"feature map {spatial} is too small for a kernel of {kernel_size}")
    return out


def numel(spatial: Spatial) -> int:
    return math.prod(spatial)


def init_weights(model: nn.Module) -> None:
    """Standard initialisation: Kaiming-normal (fan-out, ReLU) convs, unit/zero BatchNorm.

    Linear layers keep PyTorch's default. Draws from the global torch generator,
    so ``torch.manual_seed`` before ``build_model`` makes the model reproducible.
    """
    for module in model.modules():
        if isinstance(module, _CONV):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BATCH_NORM):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
