"""A restricted unpickler for the CIFAR python-pickle files.

``pickle.load`` on a user's file runs whatever callable the file names; the
CIFAR batches only need dicts, lists, bytes, ints and NumPy arrays. This
unpickler resolves exactly the globals those need (NumPy's array
reconstructors, ``ndarray``, ``dtype``, NumPy scalars, and ``_codecs.encode``
that Python 3 uses for bytes in protocol 2) and refuses every other global
with a one-line ``FullSpectrumError`` naming the file and the global.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

from fullspectrum.errors import FullSpectrumError

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),  # ndarray, NumPy 1.x / Python 2 pickles
        ("numpy._core.multiarray", "_reconstruct"),  # ndarray, NumPy 2.x
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5 arrays
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol 2
    }
)
"""``(module, name)`` pairs a CIFAR file may reference; anything else is refused."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles with ``encoding="bytes"``, admitting only ``ALLOWED_GLOBALS``."""

    def __init__(self, file, *, path: str | Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = str(path)

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise FullSpectrumError(
                f"{self._path}: refusing to unpickle global '{module}.{name}'; a CIFAR file holds only "
                "dicts, lists and numpy arrays (is this the python version of the dataset?)"
            )
        with warnings.catch_warnings():  # numpy.core.* is a deprecated alias under NumPy 2
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def load_restricted(path: str | Path):
    """Unpickle ``path`` with ``RestrictedUnpickler``; unreadable or corrupt files raise ``FullSpectrumError``."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, path=path).load()
    except FullSpectrumError:
        raise
    except OSError as exc:
        raise FullSpectrumError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated or not a pickle: UnpicklingError, EOFError, ValueError, ...
        raise FullSpectrumError(
            f"{path}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})"
        ) from None
