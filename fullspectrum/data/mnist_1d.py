"""MNIST-1D (Greydanus, 2020), generated locally with the ``mnist1d`` package.

Ten 1-D digit templates of length 12, padded, sheared, scaled, translated and
noised into length-40 signals: a dataset on which MLPs and CNNs differ as they
do on MNIST while a run takes seconds. We call ``mnist1d.data.make_dataset``
with the package's default arguments (5,000 examples, 4,000 train / 1,000 test,
seed 42), never its download path. ``make_dataset`` reseeds Python's ``random``
and NumPy's global generator; their states are saved and restored around it so
loading the data never changes a caller's randomness.

The arrays are cached (``fullspectrum.data.cache``) under a name that carries the
package version, sample count and seed, and regenerated when the file is
missing or unreadable. Examples are ``(1, 40)`` or 40-vectors with ``flatten``;
the package already standardises them (zero mean, unit variance overall).
"""

from __future__ import annotations

import random
from importlib import metadata

import numpy as np
import torch

from fullspectrum.data.base import DatasetSplits, build_splits
from fullspectrum.data.cache import cache_dir as resolve_cache_dir
from fullspectrum.data.cache import load_arrays, save_arrays
from fullspectrum.errors import FullSpectrumError

DEFAULT_NUM_SAMPLES = 5000
"""The package default (and the published dataset's size)."""
DEFAULT_SEED = 42
"""The package default seed."""
_KEYS = ("x", "y", "x_test", "y_test")


def generate_mnist1d(
    num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = DEFAULT_SEED
) -> dict[str, np.ndarray]:
    """Run ``mnist1d``'s ``make_dataset``; global RNG states are left exactly as they were."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(seed)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


def mnist1d_arrays(
    num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = DEFAULT_SEED, cache: str | None = None
) -> tuple[dict[str, np.ndarray], str]:
    """The generated arrays (from the cache when present) and the cache file's path."""
    version = _package_version()
    path = resolve_cache_dir(cache) / f"mnist1d-{version}_n{num_samples}_seed{seed}.npz"
    arrays = load_arrays(path, _KEYS)
    if arrays is None or not _consistent(arrays):
        arrays = generate_mnist1d(num_samples, seed)
        save_arrays(path, arrays)
    return arrays, str(path)


def load_mnist1d_splits(
    *,
    split_seed: int = 0,
    flatten: bool = False,
    val_fraction: float = 0.1,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = DEFAULT_SEED,
    cache_dir: str | None = None,
) -> DatasetSplits:
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 20:
        raise FullSpectrumError(f"dataset 'mnist1d': num_samples must be an int >= 20, got {num_samples!r}")
    arrays, path = mnist1d_arrays(int(num_samples), int(seed), cache_dir)
    return build_splits(
        "mnist1d",
        (torch.from_numpy(arrays["x"][:, None]), torch.from_numpy(arrays["y"])),  # (N, 1, 40)
        (torch.from_numpy(arrays["x_test"][:, None]), torch.from_numpy(arrays["y_test"])),
        num_classes=10,
        split_seed=split_seed,
        val_fraction=val_fraction,
        flatten=flatten,
        source=f"mnist1d.make_dataset (generated; cache {path})",
        settings={
            "num_samples": int(num_samples),
            "generator_seed": int(seed),
            "mnist1d_version": _package_version(),
        },
    )


def _package_version() -> str:
    try:
        return metadata.version("mnist1d")
    except metadata.PackageNotFoundError:
        return "unknown"


def _consistent(arrays: dict[str, np.ndarray]) -> bool:
    x, y, xt, yt = (arrays[k] for k in _KEYS)
    return (
        x.ndim == 2 and xt.ndim == 2 and len(x) == len(y) and len(xt) == len(yt) and x.shape[1] == xt.shape[1]
    )
