"""A layer's degree classes (SPEC §3), sliced in one pass: degrees by ``bincount``, classes by one sort.

Class ``c`` holds the live input units (columns) of one degree ``d_c`` and every
output unit wired to them. Its sizes, its qualification and each edge's place in
the class's own numbering come out of a few whole-array operations, never a
loop over classes or edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fullspectrum.spectrum.graph import LayerGraph, column_counts, row_slices

_TOUCH_TABLE_ENTRIES = 1 << 26
"""Above this many ``(class, row)`` cells the rows of each class are found by sorting instead."""
_PAIR_TABLE_ENTRIES = 1 << 22
"""Up to this many ``(class, row)`` cells ``pair_of`` reads a table (16 MiB) instead of searching."""


@dataclass(frozen=True)
class ClassTable:
    """Every degree class of one layer graph, by increasing degree (arrays indexed by class)."""

    degrees: np.ndarray  # d_c
    sizes: np.ndarray  # n_c = l_c: input units of the class
    right_sizes: np.ndarray  # r_c: output units wired to the class
    qualifies: np.ndarray  # bool: enters the iterative means under the convention
    column_class: np.ndarray  # class of each live column
    class_rows: np.ndarray  # live row of each (class, row) pair, grouped by class
    class_row_class: np.ndarray  # class of each (class, row) pair

    def pair_of(self, edge_class: np.ndarray, edge_rows: np.ndarray, n_right: int) -> np.ndarray:
        """Index of each ``(class, row)`` given in the numbering of all pairs (the pairs are sorted):
        read from a table of every cell where it is small, else found by binary search."""
        n_classes = self.degrees.size
        if n_classes * n_right <= _PAIR_TABLE_ENTRIES:
            table = np.zeros((n_classes, n_right), dtype=np.int32)
            table[self.class_row_class, self.class_rows] = np.arange(self.class_rows.size, dtype=np.int32)
            return table[edge_class, edge_rows]
        keys = self.class_row_class * n_right + self.class_rows
        return np.searchsorted(keys, edge_class.astype(np.int64) * n_right + edge_rows)

    @property
    def d_right(self) -> np.ndarray:
        """Mean fan-in of the class's output units, ``n_c d_c / r_c``."""
        return self.sizes * self.degrees / self.right_sizes

    @property
    def size_factor(self) -> np.ndarray:
        """FS23's ``f_c = max(l_c, r_c) / (l_c + r_c - 1)``."""
        return np.maximum(self.sizes, self.right_sizes) / (self.sizes + self.right_sizes - 1)


def qualify(degrees: np.ndarray, sizes: np.ndarray, d_right: np.ndarray, convention: str) -> np.ndarray:
    """SPEC §3: FS23 needs ``d_c>=3, n_c>=2, d_right>1``; R23 ``d_c>=3, n_c>=3, d_right>=3``."""
    if convention == "r23":
        return (degrees >= 3) & (sizes >= 3) & (d_right >= 3)
    return (degrees >= 3) & (sizes >= 2) & (d_right > 1)


def class_table(graph: LayerGraph, convention: str) -> ClassTable:
    """The degree classes of ``graph`` and the rows each reaches.

    Nothing per edge is kept (a large layer's memory is its per-edge arrays): the pass over the
    edges that finds each class's rows goes a slice of rows at a time.
    """
    n_right, n_left = graph.biadjacency.shape
    indptr, indices = graph.biadjacency.indptr, graph.biadjacency.indices
    column_degree = column_counts(indices, n_left)
    degrees, column_class = np.unique(column_degree, return_inverse=True)
    column_class = column_class.ravel().astype(np.int32)  # fewer classes than columns
    sizes = np.bincount(column_class, minlength=degrees.size)
    n_classes = degrees.size
    touch = n_classes * n_right <= _TOUCH_TABLE_ENTRIES
    # The touch table row by row (row * classes + class: a row's edges land in one short run of
    # it, several times faster than a scatter over the whole table), read class by class.
    touched = np.zeros((n_right, n_classes) if touch else 0, dtype=bool)
    pieces = []
    for first, stop in row_slices(indptr):
        degree = np.diff(indptr[first : stop + 1])
        edge_class = np.take(column_class, indices[indptr[first] : indptr[stop]])
        if touch:
            edge_class += np.repeat(
                np.arange(first * n_classes, stop * n_classes, n_classes, dtype=np.int32), degree
            )
            touched.reshape(-1)[edge_class] = True
        else:
            rows = np.repeat(np.arange(first, stop), degree)
            pieces.append(np.unique(edge_class.astype(np.int64) * n_right + rows))
    pair_keys = np.flatnonzero(touched.T) if touch else np.unique(np.concatenate(pieces))
    class_row_class, class_rows = np.divmod(pair_keys, n_right)
    right_sizes = np.bincount(class_row_class, minlength=degrees.size)
    d_right = sizes * degrees / right_sizes
    return ClassTable(
        degrees=degrees,
        sizes=sizes,
        right_sizes=right_sizes,
        qualifies=qualify(degrees, sizes, d_right, convention),
        column_class=column_class,
        class_rows=class_rows,
        class_row_class=class_row_class,
    )
