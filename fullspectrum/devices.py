"""Which torch device a job runs on (``--device auto|cpu|cuda``, SPEC §8)."""

from __future__ import annotations

import torch

from fullspectrum.errors import FullSpectrumError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
"""What ``--device`` accepts (and the app and configs offer): ``auto`` is CUDA when present."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FullSpectrumError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(name)
