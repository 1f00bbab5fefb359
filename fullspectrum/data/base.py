"""In-memory datasets, their train/validation/test splits and the split rule.

Every dataset of the project fits in memory, so a split is one tensor of
examples plus one of labels (``ArrayDataset``), optionally normalised on access
(CIFAR stays ``uint8`` until an example is read). ``DatasetSplits`` bundles the
three splits with what a model and a trainer need to know: the class count,
the per-example input shape and the training augmentation.

Splits are a function of ``split_seed`` alone, drawn from their own NumPy
generator, never the global ones: a run seed varies the training, not the
data. The validation set is carved from the training part, stratified by
class; the test set is the dataset's own (or, for digits, a fixed stratified
carve that no seed moves).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fullspectrum.data.loaders import BatchAugment, make_loader
from fullspectrum.errors import FullSpectrumError

ExampleTransform = Callable[[torch.Tensor], torch.Tensor]
"""Maps stored examples (any leading batch dims) to model inputs, e.g. uint8 -> normalised float."""


Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


class ArrayDataset(Dataset):
    """Examples ``x[i]`` (passed through ``transform``) and integer labels ``y[i]``.

    ``indices`` records where each example came from (its position in the pool
    the split was carved from), so splits can be checked and reproduced.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        transform: ExampleTransform | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        if len(x) != len(y):
            raise FullSpectrumError(f"dataset has {len(x)} examples but {len(y)} labels")
        self.x = x
        self.targets = y.long()
        self.transform = transform
        self.indices = np.arange(len(x)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[index]
        return (self.transform(x) if self.transform is not None else x), self.targets[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Batched fetch (used by ``DataLoader``): one gather and one transform per batch."""
        index = torch.as_tensor(indices, dtype=torch.long)
        x, y = self.x[index], self.targets[index]
        if self.transform is not None:
            x = self.transform(x)
        return list(zip(x.unbind(0), y.unbind(0)))

    def tensors(self, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``limit`` (default all) examples as model-ready ``(x, y)`` tensors."""
        x, y = self.x[:limit], self.targets[:limit]
        return (self.transform(x) if self.transform is not None else x), y


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset's train/validation/test splits and what a model and trainer need to know."""

    name: str
    """Registry name, e.g. ``"cifar10"``."""
    train: ArrayDataset
    """Training examples (without augmentation; ``make_loader(..., augment=augment)`` adds it)."""
    val: ArrayDataset
    """Validation examples carved from the training part by ``split_seed`` (may be empty)."""
    test: ArrayDataset
    """The held-out test set, fixed for the dataset (no seed moves it)."""
    num_classes: int
    """Number of classes; labels are ``0 .. num_classes - 1``."""
    input_shape: tuple[int, ...]
    """Per-example model input shape, e.g. ``(3, 32, 32)``, ``(1, 40)`` or ``(64,)`` when flattened."""
    augment: BatchAugment | None = None
    """Training-time augmentation for the train split only (``None``: none)."""
    train_transform: str = "none"
    """Human-readable description of ``augment``, for configs and the app."""
    split_seed: int = 0
    """Seed of the train/validation split."""
    source: str = ""
    """Where the data came from (bundled, generated + cache file, or the user's folder)."""
    settings: dict = field(default_factory=dict)
    """Every option that shaped the data (fractions, sizes, normalisation), for run configs."""

    def split(self, split: Split) -> ArrayDataset:
        if split not in SPLITS:
            raise FullSpectrumError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return getattr(self, split)

    def loader(
        self,
        split: Split,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool | None = None,
        num_workers: int = 0,
        drop_last: bool = False,
    ) -> DataLoader:
        """A loader for ``split``: the train split is shuffled and augmented, the others are not."""
        is_train = split == "train"
        return make_loader(
            self.split(split),
            batch_size,
            shuffle=is_train if shuffle is None else shuffle,
            seed=seed,
            augment=self.augment if is_train else None,
            num_workers=num_workers,
            drop_last=drop_last,
        )


def check_fraction(value: float, what: str) -> float:
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise FullSpectrumError(f"{what} must be in [0, 1), got {value!r}")
    return float(value)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(labels)-1`` into ``(kept, held)``, holding ``round(fraction·n_c)`` per class.

    Depends only on ``labels``, ``fraction`` and ``seed`` (a private NumPy
    generator); both index arrays come back sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = int(round(fraction * len(members)))
        held.append(rng.permutation(members)[:count])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    kept_mask = np.ones(len(labels), dtype=bool)
    kept_mask[held_idx] = False
    return np.flatnonzero(kept_mask), held_idx


def build_splits(
    name: str,
    pool: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    num_classes: int,
    split_seed: int,
    val_fraction: float,
    flatten: bool,
    transform: ExampleTransform | None = None,
    augment: BatchAugment | None = None,
    train_transform: str = "none",
    source: str = "",
    settings: dict | None = None,
) -> DatasetSplits:
    """Carve validation from ``pool`` (the training part) and wrap everything as ``DatasetSplits``.

    ``pool`` and ``test`` hold examples in their natural shape ``(N, C, ...)``;
    ``flatten`` reshapes them to ``(N, C·...)`` (``transform`` and ``augment``
    must then accept flat examples).
    """
    val_fraction = check_fraction(val_fraction, f"dataset {name!r}: val_fraction")
    x_pool, y_pool = pool
    x_test, y_test = test
    input_shape = tuple(int(s) for s in x_pool.shape[1:])
    if flatten:
        input_shape = (math.prod(input_shape),)
        x_pool, x_test = x_pool.reshape(len(x_pool), -1), x_test.reshape(len(x_test), -1)
    train_idx, val_idx = stratified_split(y_pool.numpy(), val_fraction, split_seed)
    train_t, val_t = torch.from_numpy(train_idx), torch.from_numpy(val_idx)

    def make(x: torch.Tensor, y: torch.Tensor, idx: np.ndarray | None) -> ArrayDataset:
        return ArrayDataset(x, y, transform=transform, indices=idx)

    return DatasetSplits(
        name=name,
        train=make(x_pool[train_t], y_pool[train_t], train_idx),
        val=make(x_pool[val_t], y_pool[val_t], val_idx),
        test=make(x_test, y_test, None),
        num_classes=num_classes,
        input_shape=input_shape,
        augment=augment,
        train_transform=train_transform if augment is not None else "none",
        split_seed=split_seed,
        source=source,
        settings={"val_fraction": val_fraction, "flatten": flatten, **(settings or {})},
    )
