"""Flags shared by several subcommands (SPEC §8's common flags), spelled once."""

from __future__ import annotations

import argparse


def add_model_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--data`` (both required) and ``--data-dir``."""
    parser.add_argument(
        "--model", required=True, help="model name (mlp, lenet5, conv6, resnet20, resnet18, ...)"
    )
    parser.add_argument(
        "--data", required=True, help="dataset name (digits, mnist1d, cifar10, cifar100, synthetic)"
    )
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding the CIFAR files")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda`` (auto: CUDA when present)."""
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto (CUDA when present)"
    )
