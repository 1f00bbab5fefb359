"""Reproducible ``DataLoader``\\ s: ``make_loader(dataset, batch_size, *, shuffle, seed, augment)``.

Shuffling draws from a ``torch.Generator`` seeded with ``seed`` (so does the
base seed of any worker processes); augmentation, when given, is applied to
whole batches in the main process with a second generator derived from the
same seed. The order and every random crop therefore depend on ``seed`` alone,
not on the global RNGs nor on the number of workers. Both generators are
attributes of the loader (``generator``, ``augment_generator``), so a trainer
can checkpoint and restore their states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from fullspectrum.errors import FullSpectrumError
from fullspectrum.seeds import LOADER_AUGMENT_STREAM, LOADER_ORDER_STREAM, derived_seed

BatchAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""``augment(batch, generator) -> batch``: random training augmentation driven only by ``generator``."""


class AugmentingLoader(DataLoader):
    """A ``DataLoader`` that applies ``augment(x, augment_generator)`` to every batch's inputs."""

    def __init__(
        self, dataset: Dataset, *, augment: BatchAugment, augment_generator: torch.Generator, **kwargs
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.augment = augment
        self.augment_generator = augment_generator

    def __iter__(self) -> Iterator:
        for x, y in super().__iter__():
            yield self.augment(x, self.augment_generator), y


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augment: BatchAugment | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` that is deterministic given ``seed``.

    ``augment`` (e.g. ``DatasetSplits.augment``) is for the training split only.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise FullSpectrumError(f"batch_size must be a positive int, got {batch_size!r}")
    generator = torch.Generator().manual_seed(derived_seed(seed, LOADER_ORDER_STREAM))
    kwargs = dict(
        batch_size=int(batch_size),
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
    if augment is None:
        return DataLoader(dataset, **kwargs)
    augment_generator = torch.Generator().manual_seed(derived_seed(seed, LOADER_AUGMENT_STREAM))
    return AugmentingLoader(dataset, augment=augment, augment_generator=augment_generator, **kwargs)
