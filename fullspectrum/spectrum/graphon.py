"""The graphon estimate of a layer's mask (SPEC §7; *The Graphon Limit Hypothesis*, 2025, "G25").

G25 argue that, as width grows, the masks a pruning method draws converge to a
graphon ``w(x, y)`` on ``[0, 1]²``: the limit of the degree-sorted adjacency.
The estimator is a block average of the layer's biadjacency
``B = M.reshape(out, -1)`` (rows: output units, columns: input units, SPEC §1):

1. sort the input units by degree, and the output units by degree, descending,
   ties broken by the lower index first (a stable, reproducible order);
2. split each side into ``K = min(64, units)`` contiguous blocks of equal size
   (``K = 64`` is this project's default, not G25's: the paper states none)
   (sizes differ by at most one unit when ``K`` does not divide the count);
3. each block's value is its edge density: edges in the block / its cells.

Every unit is kept, dead ones included (they sort to the end, as zero rows or
columns), so the estimate's mean weighted by block sizes is the layer density.

>>> import numpy as np
>>> g = graphon_estimate(np.ones((3, 5)))
>>> g.values.shape, float(g.values.min())
((3, 5), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fullspectrum.errors import MaskError
from fullspectrum.spectrum.graph import check_mask

MAX_BLOCKS = 64
"""The default resolution, at most 64 blocks per side: this project's choice (G25 state none)."""


@dataclass(frozen=True)
class Graphon:
    """A block estimate of a layer's graphon (rows: output units, columns: input units)."""

    values: np.ndarray
    """``(K_right, K_left)`` edge density of each block, in ``[0, 1]``; row 0 / column 0 hold the highest degrees."""
    right_order: np.ndarray
    """Output units in sorted order (descending degree, ties by index): the heat map's row order."""
    left_order: np.ndarray
    """Input units (flattened ``in * prod(kernel)``) in sorted order: the column order."""
    right_edges: np.ndarray
    """``K_right + 1`` block boundaries into ``right_order`` (block ``b`` is ``[edges[b], edges[b+1])``)."""
    left_edges: np.ndarray
    """``K_left + 1`` block boundaries into ``left_order``."""

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    @property
    def density(self) -> float:
        """Layer density recovered from the blocks (block values weighted by block cells)."""
        rows = np.diff(self.right_edges).astype(np.float64)
        cols = np.diff(self.left_edges).astype(np.float64)
        cells = np.outer(rows, cols)
        return float((self.values * cells).sum() / cells.sum()) if cells.sum() else 0.0


def degree_order(degrees: np.ndarray) -> np.ndarray:
    """Indices sorted by degree descending, ties by index ascending."""
    return np.lexsort((np.arange(degrees.size), -np.asarray(degrees)))


def block_edges(units: int, blocks: int) -> np.ndarray:
    """``blocks + 1`` boundaries splitting ``units`` into near-equal contiguous blocks."""
    return np.round(np.linspace(0, units, blocks + 1)).astype(np.int64)


def graphon_estimate(mask, *, max_blocks: int = MAX_BLOCKS, name: str = "layer") -> Graphon:
    """SPEC §7's graphon estimate of one layer's mask (shape ``(out, in, *kernel)``).

    ``K = min(max_blocks, units)`` on each side. A non-binary mask raises
    :class:`fullspectrum.errors.MaskError` naming ``name``.
    """
    if max_blocks < 1:
        raise ValueError(f"max_blocks must be >= 1, got {max_blocks}")
    array = check_mask(mask, name=f"{name} mask")
    if array.size == 0:
        raise MaskError(f"{name} mask: no units (shape {array.shape})")
    flat = array.reshape(array.shape[0], -1)  # (out, in*prod(kernel))
    n_right, n_left = flat.shape
    right_order = degree_order(flat.sum(axis=1))
    left_order = degree_order(flat.sum(axis=0))
    right_edges = block_edges(n_right, min(max_blocks, n_right))
    left_edges = block_edges(n_left, min(max_blocks, n_left))
    ordered = flat[np.ix_(right_order, left_order)].astype(np.int64)
    # block sums via cumulative sums at the boundaries (reduceat over both axes)
    sums = np.add.reduceat(np.add.reduceat(ordered, right_edges[:-1], axis=0), left_edges[:-1], axis=1)
    cells = np.outer(np.diff(right_edges), np.diff(left_edges))
    values = sums / cells
    return Graphon(
        values=values,
        right_order=right_order,
        left_order=left_order,
        right_edges=right_edges,
        left_edges=left_edges,
    )
