"""Vectorised incidence of one operation between feature maps (MGE24's unrolled encoding, SPEC §7).

Every function here returns a ``scipy.sparse`` CSR matrix whose rows are the elements of the
map an operation **reads** and whose columns are the elements it **writes** (flattened in
PyTorch's C order, one example): entry ``(i, j)`` is the edge from input element ``i`` to
output element ``j``. The arrays are built per kernel tap with NumPy broadcasting (a conv with
``k×k`` taps takes ``k²`` vectorised steps, never a Python loop over positions or edges), into
preallocated ``int32`` row/column arrays, so a block of ``E`` edges peaks at about
``16·E`` bytes (the COO arrays) plus ``12·E`` (the CSR result).

>>> conv_incidence(np.ones((1, 1, 3), bool), None, (4,), (2,), stride=(1,), padding=(0,), dilation=(1,)).toarray()
array([[1., 0.],
       [1., 1.],
       [1., 1.],
       [0., 1.]])
>>> pool_incidence(1, (4,), (2,), kernel=(2,), stride=(2,), padding=(0,), dilation=(1,)).toarray()
array([[1., 0.],
       [1., 0.],
       [0., 1.],
       [0., 1.]])
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import scipy.sparse as sp

INDEX = np.int32
"""Index dtype of every block (node counts and per-block edge counts stay below 2**31)."""


def _tap_positions(in_size, out_size, tap, stride, padding, dilation) -> tuple[np.ndarray, np.ndarray]:
    """Flat output positions and the flat input positions one kernel tap reads there (padding taps dropped);
    read-only arrays, cached."""
    return _positions(
        *(tuple(int(v) for v in x) for x in (in_size, out_size, tap, stride, padding, dilation))
    )


@functools.lru_cache(maxsize=4096)  # the same few geometries recur in every layer and every snapshot
def _positions(
    in_size: tuple[int, ...],
    out_size: tuple[int, ...],
    tap: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Flat output positions and the flat input positions one kernel tap reads there (padding taps dropped)."""
    outs, ins = [], []
    for size_in, size_out, t, s, p, d in zip(in_size, out_size, tap, stride, padding, dilation):
        o = np.arange(size_out, dtype=np.int64)
        i = o * s - p + t * d
        keep = (i >= 0) & (i < size_in)
        outs.append(o[keep])
        ins.append(i[keep])
    if any(len(o) == 0 for o in outs):
        flat_out, flat_in = np.empty(0, np.int64), np.empty(0, np.int64)
    else:
        grid_out = np.meshgrid(*outs, indexing="ij")
        grid_in = np.meshgrid(*ins, indexing="ij")
        flat_out = np.ravel_multi_index([g.ravel() for g in grid_out], out_size)
        flat_in = np.ravel_multi_index([g.ravel() for g in grid_in], in_size)
    flat_out.setflags(write=False)  # cached: shared by every caller
    flat_in.setflags(write=False)
    return flat_out, flat_in


