"""Flags shared by several subcommands (SPEC §8's common flags), spelled once.

The names a flag accepts come from the library's registries (models, datasets,
devices), so the help texts list exactly what exists. The number types check a
flag's value as argparse reads it, so a bad number is refused in one line
(``argument --seed: ...``) before any work starts:

>>> seed("3"), positive_int("128"), non_negative_int("0"), positive_float("0.1"), density("1")
(3, 128, 0, 0.1, 1.0)
>>> seed("-1")
Traceback (most recent call last):
  ...
argparse.ArgumentTypeError: must be a whole number from 0 to 9223372036854775807, got '-1'
>>> density("nan")
Traceback (most recent call last):
  ...
argparse.ArgumentTypeError: must be a number in (0, 1] (the fraction of weights kept), got 'nan'
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from fullspectrum.data import DATASET_NAMES
from fullspectrum.devices import DEVICE_CHOICES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import MODEL_NAMES
from fullspectrum.runs.database import RunError
from fullspectrum.runs.outputs import check_output_file

SEED_MAX = 2**63 - 1
"""Largest seed: NumPy's ``SeedSequence`` takes any integer >= 0, torch's ``manual_seed`` up to
2**64 - 1, and a run's seed is stored in SQLite's signed 64-bit integers."""


def names(choices) -> str:
    """``a, b, c``: the names of a registry for a help text."""
    return ", ".join(choices)


def _whole(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def seed(text: str) -> int:
    """``--seed``: a whole number in ``[0, 2**63 - 1]``."""
    return _whole(text, 0, SEED_MAX, f"a whole number from 0 to {SEED_MAX}")


def positive_int(text: str) -> int:
    """A count that must be at least 1 (``--epochs``, ``--batch-size``, ``--population``, ``--workers``)."""
    return _whole(text, 1, None, "a whole number of at least 1")


def non_negative_int(text: str) -> int:
    """A count that may be 0 (``--warmup-iters``)."""
    return _whole(text, 0, None, "a whole number of at least 0")


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive_float(text: str) -> float:
    """A finite number > 0 (``--lr``)."""
    value = _finite(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def density(text: str) -> float:
    """``--density``: the fraction of weights kept, in ``(0, 1]``."""
    value = _finite(text)
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"must be a number in (0, 1] (the fraction of weights kept), got {text!r}"
        )
    return value


def check_out_file(path: str | Path, flag: str = "--out") -> Path:
    """Refuse an output file that cannot be written (:func:`~fullspectrum.runs.outputs.check_output_file`,
    missing folders allowed: the writer makes them), the message led by ``flag``. Call it before any work."""
    try:
        return check_output_file(path, make_folders=True)
    except RunError as error:
        raise FullSpectrumError(f"{flag} {error}") from None


def add_model_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--data`` (both required) and ``--data-dir``."""
    parser.add_argument("--model", required=True, help=f"model name: {names(MODEL_NAMES)}")
    parser.add_argument("--data", required=True, help=f"dataset name: {names(DATASET_NAMES)}")
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding the CIFAR files")


def add_device_argument(parser: argparse.ArgumentParser, *, default: str | None = "auto") -> None:
    """``--device auto|cpu|cuda`` (auto: CUDA when present); ``default=None`` leaves it to a preset."""
    parser.add_argument(
        "--device", choices=DEVICE_CHOICES, default=default, help="default: auto (CUDA when present)"
    )
