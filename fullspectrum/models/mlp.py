"""Multi-layer perceptron: the smallest model of the zoo.

Flattens any input, then ``Linear -> ReLU`` per hidden width and a linear
classifier. Every layer is a dense bipartite graph, which makes the MLP the
clearest case of the rolled encoding (SPEC §1): a layer's left units are its
input neurons and its right units its output neurons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from fullspectrum.errors import FullSpectrumError
from fullspectrum.models._layers import check_input_shape

DEFAULT_WIDTHS: tuple[int, ...] = (256, 128)
"""Two hidden layers: wide enough to prune to 1% and still keep live units on every side."""


class MLP(nn.Module):
    """``Flatten -> [Linear -> ReLU] * len(widths) -> Linear(num_classes)``.

    >>> MLP(10, (64,), widths=(32,))(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self, num_classes: int, input_shape: tuple[int, ...], *, widths: Sequence[int] = DEFAULT_WIDTHS
    ) -> None:
        super().__init__()
        self.input_shape = check_input_shape(input_shape, model="mlp", conv=False)
        self.num_classes = num_classes
        widths = tuple(widths)
        if any(int(w) != w or w < 1 for w in widths):
            raise FullSpectrumError(f"model 'mlp': widths must be positive ints, got {widths}")
        self.widths = tuple(int(w) for w in widths)
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(self.input_shape)
        for width in self.widths:
            layers += [nn.Linear(fan_in, width), nn.ReLU(inplace=True)]
            fan_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(fan_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def mlp(num_classes: int, input_shape: tuple[int, ...], *, widths: Sequence[int] = DEFAULT_WIDTHS) -> MLP:
    """An MLP with hidden ``widths`` (default ``(256, 128)``); ``widths=()`` is logistic regression."""
    return MLP(num_classes, input_shape, widths=widths)
