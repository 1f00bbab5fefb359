"""Training checkpoints: everything needed to continue a run bit for bit (SPEC §8).

A checkpoint holds the model, the optimiser (momentum buffers), the masks and
fired masks, the step, the step-0 full-spectrum vectors (for moving distances)
and every random state the run draws from: torch CPU (and CUDA), numpy, Python
``random``, the data loader's generator (at the start of the current epoch, so
the epoch's order can be replayed) and the growth generator. All of it is
stored as tensors, numbers, strings and lists, so a safe load
(``torch.load(path, weights_only=True)``) reads it back; it is written atomically (temporary file,
fsync, ``os.replace``), so a killed job leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.checkpoints.reading import safe_torch_load
from fullspectrum.errors import CheckpointError

FORMAT = "fullspectrum-train-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def capture_rng(device: torch.device) -> dict:
    """Every global random state, as tensors and plain values."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" and torch.cuda.is_available() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
    }


def restore_rng(state: dict) -> None:
    """Set every global random state captured by :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["pos"], numpy["has_gauss"], numpy["gauss"]))
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss"]))


def serialize(payload: dict) -> bytes:
    """The checkpoint file's bytes for ``payload`` (plus format tags), captured now, written later."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buffer)
    return buffer.getvalue()


def write_bytes(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temporary file, fsync, ``os.replace``)."""
    write_atomic(path, lambda handle: handle.write(data))


def load_checkpoint(path: Path | str) -> dict:
    """Read a training checkpoint (safely: ``weights_only=True``) or raise a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training checkpoint")
    # the checkpoint readers' guards apply: a copied or tampered run folder is read like any user file
    payload = safe_torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fullspectrum training checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: training checkpoint version {payload.get('version')}, expected {VERSION}"
        )
    return payload
