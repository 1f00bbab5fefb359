"""Flags shared by several subcommands (SPEC §8's common flags), spelled once.

The names a flag accepts come from the library's registries (models, datasets,
devices), so the help texts list exactly what exists.
"""

from __future__ import annotations

import argparse

from fullspectrum.data import DATASET_NAMES
from fullspectrum.devices import DEVICE_CHOICES
from fullspectrum.models import MODEL_NAMES


def names(choices) -> str:
    """``a, b, c``: the names of a registry for a help text."""
    return ", ".join(choices)


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
