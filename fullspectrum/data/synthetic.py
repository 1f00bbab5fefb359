"""Class-conditional Gaussian data of any shape, for tests and benchmarks.

Each class ``c`` has a mean image ``mu_c`` whose entries are drawn from
``N(0, separation²)``; an example of class ``c`` is ``mu_c + N(0, I)``. The
classes are balanced and everything, means, labels and noise, comes from one
``torch.Generator`` seeded with ``data_seed``, so the data are the same on every
machine and independent of the run seed. With the default separation of 0.5 a
nearest-mean classifier is nearly perfect in thousands of dimensions yet a
small network still has something to learn on 64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fullspectrum.data.base import DatasetSplits, build_splits
from fullspectrum.errors import FullSpectrumError


def gaussian_classes(
    shape: tuple[int, ...], num_classes: int, n_train: int, n_test: int, separation: float, data_seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((x_train, y_train), (x_test, y_test))``, deterministic for ``data_seed``."""
    generator = torch.Generator().manual_seed(int(data_seed))
    means = separation * torch.randn(num_classes, math.prod(shape), generator=generator)  # (classes, D)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(count) % num_classes
        labels = labels[torch.randperm(count, generator=generator)]
        noise = torch.randn(count, math.prod(shape), generator=generator)
        return (means[labels] + noise).reshape(count, *shape), labels

    train = draw(n_train)
    return train, draw(n_test)


def load_synthetic_splits(
    *,
    split_seed: int = 0,
    flatten: bool = False,
    val_fraction: float = 0.1,
    shape: Sequence[int] = (3, 32, 32),
    num_classes: int = 10,
    n_train: int = 1024,
    n_test: int = 256,
    separation: float = 0.5,
    data_seed: int = 0,
) -> DatasetSplits:
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise FullSpectrumError(
            f"dataset 'synthetic': shape must be a tuple of ints, got {shape!r}"
        ) from None
    if not shape or min(shape) < 1:
        raise FullSpectrumError(f"dataset 'synthetic': shape must be non-empty and positive, got {shape}")
    for key, value, low in (
        ("num_classes", num_classes, 2),
        ("n_train", n_train, num_classes),
        ("n_test", n_test, 1),
    ):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise FullSpectrumError(f"dataset 'synthetic': {key} must be an int >= {low}, got {value!r}")
    train, test = gaussian_classes(
        shape, int(num_classes), int(n_train), int(n_test), float(separation), data_seed
    )
    return build_splits(
        "synthetic",
        train,
        test,
        num_classes=int(num_classes),
        split_seed=split_seed,
        val_fraction=val_fraction,
        flatten=flatten,
        source=f"class-conditional Gaussians (data_seed {data_seed})",
        settings={
            "shape": shape,
            "n_train": int(n_train),
            "n_test": int(n_test),
            "separation": float(separation),
            "data_seed": int(data_seed),
        },
    )
