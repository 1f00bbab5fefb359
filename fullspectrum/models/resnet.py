"""CIFAR-style residual networks (He et al., CVPR 2016): ResNet-20, -18, -34.

The CIFAR variants used by FS23, ITOP21 and most pruning-at-initialisation
papers: a 3×3 stride-1 stem with no max-pool, stages of ``BasicBlock``\\ s whose
first block downsamples with stride 2 (except the first stage), a 1×1
convolution + BatchNorm shortcut whenever the shape changes (He et al.'s
"option B", also for ResNet-20, whose paper used zero-padding shortcuts), global
average pooling and a linear classifier ``fc``.

* ResNet-20: 16/32/64 channels, 3 blocks per stage.
* ResNet-18: 64/128/256/512 channels, (2, 2, 2, 2) blocks.
* ResNet-34: 64/128/256/512 channels, (3, 4, 6, 3) blocks.

Small inputs: a downsampling block whose input is already 1 wide keeps stride 1
(an 8×8 digit goes 8 -> 4 -> 2 -> 1 through ResNet-18's three strided stages),
and the adaptive average pool makes the classifier independent of the input
size. ``(C, L)`` sequences (MNIST-1D) use ``Conv1d``/``BatchNorm1d``.
Layer names follow ``layer1.0.conv1``, ``layer2.0.shortcut.0``, ``fc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fullspectrum.models._layers import (
    Spatial,
    batch_norm,
    can_downsample,
    check_input_shape,
    conv,
    conv_out,
    global_avg_pool,
    init_weights,
    split_shape,
)


class BasicBlock(nn.Module):
    """``conv3x3 -> BN -> ReLU -> conv3x3 -> BN``, plus the shortcut, then ReLU."""

    def __init__(self, dim: int, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv(dim, in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = batch_norm(dim, out_ch)
        self.conv2 = conv(dim, out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = batch_norm(dim, out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                conv(dim, in_ch, out_ch, 1, stride=stride, bias=False), batch_norm(dim, out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR ResNet of ``BasicBlock``\\ s: ``stage_channels[i]`` channels, ``blocks[i]`` blocks."""

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        *,
        stage_channels: Sequence[int],
        blocks: Sequence[int],
        name: str = "resnet",
    ) -> None:
        super().__init__()
        self.input_shape = check_input_shape(input_shape, model=name, conv=True)
        self.num_classes = num_classes
        in_ch, spatial = split_shape(self.input_shape)
        dim = len(spatial)
        width = stage_channels[0]
        self.conv1 = conv(dim, in_ch, width, 3, padding=1, bias=False)
        self.bn1 = batch_norm(dim, width)
        channels = width
        self.stage_names: list[str] = []
        for index, (out_ch, count) in enumerate(zip(stage_channels, blocks)):
            stage, channels, spatial = self._make_stage(dim, channels, out_ch, count, index > 0, spatial)
            name_i = f"layer{index + 1}"
            self.add_module(name_i, stage)
            self.stage_names.append(name_i)
        self.pool = global_avg_pool(dim)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    @staticmethod
    def _make_stage(
        dim: int, in_ch: int, out_ch: int, count: int, downsample: bool, spatial: Spatial
    ) -> tuple[nn.Sequential, int, Spatial]:
        stride = 2 if downsample and can_downsample(spatial) else 1
        layers = []
        for i in range(count):
            layers.append(BasicBlock(dim, in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1))
        spatial = conv_out(spatial, 3, stride=stride, padding=1)
        return nn.Sequential(*layers), out_ch, spatial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        for name in self.stage_names:
            out = getattr(self, name)(out)
        return self.fc(torch.flatten(self.pool(out), 1))


def resnet20(num_classes: int, input_shape: tuple[int, ...]) -> ResNet:
    """ResNet-20 (CIFAR, 16/32/64 channels, 3 blocks per stage, 1×1 conv shortcuts)."""
    return ResNet(num_classes, input_shape, stage_channels=(16, 32, 64), blocks=(3, 3, 3), name="resnet20")


def resnet18(num_classes: int, input_shape: tuple[int, ...]) -> ResNet:
    """ResNet-18, CIFAR variant (3×3 stem, no max-pool)."""
    return ResNet(
        num_classes, input_shape, stage_channels=(64, 128, 256, 512), blocks=(2, 2, 2, 2), name="resnet18"
    )


def resnet34(num_classes: int, input_shape: tuple[int, ...]) -> ResNet:
    """ResNet-34, CIFAR variant (3×3 stem, no max-pool)."""
    return ResNet(
        num_classes, input_shape, stage_channels=(64, 128, 256, 512), blocks=(3, 4, 6, 3), name="resnet34"
    )
