"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) from the user's folder, python-pickle layout.

The benchmarks of FS23 and ITOP21. Nothing is downloaded: ``data_dir`` points
at the folder that holds ``cifar-10-batches-py/`` (``data_batch_1`` …
``data_batch_5``, ``test_batch``) or ``cifar-100-python/`` (``train``,
``test``), or at that folder itself. Files are read with the restricted
unpickler of ``fullspectrum.data.safe_pickle``, never plain ``pickle.load``.

Examples are kept as ``uint8`` ``(N, 3, 32, 32)`` and normalised on access with
the per-channel training-set mean and standard deviation below. The train
split gets the standard augmentation (random 32×32 crop with 4 pixels of
padding, horizontal flip; ``augment=False`` turns it off), applied by
``make_loader`` to whole batches. CIFAR-100 uses the 100 fine labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fullspectrum.data.base import DatasetSplits, build_splits
from fullspectrum.data.safe_pickle import load_restricted
from fullspectrum.data.transforms import ChannelNormalize, RandomCropFlip
from fullspectrum.errors import FullSpectrumError

IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR variant's files live and how its labels are keyed."""

    title: str
    """Display name, e.g. ``"CIFAR-10"``."""
    folder: str
    """The folder the official archive unpacks to."""
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    """Key of the label list inside each file's dict."""
    num_classes: int
    mean: tuple[float, float, float]
    """Per-channel mean of the training images, in [0, 1]."""
    std: tuple[float, float, float]
    """Per-channel standard deviation of the training images."""

    @property
    def files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files

    def expected(self) -> str:
        train = (
            f"{self.train_files[0]}..{self.train_files[-1]}"
            if len(self.train_files) > 1
            else self.train_files[0]
        )
        return f"{self.folder}/ with {train} and {', '.join(self.test_files)}"


LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key="labels",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": CifarLayout(
        title="CIFAR-100",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        label_key="fine_labels",
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
}


def find_cifar_folder(name: str, data_dir: str | Path | None) -> Path:
    """The folder holding ``name``'s files: ``data_dir/<folder>`` or ``data_dir`` itself."""
    layout = LAYOUTS[name]
    if data_dir is None:
        raise FullSpectrumError(
            f"dataset {name!r} needs --data-dir: a folder holding {layout.expected()} "
            "(the python version of the dataset)"
        )
    base = Path(data_dir).expanduser()
    candidates = (base / layout.folder, base)
    for folder in candidates:
        if all((folder / f).is_file() for f in layout.files):
            return folder
    folder = next((c for c in candidates if c.is_dir() and any((c / f).exists() for f in layout.files)), base)
    missing = [f for f in layout.files if not (folder / f).is_file()]
    raise FullSpectrumError(
        f"dataset {name!r}: {layout.title} files not found under {base}; expected {layout.expected()} "
        f"(missing in {folder}: {', '.join(missing)})"
    )


def read_cifar_file(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> ``uint8`` images ``(N, 3, 32, 32)`` and ``int64`` labels ``(N,)``."""
    batch = load_restricted(path)
    if not isinstance(batch, dict):
        raise FullSpectrumError(f"{path}: expected a dict of 'data' and labels, found {type(batch).__name__}")
    data, labels = _get(batch, "data", path), _get(batch, label_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise FullSpectrumError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {shape}")
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise FullSpectrumError(f"{path}: {label_key!r} must be a list of integer labels") from None
    if len(y) != len(data):
        raise FullSpectrumError(f"{path}: {len(data)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise FullSpectrumError(
            f"{path}: labels must lie in 0..{num_classes - 1}, found {y.min()}..{y.max()}"
        )
    return data.reshape(-1, *IMAGE_SHAPE), y


def load_cifar_splits(
    name: str,
    *,
    data_dir: str | Path | None = None,
    split_seed: int = 0,
    flatten: bool = False,
    val_fraction: float = 0.1,
    augment: bool = True,
) -> DatasetSplits:
    """CIFAR-10/100 splits: validation carved from the 50,000 training images, the official test set."""
    layout = LAYOUTS[name]
    folder = find_cifar_folder(name, data_dir)

    def read(files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [read_cifar_file(folder / f, layout.label_key, layout.num_classes) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        return torch.from_numpy(x), torch.from_numpy(y)

    normalize = ChannelNormalize(layout.mean, layout.std, IMAGE_SHAPE, scale=1 / 255, flat=flatten)
    crop_flip = RandomCropFlip(IMAGE_SHAPE, padding=4, fill=normalize.black()) if augment else None
    return build_splits(
        name,
        read(layout.train_files),
        read(layout.test_files),
        num_classes=layout.num_classes,
        split_seed=split_seed,
        val_fraction=val_fraction,
        flatten=flatten,
        transform=normalize,
        augment=crop_flip,
        train_transform=crop_flip.describe() if crop_flip else "none",
        source=str(folder),
        settings={"mean": layout.mean, "std": layout.std, "augment": bool(augment)},
    )


def _get(batch: dict, key: str, path: Path):
    for candidate in (key.encode(), key):  # files pickled by Python 2 have bytes keys
        if candidate in batch:
            return batch[candidate]
    raise FullSpectrumError(f"{path}: no {key!r} entry (keys: {', '.join(map(repr, batch))})")
