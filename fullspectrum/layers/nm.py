"""N:M sparsity of a layer's mask: detection and the ``N:M`` spelling (SPEC §1).

A mask is **N:M** when every group of ``M`` consecutive weights along the input dimension keeps
exactly ``N`` (NVIDIA's 2:4 structured sparsity for sparse tensor cores, Mishra et al. 2021,
*Accelerating Sparse Deep Neural Networks*; Zhou et al., ICLR 2021, *Learning N:M Fine-grained
Structured Sparse Neural Networks From Scratch*). In the bipartite graph of the rolled encoding
it means that every output unit's inputs come in fixed-size groups, each contributing exactly
``N`` edges: the graph is ``(N/M · in)``-right-regular with its edges spread evenly along the
input order.

Choices made here:

* the input dimension is the flattened row of ``B = M.reshape(out, -1)`` (SPEC §1): for a conv
  layer groups run along ``in * kh * kw`` in PyTorch's memory order (the kernel's last axis
  fastest), so a group may span kernel taps of neighbouring input channels; for a 1×1 conv and
  a Linear layer that is the input channels. (Hardware 2:4 on convolutions groups input channels
  per kernel tap; the two readings agree for 1×1 convolutions.)
* only an ``M`` that divides the row length is a pattern (a group is always whole);
* ``0 < N < M``: a dense or all-zero layer has no pattern (``""``);
* the smallest such ``M ≤ 16`` is reported, so a 2:4 mask (also 4:8, 8:16) is ``"2:4"``.

>>> import torch
>>> nm_pattern(torch.tensor([[1, 1, 0, 0, 0, 1, 1, 0]]))
'2:4'
>>> nm_pattern(torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]]))
'1:2'
>>> nm_pattern(torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])), nm_pattern(torch.ones(2, 4))
('', '')
>>> parse_nm("2:4")
(2, 4)
"""

from __future__ import annotations

import numpy as np
import torch

from fullspectrum.errors import FullSpectrumError

MAX_M = 16
"""Largest group size ``M`` detected (SPEC §1)."""
_CHUNK_ELEMENTS = 1 << 22
"""Mask entries counted per step: the group counts of a 45M-weight projection never exist at once."""


def group_rows(mask) -> np.ndarray:
    """``mask`` as a bool ``(out, in * prod(kernel))`` array: the rows along which groups run."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    array = array.reshape(array.shape[0], -1)
    return array if array.dtype == bool else array != 0


def nm_pattern(mask) -> str:
    """``"N:M"`` for the smallest ``M ≤ 16`` such that every group of ``M`` consecutive weights of each
    row keeps exactly ``N`` (``0 < N < M``), else ``""`` (see the module docstring)."""
    rows = group_rows(mask)
    out, length = rows.shape
    kept = int(np.count_nonzero(rows))
    for m in range(2, MAX_M + 1):
        if length % m or (kept * m) % rows.size:
            continue  # groups would not be whole, or the density is not N/M for a whole N
        n = kept * m // rows.size
        if 0 < n < m and _every_group_keeps(rows, n, m):
            return f"{n}:{m}"
    return ""


def _every_group_keeps(rows: np.ndarray, n: int, m: int) -> bool:
    """Whether every group of ``m`` consecutive entries of each row holds exactly ``n`` (rows in chunks)."""
    out, length = rows.shape
    step = max(1, _CHUNK_ELEMENTS // length)
    for start in range(0, out, step):
        chunk = rows[start : start + step]
        counts = chunk.reshape(chunk.shape[0], length // m, m).sum(axis=2, dtype=np.int16)  # (rows, groups)
        if not bool((counts == n).all()):
            return False
    return True


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)``; a one-line FullSpectrumError unless ``0 < N < M``.

    ``M`` may exceed :data:`MAX_M` for a generator (only detection stops at 16); ``N = M`` would
    be dense and ``N = 0`` empty, so neither is a pattern.
    """
    parts = str(text).strip().split(":")
    try:
        n, m = (int(part) for part in parts)
    except ValueError:
        n = m = 0
    if len(parts) != 2 or not 0 < n < m:
        raise FullSpectrumError(
            f"N:M pattern {text!r}: give two whole numbers N:M with 0 < N < M, e.g. 2:4 (keep 2 of every 4)"
        )
    return n, m
