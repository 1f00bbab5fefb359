"""2-D map of a scored PAGS / PEGS population, and its file ``embedding.csv`` (FS23 §5).

Each member of a population (the candidates, the base mask ``BASE`` and the
assembled mask ``ASSEMBLED``) is described by the concatenation, layer by
layer, of its 4-D full-spectrum vector ``u = (Δr, λ, Δr_imdb, λ_imsg)``
(SPEC §4: non-finite entries set to 0). Members that land close together have
similar per-layer spectra. UMAP (McInnes et al. 2018, ``umap-learn``) draws
the map; a population too small for a meaningful neighbour graph (fewer than
:data:`MIN_UMAP_CANDIDATES` rows) falls back to PCA, and the result says so.

``fullspectrum pags`` maps the population once sampling ends
(``run_pags(..., embed=embedding_table)``) and :func:`save_embedding` stores it
in the run; :func:`load_embedding` reads it back, so the app never computes it.
The file is a plain CSV with the columns :data:`EMBEDDING_COLUMNS`:

* ``candidate`` (int): the member (``-1`` base mask, ``-2`` assembled mask),
  one row each, ordered by candidate;
* ``x``, ``y`` (float): its map coordinates;
* ``method`` (``umap`` or ``pca``): what drew the map, the same on every row;
* ``note``: one sentence on how the map was made, the same on every row.

>>> import pandas as pd
>>> rows = [
...     {"candidate": c, "layer": layer, "delta_r": c + k, "lambda_w": 0.0, "delta_r_imdb": 1.0, "lambda_imsg": 0.0}
...     for c in range(4) for k, layer in enumerate(["fc1", "fc2"])
... ]
>>> emb = embed_population(pd.DataFrame(rows))
>>> emb.method, list(emb.frame.columns), list(emb.table().columns) == list(EMBEDDING_COLUMNS)
('pca', ['candidate', 'x', 'y'], True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.spectrum import VECTOR_AXES, metric_symbol

MIN_UMAP_CANDIDATES = 15
"""Below this many rows the neighbour graph UMAP needs is too thin: use PCA."""
EMBEDDING_FILE = "embedding.csv"
"""The map's file inside a PAGS run directory."""
EMBEDDING_COLUMNS = ("candidate", "x", "y", "method", "note")
"""Columns of ``embedding.csv``, in order (see the module docstring)."""
EMBEDDING_METHODS = ("auto", "umap", "pca")
"""What :func:`embed_population` accepts as ``method``."""


@dataclass(frozen=True)
class Embedding:
    """A 2-D map of a population, one row per member."""

    frame: pd.DataFrame
    """Columns ``candidate`` (int; -1 base, -2 assembled), ``x``, ``y``, ordered by candidate."""
    method: str
    """``"umap"`` or ``"pca"``: what actually drew the map."""
    note: str
    """One plain sentence on how the map was made (fallbacks included), for chart titles."""

    def table(self) -> pd.DataFrame:
        """The frame with ``method`` and ``note`` columns added: the rows of ``embedding.csv``."""
        return self.frame.assign(method=self.method, note=self.note)[list(EMBEDDING_COLUMNS)]

    def to_csv(self, path_or_buf=None, **kwargs):
        """:meth:`table` as CSV (``DataFrame.to_csv``'s arguments)."""
        return self.table().to_csv(path_or_buf, **kwargs)

    @classmethod
    def from_table(cls, table: pd.DataFrame, *, source: str = "embedding") -> Embedding:
        """The embedding whose :meth:`table` is ``table`` (``note`` may be left out); ``source`` names
        the table in errors."""
        missing = [column for column in EMBEDDING_COLUMNS[:4] if column not in table.columns]
        if missing:
            raise FullSpectrumError(
                f"{source}: missing columns {missing}; expected {', '.join(EMBEDDING_COLUMNS)}"
            )
        method = str(table["method"].iloc[0]) if len(table) else "pca"
        note = table["note"].iloc[0] if "note" in table.columns and len(table) else ""
        frame = table[["candidate", "x", "y"]].astype({"candidate": "int64"}).reset_index(drop=True)
        return cls(frame, method, "" if pd.isna(note) else str(note))


