"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes), offline.

Pixels (0–16) are scaled to [0, 1] and standardised with one mean and standard
deviation computed over the training part (per-pixel statistics would divide by
zero at the always-blank corners). The test set is a fixed stratified 20% carve
(seed 0, whatever ``split_seed`` is); ``split_seed`` only moves the validation
carve. Examples are ``(1, 8, 8)`` images, or 64-vectors with ``flatten``.
"""

from __future__ import annotations

import numpy as np
import torch

from fullspectrum.data.base import DatasetSplits, build_splits, stratified_split

TEST_FRACTION = 0.2
"""About 360 test digits (359: rounded per class): enough for a percent-level accuracy estimate."""
TEST_SEED = 0
"""Fixed, so the test set never moves with a seed."""


def load_digits_splits(
    *, split_seed: int = 0, flatten: bool = False, val_fraction: float = 0.1
) -> DatasetSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None] / 16.0  # (1797, 1, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    pool_idx, test_idx = stratified_split(y, TEST_FRACTION, TEST_SEED)
    mean, std = float(x[pool_idx].mean()), float(x[pool_idx].std())
    x = (x - mean) / std
    return build_splits(
        "digits",
        (torch.from_numpy(x[pool_idx]), torch.from_numpy(y[pool_idx])),
        (torch.from_numpy(x[test_idx]), torch.from_numpy(y[test_idx])),
        num_classes=10,
        split_seed=split_seed,
        val_fraction=val_fraction,
        flatten=flatten,
        source="sklearn.datasets.load_digits (bundled)",
        settings={"test_fraction": TEST_FRACTION, "pixel_mean": mean, "pixel_std": std},
    )
