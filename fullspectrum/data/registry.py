"""The dataset registry: ``load_dataset(name, *, data_dir, split_seed, flatten, **options)``.

A typed mapping from name to loader; unknown names fail with the list of valid
ones and unknown options with the options the loader takes. Everything is
offline: ``digits`` ships with scikit-learn, ``mnist1d`` and ``synthetic`` are
generated locally, ``cifar10``/``cifar100`` are read from ``data_dir``.

>>> splits = load_dataset("digits")
>>> splits.input_shape, splits.num_classes, len(splits.test)
((1, 8, 8), 10, 359)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType

from fullspectrum.data.base import DatasetSplits
from fullspectrum.data.cifar import load_cifar_splits
from fullspectrum.data.digits import load_digits_splits
from fullspectrum.data.mnist_1d import load_mnist1d_splits
from fullspectrum.data.synthetic import load_synthetic_splits
from fullspectrum.errors import FullSpectrumError, unknown_name

DatasetLoader = Callable[..., DatasetSplits]
"""``loader(*, split_seed, flatten, [data_dir], **options) -> DatasetSplits``."""

DATASETS: Mapping[str, DatasetLoader] = MappingProxyType(
    {
        "digits": load_digits_splits,
        "mnist1d": load_mnist1d_splits,
        "cifar10": partial(load_cifar_splits, "cifar10"),
        "cifar100": partial(load_cifar_splits, "cifar100"),
        "synthetic": load_synthetic_splits,
    }
)

DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)
"""Every name ``load_dataset`` accepts."""

NEEDS_DATA_DIR: frozenset[str] = frozenset({"cifar10", "cifar100"})
"""Datasets read from the user's ``data_dir`` (the others ignore it)."""

_COMMON = ("split_seed", "flatten", "data_dir")


def dataset_options(name: str) -> tuple[str, ...]:
    """The dataset-specific options of ``name``, e.g. ``("val_fraction", "augment")`` for CIFAR."""
    params = inspect.signature(_lookup(name)).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _COMMON)


def load_dataset(
    name: str, *, data_dir: str | Path | None = None, split_seed: int = 0, flatten: bool = False, **options
) -> DatasetSplits:
    """Load dataset ``name`` as train/val/test splits (``DatasetSplits``).

    ``split_seed`` fixes the validation carve and nothing else; ``flatten``
    gives flat vectors (for the MLP); ``options`` are dataset-specific (see
    ``dataset_options``), e.g. ``val_fraction=0.1`` for every dataset,
    ``augment=False`` for CIFAR, ``shape=(1, 8, 8)`` for ``synthetic``.
    """
    loader = _lookup(name)
    allowed = dataset_options(name)
    for key in options:
        if key not in allowed:
            raise FullSpectrumError(f"dataset {name!r} has no option {key!r}; options: {', '.join(allowed)}")
    if isinstance(split_seed, bool) or int(split_seed) != split_seed:
        raise FullSpectrumError(f"split_seed must be an int, got {split_seed!r}")
    if name in NEEDS_DATA_DIR:
        options["data_dir"] = data_dir
    return loader(split_seed=int(split_seed), flatten=bool(flatten), **options)


def _lookup(name: str) -> DatasetLoader:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise unknown_name("dataset", name, DATASET_NAMES) from None
