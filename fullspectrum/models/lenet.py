"""LeNet-5 (LeCun et al., 1998), the classic pruning benchmark (LTH, SNIP).

``conv5(6) -> pool -> conv5(16) -> pool -> fc120 -> fc84 -> classifier`` with
ReLU. On 32×32 inputs it is the textbook net (16·5·5 = 400 features). Small
inputs are adapted instead of rejected:

* a 5-wide convolution is "valid" (no padding) when its input side is at least
  10 and "same" (padding 2) below that, so an 8×8 digit keeps 8×8 -> 4×4 -> 2×2;
* a pooling stage whose input is already 1 wide is skipped;
* the first fully connected layer takes whatever ``16 × spatial`` is left.

For a ``(C, L)`` sequence (MNIST-1D) the same net is built from ``Conv1d``.
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

_VALID_CONV_MIN_SIDE = 10
"""Below this side a valid 5×5 conv would shrink the map to almost nothing, so pad instead."""


class LeNet5(nn.Module):
    """LeNet-5 for any ``(C, *spatial)`` input; see the module docstring for small inputs."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = check_input_shape(input_shape, model="lenet5", conv=True)
        self.num_classes = num_classes
        channels, spatial = split_shape(self.input_shape)
        dim = len(spatial)
        layers: list[nn.Module] = []
        for out_ch in (6, 16):
            padding = 0 if min(spatial) >= _VALID_CONV_MIN_SIDE else 2
            layers += [conv(dim, channels, out_ch, 5, padding=padding), nn.ReLU(inplace=True)]
            spatial = conv_out(spatial, 5, padding=padding)
            channels = out_ch
            pool = can_downsample(spatial)
            # a skipped pool stays as Identity so layer names are the same for every input size
            layers.append(max_pool(dim, 2) if pool else nn.Identity())
            spatial = conv_out(spatial, 2, stride=2) if pool else spatial
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * numel(spatial), 120),  # 400 -> 120 on 32x32
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def lenet5(num_classes: int, input_shape: tuple[int, ...]) -> LeNet5:
    """LeNet-5 (ReLU, max-pooling), adapted to small inputs as the module docstring says."""
    return LeNet5(num_classes, input_shape)
