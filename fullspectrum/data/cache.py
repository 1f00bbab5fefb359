"""The local cache of generated data (MNIST-1D): where it lives and atomic writes.

The folder is ``$FULLSPECTRUM_CACHE`` if set, else ``$XDG_CACHE_HOME/fullspectrum``,
else ``~/.cache/fullspectrum``. Files are written to a temporary name in the
same folder and renamed into place, so a reader never sees half a file and two
processes generating at once both end with a whole one. A cache that cannot be
written is skipped with a warning: it only saves time.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from fullspectrum.checkpoints.atomic import write_atomic

CACHE_ENV = "FULLSPECTRUM_CACHE"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder (not created here)."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fullspectrum"


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` to ``path`` (``.npz``) atomically; ``False`` (and a warning) if it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda handle: np.savez(handle, **arrays))
        return True
    except OSError as exc:
        warnings.warn(f"could not cache data at {path}: {exc}", RuntimeWarning, stacklevel=3)
        return False


def load_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``, or ``None`` if the file is missing, unreadable or lacks a key."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in keys}
    except (OSError, KeyError, ValueError):
        return None