def population_matrix(population: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(candidates, X, layers)``: X[i] is member i's per-layer ``u`` vectors concatenated.

    Layers appear in their first-seen order; a layer missing for a member
    contributes zeros, non-finite values become 0 (SPEC §4).
    """
    missing = [c for c in ("candidate", "layer", *VECTOR_AXES) if c not in population.columns]
    if missing:
        raise FullSpectrumError(f"population: missing columns {missing}")
    layers = list(dict.fromkeys(population["layer"].astype(str)))
    wide = population.assign(layer=population["layer"].astype(str)).pivot_table(
        index="candidate", columns="layer", values=list(VECTOR_AXES), aggfunc="first", dropna=False
    )
    wide = wide.reindex(columns=pd.MultiIndex.from_product([VECTOR_AXES, layers]))
    # column order: layer-major, then the 4 components (u of layer 1, u of layer 2, ...)
    wide = wide[[(component, layer) for layer in layers for component in VECTOR_AXES]]
    matrix = wide.to_numpy(dtype=np.float64, copy=True)  # (members, 4 * layers)
    matrix[~np.isfinite(matrix)] = 0.0
    return wide.index.to_numpy(dtype=np.int64), matrix, layers


def _pca(matrix: np.ndarray) -> np.ndarray:
    """First two principal-component scores (zeros where a population has no spread)."""
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    coords = np.zeros((matrix.shape[0], 2))
    if matrix.shape[0] < 2 or not np.any(centred):
        return coords
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, s.size)
    scores = u[:, :k] * s[:k]
    # deterministic signs: the largest-magnitude score of each component is positive
    for j in range(k):
        if scores[np.argmax(np.abs(scores[:, j])), j] < 0:
            scores[:, j] *= -1
    coords[:, :k] = scores
    return coords


def _umap(matrix: np.ndarray, seed: int) -> np.ndarray:
    import umap  # heavy import (numba, seconds): only when a map is actually drawn

    scaled = matrix - matrix.mean(axis=0)
    spread = scaled.std(axis=0)
    scaled = np.divide(scaled, spread, out=np.zeros_like(scaled), where=spread > 0)
    n_neighbors = int(min(15, matrix.shape[0] - 1))
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, init="random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's n_jobs / random_state notice
        return np.asarray(reducer.fit_transform(scaled), dtype=np.float64)


def embed_population(population: pd.DataFrame, *, seed: int = 0, method: str = "auto") -> Embedding:
    """Map every member of ``population`` (``POPULATION_COLUMNS`` rows) to 2-D.

    ``method="auto"`` uses UMAP for at least :data:`MIN_UMAP_CANDIDATES` rows
    (base and assembled included) and PCA below; ``"umap"``/``"pca"`` force one
    (UMAP on fewer than 4 rows still falls back to PCA). The same input and
    seed give the same map.
    """
    if method not in EMBEDDING_METHODS:
        raise unknown_name("embedding method", method, EMBEDDING_METHODS)
    candidates, matrix, layers = population_matrix(population)
    n = candidates.size
    if n == 0:
        frame = pd.DataFrame({"candidate": pd.Series([], dtype="int64"), "x": [], "y": []})
        return Embedding(frame, "pca", "empty population: nothing to map")
    symbols = ", ".join(metric_symbol(axis) for axis in VECTOR_AXES)
    described = f"{n} masks x {len(layers)} layers (per-layer u = {symbols})"
    if method == "pca" or (method == "auto" and n < MIN_UMAP_CANDIDATES) or n < 4:
        coords = _pca(matrix)
        reason = (
            "requested" if method == "pca" else f"fewer than {MIN_UMAP_CANDIDATES} masks, too few for UMAP"
        )
        note = f"PCA of {described}; {reason}"
        used = "pca"
    else:
        coords = _umap(matrix, seed)
        note = f"UMAP of {described}, seed {seed}"
        used = "umap"
    frame = pd.DataFrame({"candidate": candidates, "x": coords[:, 0], "y": coords[:, 1]})
    return Embedding(frame.sort_values("candidate", ignore_index=True), used, note)


def embedding_table(population: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """:func:`embed_population` as the rows of ``embedding.csv`` (:data:`EMBEDDING_COLUMNS`).

    The ``embed`` hook ``fullspectrum pags`` gives ``run_pags``.
    """
    return embed_population(population, seed=seed).table()


def save_embedding(run_dir: str | Path, embedding: Embedding | pd.DataFrame) -> Path:
    """Write ``embedding.csv`` into a run directory, atomically; returns its path.

    ``embedding`` is an :class:`Embedding` or its :meth:`~Embedding.table`.
    """
    path = Path(run_dir) / EMBEDDING_FILE
    if not isinstance(embedding, Embedding):
        embedding = Embedding.from_table(embedding)
    text = embedding.table().to_csv(index=False)
    write_atomic(path, lambda file: file.write(text.encode("utf-8")))
    return path


def load_embedding(run_dir: str | Path) -> Embedding | None:
    """The stored embedding of a run, or None when the run has none."""
    path = Path(run_dir) / EMBEDDING_FILE
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise FullSpectrumError(f"{path}: unreadable embedding ({error})") from error
    return Embedding.from_table(table, source=str(path))
