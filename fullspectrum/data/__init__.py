"""Offline datasets and reproducible loaders: digits, MNIST-1D, CIFAR-10/100, synthetic.

``load_dataset(name, ...)`` returns ``DatasetSplits`` (train / validation /
test, class count, input shape, training augmentation); ``make_loader`` wraps a
split in a ``DataLoader`` whose order and augmentation depend on its seed only.
Splits depend on ``split_seed`` alone, so varying the run seed varies training,
not the data. CIFAR is what FS23 and ITOP21 train on; digits and MNIST-1D
(Greydanus, 2020) make the same experiments run in seconds on a CPU.

Modules:

* :mod:`~fullspectrum.data.registry`: the dataset registry (``DATASETS``, ``load_dataset``);
* :mod:`~fullspectrum.data.base`: in-memory datasets, ``DatasetSplits`` and the split rule;
* :mod:`~fullspectrum.data.loaders`: seeded ``DataLoader``\\ s with batch augmentation;
* :mod:`~fullspectrum.data.transforms`: normalisation, random crop and flip;
* :mod:`~fullspectrum.data.digits`, :mod:`~fullspectrum.data.mnist_1d`,
  :mod:`~fullspectrum.data.cifar`, :mod:`~fullspectrum.data.synthetic`: the datasets;
* :mod:`~fullspectrum.data.cache`: where generated data (MNIST-1D) is cached;
* :mod:`~fullspectrum.data.safe_pickle`: the restricted unpickler for CIFAR's files.
"""

from __future__ import annotations

from fullspectrum.data.base import SPLITS, ArrayDataset, DatasetSplits, stratified_split
from fullspectrum.data.loaders import BatchAugment, make_loader
from fullspectrum.data.registry import (
    DATASET_NAMES,
    DATASETS,
    NEEDS_DATA_DIR,
    DatasetLoader,
    dataset_options,
    load_dataset,
)
from fullspectrum.data.transforms import ChannelNormalize, RandomCropFlip

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "NEEDS_DATA_DIR",
    "SPLITS",
    "ArrayDataset",
    "BatchAugment",
    "ChannelNormalize",
    "DatasetLoader",
    "DatasetSplits",
    "RandomCropFlip",
    "dataset_options",
    "load_dataset",
    "make_loader",
    "stratified_split",
]
