"""Conv-6 of the lottery-ticket paper (Frankle & Carbin, ICLR 2019).

Three stages of two 3×3 convolutions (64, 128, 256 channels, padding 1, ReLU)
each followed by 2×2 max-pooling, then ``fc256 -> fc256 -> classifier``. On
32×32 CIFAR the classifier sees 256·4·4 = 4096 features, as in the paper.
For small inputs a pooling stage whose input is already 1 wide is skipped (an
8×8 digit goes 8 -> 4 -> 2 -> 1); ``(C, L)`` sequences use ``Conv1d``.
"""

from __future__ import annotations

import torch
from torch import nn

from fullspectrum.models._layers import (
    can_downsample,
    check_input_shape,
    conv,
    conv_out,
    init_weights,
    max_pool,
    numel,
    split_shape,
)

STAGE_CHANNELS: tuple[int, ...] = (64, 128, 256)


class Conv6(nn.Module):
    """Conv-6 for any ``(C, *spatial)`` input."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = check_input_shape(input_shape, model="conv6", conv=True)
        self.num_classes = num_classes
        channels, spatial = split_shape(self.input_shape)
        dim = len(spatial)
        layers: list[nn.Module] = []
        for out_ch in STAGE_CHANNELS:
            for _ in range(2):
                layers += [conv(dim, channels, out_ch, 3, padding=1), nn.ReLU(inplace=True)]
                channels = out_ch
            pool = can_downsample(spatial)
            # a skipped pool stays as Identity so layer names are the same for every input size
            layers.append(max_pool(dim, 2) if pool else nn.Identity())
            spatial = conv_out(spatial, 2, stride=2) if pool else spatial
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * numel(spatial), 256),  # 4096 -> 256 on 32x32
            nn.ReLU(inplace=True),
            nn.Linear(256, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def conv6(num_classes: int, input_shape: tuple[int, ...]) -> Conv6:
    """Conv-6 (no BatchNorm, as in the lottery-ticket paper), adapted to small inputs."""
    return Conv6(num_classes, input_shape)
