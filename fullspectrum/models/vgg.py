"""VGG-16 with BatchNorm, CIFAR variant (Simonyan & Zisserman, 2015).

The configuration used by GraSP, SynFlow and ITOP21 on CIFAR: thirteen 3×3
convolutions (64, 64, M, 128, 128, M, 256×3, M, 512×3, M, 512×3, M; M = 2×2
max-pool), each followed by BatchNorm and ReLU, then global average pooling
and a single linear classifier ``classifier`` (512 -> classes), instead of
ImageNet VGG's three 4096-wide layers.

Small inputs: a max-pool whose input is already 1 wide is skipped (an 8×8 digit
uses the first three pools, MNIST-1D's length 40 all five: 40 -> 20 -> 10 -> 5
-> 2 -> 1); the adaptive average pool makes the classifier size-independent.
``(C, L)`` sequences use ``Conv1d``/``BatchNorm1d``.
"""

from __future__ import annotations

import torch
from torch import nn

from fullspectrum.models._layers import (
    batch_norm,
    can_downsample,
    check_input_shape,
    conv,
    conv_out,
    global_avg_pool,
    init_weights,
    max_pool,
    split_shape,
)

VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
"""Channels per 3×3 conv; ``"M"`` is a 2×2 max-pool."""


class VGG(nn.Module):
    """A VGG with BatchNorm built from ``config`` (channel counts and ``"M"`` pools)."""

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        *,
        config: tuple[int | str, ...] = VGG16_CONFIG,
        name: str = "vgg16",
    ) -> None:
        super().__init__()
        self.input_shape = check_input_shape(input_shape, model=name, conv=True)
        self.num_classes = num_classes
        channels, spatial = split_shape(self.input_shape)
        dim = len(spatial)
        layers: list[nn.Module] = []
        for item in config:
            if item == "M":
                pool = can_downsample(spatial)
                # a skipped pool stays as Identity so layer names are the same for every input size
                layers.append(max_pool(dim, 2) if pool else nn.Identity())
                spatial = conv_out(spatial, 2, stride=2) if pool else spatial
                continue
            layers += [
                conv(dim, channels, int(item), 3, padding=1, bias=False),
                batch_norm(dim, int(item)),
                nn.ReLU(inplace=True),
            ]
            channels = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = global_avg_pool(dim)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def vgg16(num_classes: int, input_shape: tuple[int, ...]) -> VGG:
    """VGG-16 with BatchNorm, CIFAR variant (one linear classifier after global pooling)."""
    return VGG(num_classes, input_shape)