def dense_conv_edges(
    in_channels: int,
    out_channels: int,
    kernel: tuple[int, ...],
    in_size: tuple[int, ...],
    out_size: tuple[int, ...],
    *,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> int:
    """Unrolled edges of a dense conv: kept-weight count times the output positions each tap reaches."""
    positions = 0
    for tap in itertools.product(*(range(k) for k in kernel)):
        flat_out, _ = _tap_positions(in_size, out_size, tap, stride, padding, dilation)
        positions += len(flat_out)
    return in_channels * out_channels * positions


def conv_edge_count(
    mask: np.ndarray,
    in_size: tuple[int, ...],
    out_size: tuple[int, ...],
    *,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> int:
    """Unrolled edges of a masked conv without building them: per tap, kept weights times positions reached."""
    total = 0
    for tap in itertools.product(*(range(k) for k in mask.shape[2:])):
        flat_out, _ = _tap_positions(in_size, out_size, tap, stride, padding, dilation)
        total += int(np.count_nonzero(mask[(slice(None), slice(None), *tap)])) * len(flat_out)
    return total


def tap_positions(in_size, out_size, tap, *, stride, padding, dilation) -> tuple[np.ndarray, np.ndarray]:
    """Flat output positions of a kernel tap and the flat input positions it reads there (padding dropped)."""
    return _tap_positions(in_size, out_size, tap, stride, padding, dilation)


def conv_incidence(
    mask: np.ndarray,
    weight: np.ndarray | None,
    in_size: tuple[int, ...],
    out_size: tuple[int, ...],
    *,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> sp.csr_matrix:
    """Edges of a conv (``groups == 1``): kept weight ``(c, j, tap)`` joins input ``(j, p·s - pad + tap·dil)``
    to output ``(c, p)`` at every output position ``p`` whose tap falls inside the input; weight ``|w|``
    (1 without weights). Shape ``(in_ch·prod(in_size), out_ch·prod(out_size))``."""
    out_ch, in_ch = mask.shape[:2]
    kernel = mask.shape[2:]
    n_in, n_out = math.prod(in_size), math.prod(out_size)
    taps = []
    total = 0
    for tap in itertools.product(*(range(k) for k in kernel)):
        c, j = np.nonzero(mask[(slice(None), slice(None), *tap)])  # kept (out, in) pairs at this tap
        flat_out, flat_in = _tap_positions(in_size, out_size, tap, stride, padding, dilation)
        if len(c) and len(flat_out):
            taps.append((tap, c, j, flat_out, flat_in))
            total += len(c) * len(flat_out)
    rows = np.empty(total, INDEX)  # input element of each edge
    cols = np.empty(total, INDEX)  # output element of each edge
    data = np.empty(total, np.float64)
    start = 0
    for tap, c, j, flat_out, flat_in in taps:
        stop = start + len(c) * len(flat_out)
        rows[start:stop].reshape(len(c), -1)[:] = j[:, None] * n_in + flat_in[None, :]
        cols[start:stop].reshape(len(c), -1)[:] = c[:, None] * n_out + flat_out[None, :]
        if weight is None:
            data[start:stop] = 1.0
        else:
            w = np.abs(weight[(c, j, *(np.full(len(c), t) for t in tap))]).astype(np.float64)
            data[start:stop].reshape(len(c), -1)[:] = w[:, None]
        start = stop
    shape = (in_ch * n_in, out_ch * n_out)
    matrix = sp.coo_matrix((data, (rows, cols)), shape=shape)
    del rows, cols, data
    return matrix.tocsr()  # no duplicates: a tap and an output position fix the input element


def linear_incidence(mask: np.ndarray, weight: np.ndarray | None) -> sp.csr_matrix:
    """Edges of a Linear layer: one per kept weight ``(out c, in j)``, from feature ``j`` to unit ``c``."""
    c, j = np.nonzero(mask)
    data = np.ones(len(c)) if weight is None else np.abs(weight[c, j]).astype(np.float64)
    shape = (mask.shape[1], mask.shape[0])
    return sp.csr_matrix((data, (j.astype(INDEX), c.astype(INDEX))), shape=shape)


def pool_incidence(
    channels: int,
    in_size: tuple[int, ...],
    out_size: tuple[int, ...],
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> sp.csr_matrix:
    """Window membership of a max/average pooling: ``(c, i) -> (c, o)`` for every input unit ``i`` of
    output ``o``'s window (data 1; max pooling as average pooling, since any unit may win)."""
    n_in, n_out = math.prod(in_size), math.prod(out_size)
    parts = []
    for tap in itertools.product(*(range(k) for k in kernel)):
        flat_out, flat_in = _tap_positions(in_size, out_size, tap, stride, padding, dilation)
        if len(flat_out):
            parts.append((flat_in, flat_out))
    return _per_channel(channels, n_in, n_out, parts)


def adaptive_pool_incidence(
    channels: int, in_size: tuple[int, ...], out_size: tuple[int, ...]
) -> sp.csr_matrix:
    """Window membership of adaptive pooling (PyTorch's windows ``[⌊o·I/O⌋, ⌈(o+1)·I/O⌉)`` per dimension)."""
    n_in, n_out = math.prod(in_size), math.prod(out_size)
    outs, ins = [], []
    for size_in, size_out in zip(in_size, out_size):
        o = np.arange(size_out)
        start = (o * size_in) // size_out
        end = -((-(o + 1) * size_in) // size_out)
        width = int((end - start).max())
        i = start[:, None] + np.arange(width)[None, :]  # (out, widest window)
        keep = i < end[:, None]
        outs.append(np.broadcast_to(o[:, None], i.shape)[keep])
        ins.append(i[keep])
    # the cartesian product of the per-dimension (out, in) pairs
    grids = np.meshgrid(*(np.arange(len(o)) for o in outs), indexing="ij")
    flat_out = np.ravel_multi_index([o[g.ravel()] for o, g in zip(outs, grids)], out_size)
    flat_in = np.ravel_multi_index([i[g.ravel()] for i, g in zip(ins, grids)], in_size)
    return _per_channel(channels, n_in, n_out, [(flat_in, flat_out)])


def _per_channel(channels: int, n_in: int, n_out: int, parts) -> sp.csr_matrix:
    """The same within-channel pairs repeated for every channel, as a CSR matrix of ones."""
    rows = np.concatenate([flat_in for flat_in, _ in parts]) if parts else np.empty(0, np.int64)
    cols = np.concatenate([flat_out for _, flat_out in parts]) if parts else np.empty(0, np.int64)
    offsets = np.arange(channels, dtype=np.int64)[:, None]
    rows = (offsets * n_in + rows[None, :]).ravel().astype(INDEX)
    cols = (offsets * n_out + cols[None, :]).ravel().astype(INDEX)
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(channels * n_in, channels * n_out))
    matrix.data[:] = 1.0  # a unit counted twice in one window (never with PyTorch's windows) stays one edge
    return matrix


def tap_slices(
    in_size, out_size, tap, *, stride, padding, dilation
) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """The output positions a tap reaches and the input positions it reads there, as one box of
    slices per side (``None`` when the tap falls on padding everywhere): strided views instead of gathers."""
    outs, ins = [], []
    for size_in, size_out, t, s, p, d in zip(in_size, out_size, tap, stride, padding, dilation):
        offset = t * d - p  # input index the tap reads at output 0
        lo = max(0, -(offset // s))  # first output whose input index is >= 0: ceil(-offset / s)
        hi = min(size_out, (size_in - 1 - offset) // s + 1)  # past the last whose index is < size_in
        if hi <= lo:
            return None
        outs.append(slice(lo, hi))
        ins.append(slice(lo * s + offset, (hi - 1) * s + offset + 1, s))
    return tuple(outs), tuple(ins)


def shifted_live(
    live: np.ndarray,
    in_size: tuple[int, ...],
    out_size: tuple[int, ...],
    tap: tuple[int, ...],
    *,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> np.ndarray:
    """``(channels, prod(out_size))`` bool: whether the input unit a tap reads at each output position is live
    (``False`` where the tap falls on padding). ``live`` is ``(channels, prod(in_size))``."""
    channels = live.shape[0]
    shifted = np.zeros((channels, *out_size), bool)
    boxes = tap_slices(in_size, out_size, tap, stride=stride, padding=padding, dilation=dilation)
    if boxes is not None:
        out_box, in_box = boxes
        shifted[(slice(None), *out_box)] = live.reshape(channels, *in_size)[(slice(None), *in_box)]
    return shifted.reshape(channels, -1)
