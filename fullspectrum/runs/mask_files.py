"""Mask snapshots of a run (SPEC §8): ``masks/step_00000123.npz``, bit-packed.

A snapshot holds every layer's 0/1 mask at one training step, so any point of
a run's full-spectrum trajectory (FS23 §4) can be inspected later. Masks are
packed eight entries per byte with ``np.packbits`` and the archive is
compressed, so a ResNet-18 mask at density 0.01 takes well under its 11 M bits.
Layout inside the ``.npz``: ``names`` (unicode array of parameter names, e.g.
``layer1.0.conv1.weight``), and for the i-th name ``bits_i`` (uint8) and
``shape_i`` (int64); a snapshot that keeps weights (a training run's first and
last) adds ``values_i`` (float32), the kept weights in the mask's row-major
order, so the weighted class gaps ``λ_c`` can be recomputed there. Loaded with
``allow_pickle=False``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.errors import MaskError
from fullspectrum.runs.database import RunError

MASK_DIR = "masks"
_PATTERN = re.compile(r"^step_(\d+)\.npz$")


def mask_file(run_dir: Path, step: int) -> Path:
    """Where the snapshot of ``step`` lives."""
    if int(step) < 0:
        raise MaskError(f"mask step {step} is negative")
    return Path(run_dir) / MASK_DIR / f"step_{int(step):08d}.npz"


def _as_bool_array(name: str, mask) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().to("cpu").numpy()
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise MaskError(f"mask {name!r}: values other than 0/1 (dtype {array.dtype})")
        array = array.astype(np.bool_)
    return array


def save_mask_file(path: Path, masks: dict[str, object], weights: dict[str, object] | None = None) -> None:
    """Write one snapshot atomically (bool tensors or 0/1 arrays keyed by parameter name).

    With ``weights`` (same names and shapes), the kept weights are stored too.
    """
    arrays: dict[str, np.ndarray] = {"names": np.array(list(masks), dtype=np.str_)}
    for index, (name, mask) in enumerate(masks.items()):
        array = _as_bool_array(name, mask)
        arrays[f"bits_{index}"] = np.packbits(array.reshape(-1))  # (ceil(numel/8),) uint8
        arrays[f"shape_{index}"] = np.array(array.shape, dtype=np.int64)
        if weights is not None and name in weights:
            weight = weights[name]
            if isinstance(weight, torch.Tensor):
                weight = weight.detach().to("cpu", torch.float32).numpy()
            weight = np.asarray(weight, dtype=np.float32)
            if weight.shape != array.shape:
                raise MaskError(
                    f"weight {name!r}: shape {weight.shape} differs from its mask's {array.shape}"
                )
            arrays[f"values_{index}"] = weight[array]  # (kept,) float32, row-major
    write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


def _unpack_mask(archive, index: int) -> np.ndarray:
    """The ``index``-th layer's bool mask of an open snapshot archive, in its shape."""
    shape = tuple(int(size) for size in archive[f"shape_{index}"])
    count = int(np.prod(shape, dtype=np.int64))
    return np.unpackbits(archive[f"bits_{index}"], count=count).astype(np.bool_).reshape(shape)


def load_mask_file(path: Path) -> dict[str, torch.Tensor]:
    """Read one snapshot back as bool tensors with their original shapes."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = [str(name) for name in archive["names"]]
            masks = {name: torch.from_numpy(_unpack_mask(archive, index)) for index, name in enumerate(names)}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise RunError(f"{path}: unreadable mask snapshot ({error})") from None
    return masks


def load_snapshot_weights(path: Path) -> dict[str, torch.Tensor]:
    """The weights a snapshot kept (zero where the mask is), keyed by parameter name; {} if none."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {}
            for index, name in enumerate(str(name) for name in archive["names"]):
                if f"values_{index}" not in archive.files:
                    continue
                mask, values = _unpack_mask(archive, index), archive[f"values_{index}"]
                if values.shape != (int(mask.sum()),):
                    raise ValueError(f"{name}: {values.size} weights for {int(mask.sum())} kept entries")
                dense = np.zeros(mask.shape, dtype=np.float32)
                dense[mask] = values
                weights[name] = torch.from_numpy(dense)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise RunError(f"{path}: unreadable weights in a mask snapshot ({error})") from None
    return weights


def mask_steps(run_dir: Path) -> list[int]:
    """Steps that have a mask snapshot, ascending (temporary files of a crashed write are ignored)."""
    folder = Path(run_dir) / MASK_DIR
    if not folder.is_dir():
        return []
    steps = [int(match.group(1)) for entry in folder.iterdir() if (match := _PATTERN.match(entry.name))]
    return sorted(steps)


def remove_masks_after(run_dir: Path, step: int) -> list[int]:
    """Delete every snapshot after ``step`` (and leftover temp files); return the removed steps."""
    removed = [later for later in mask_steps(run_dir) if later > step]
    for later in removed:
        mask_file(run_dir, later).unlink(missing_ok=True)
    folder = Path(run_dir) / MASK_DIR
    if folder.is_dir():
        for leftover in folder.glob(".step_*.tmp"):
            leftover.unlink(missing_ok=True)
    return removed
