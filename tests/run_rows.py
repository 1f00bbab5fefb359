"""Rows and stores shared by the run-store tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from fullspectrum.runs import RunStore
from fullspectrum.runs.database import DTYPES
from fullspectrum.spectrum import layer_spectrum

CONFIG = {"model": "mlp", "data": "digits", "method": "itop", "density": 0.1}


def layer_row(name: str, step: int) -> dict:
    """A synthetic layers row whose values encode (name, step), every column of the schema given."""
    row = {"layer": name}
    for column, dtype in DTYPES["layers"].items():
        if column in ("step", "layer"):
            continue
        row[column] = {"int64": step, "float64": step + 0.5, "bool": step % 2 == 0}[dtype]
    return row


def real_layer_row(name: str, seed: int, weighted: bool = True) -> dict:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(12, 5, 3, 3, generator=generator) < 0.3
    weight = torch.randn(12, 5, 3, 3, generator=generator) if weighted else None
    spectrum = layer_spectrum(mask, weight, name=name)
    return {"layer": name, **spectrum.as_dict(), "moving_distance": 0.25 * seed, "exploration_rate": 0.5}


def new_store(folder: Path, kind: str = "train") -> RunStore:
    return RunStore.create(folder, kind=kind, config=dict(CONFIG), seed=7, device="cpu")


def folder_files(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` (relative path -> (sha256, mtime_ns))."""
    files = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            files[str(file.relative_to(folder))] = (
                hashlib.sha256(file.read_bytes()).hexdigest(),
                file.stat().st_mtime_ns,
            )
    return files
