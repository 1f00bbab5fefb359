"""2-D embedding of a scored PAGS/PEGS population (FS23 §5, the PAGS lab's map).

Each candidate of a population (and the base mask ``-1`` and the assembled mask
``-2``) is described by the concatenation, layer by layer, of its 4-D
full-spectrum vector ``u = (delta_r, lambda_w, delta_r_imdb, lambda_imsg)``
(SPEC §4: non-finite entries set to 0). Candidates that land close together
have similar per-layer spectra. UMAP (``umap-learn``) draws the map; a
population too small for a meaningful neighbour graph (fewer than
``MIN_UMAP_CANDIDATES`` rows) falls back to PCA, and the result says so.

The PAGS worker calls :func:`embedding_table` once sampling ends and stores it
in the run as ``embedding.csv`` (``run_pags(..., embed=embedding_table)``;
:func:`load_embedding` reads it back), so the app never computes it in a page.

>>> import pandas as pd
>>> rows = [
...     {"candidate": c, "layer": layer, "delta_r": c + k, "lambda_w": 0.0, "delta_r_imdb": 1.0, "lambda_imsg": 0.0}
...     for c in range(4) for k, layer in enumerate(["fc1", "fc2"])
... ]
>>> emb = embed_population(pd.DataFrame(rows))
>>> emb.method, list(emb.frame.columns)
('pca', ['candidate', 'x', 'y'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum import VECTOR_AXES

"""The 4 components of SPEC §4's scoring vector ``u``, as population columns."""
MIN_UMAP_CANDIDATES = 15
"""Below this many rows the neighbour graph UMAP needs is too thin: use PCA."""
EMBEDDING_FILE = "embedding.csv"
"""Artifact name inside a PAGS run directory."""
METHODS = ("auto", "umap", "pca")


@dataclass(frozen=True)
class Embedding:
    """A 2-D map of a population, one row per candidate."""

    frame: pd.DataFrame
    """Columns ``candidate`` (int; -1 base, -2 assembled), ``x``, ``y``, ordered by candidate."""
    method: str
    """``"umap"`` or ``"pca"``: what actually drew the map."""
    note: str
    """One plain sentence on how the map was made (fallbacks included), for chart titles."""

    def table(self) -> pd.DataFrame:
        """The frame with ``method`` and ``note`` columns added (what ``embedding.csv`` holds)."""
        return self.frame.assign(method=self.method, note=self.note)

    def to_csv(self, path_or_buf=None, **kwargs):
        """Write :meth:`table` as CSV (so a caller expecting a DataFrame from the embed hook stores it whole)."""
        return self.table().to_csv(path_or_buf, **kwargs)


def population_matrix(population: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(candidates, X, layers)``: X[i] is candidate i's per-layer ``u`` vectors concatenated.

    Layers appear in their first-seen order; a layer missing for a candidate
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
    matrix = wide.to_numpy(dtype=np.float64, copy=True)  # (candidates, 4 * layers)
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
    import umap  # heavy import (numba); only when a map is actually drawn

    scaled = matrix - matrix.mean(axis=0)
    spread = scaled.std(axis=0)
    scaled = np.divide(scaled, spread, out=np.zeros_like(scaled), where=spread > 0)
    n_neighbors = int(min(15, matrix.shape[0] - 1))
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, init="random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap's n_jobs / random_state notice
        return np.asarray(reducer.fit_transform(scaled), dtype=np.float64)


def embed_population(population: pd.DataFrame, *, seed: int = 0, method: str = "auto") -> Embedding:
    """Map every candidate of ``population`` (``POPULATION_COLUMNS`` rows) to 2-D.

    ``method="auto"`` uses UMAP for at least :data:`MIN_UMAP_CANDIDATES` rows
    (base and assembled included) and PCA below; ``"umap"``/``"pca"`` force one
    (UMAP on fewer than 4 rows still falls back to PCA). The same input and
    seed give the same map.
    """
    if method not in METHODS:
        raise FullSpectrumError(f"unknown embedding method '{method}'; choose from {', '.join(METHODS)}")
    candidates, matrix, layers = population_matrix(population)
    n = candidates.size
    if n == 0:
        frame = pd.DataFrame({"candidate": pd.Series([], dtype="int64"), "x": [], "y": []})
        return Embedding(frame, "pca", "empty population: nothing to map")
    described = f"{n} masks x {len(layers)} layers (per-layer u = Δr, λ, Δr_imdb, λ_imsg)"
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
    """:func:`embed_population` as one table: ``candidate, x, y, method, note`` (the last two constant).

    A drop-in for ``fullspectrum.sampling.run_pags(..., embed=embedding_table)``,
    which writes the table as ``embedding.csv``; :func:`load_embedding` reads it back.
    """
    return embed_population(population, seed=seed).table()


def save_embedding(run_dir: str | Path, embedding: Embedding) -> Path:
    """Write ``embedding.csv`` (with the method and note as comment lines) into a run directory."""
    path = Path(run_dir) / EMBEDDING_FILE
    header = f"# method: {embedding.method}\n# note: {embedding.note}\n"
    body = embedding.frame.to_csv(index=False)
    write_atomic(path, lambda file: file.write((header + body).encode("utf-8")))
    return path


def load_embedding(run_dir: str | Path) -> Embedding | None:
    """The stored embedding of a run, or None when the run has none."""
    path = Path(run_dir) / EMBEDDING_FILE
    if not path.exists():
        return None
    method, note = "pca", ""
    with open(path, encoding="utf-8") as file:
        for line in file:
            if not line.startswith("#"):
                break
            key, _, value = line[1:].strip().partition(": ")
            method = value if key == "method" else method
            note = value if key == "note" else note
    try:
        frame = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise FullSpectrumError(f"{path}: unreadable embedding ({error})") from error
    if not {"candidate", "x", "y"} <= set(frame.columns):
        raise FullSpectrumError(f"{path}: expected columns candidate,x,y, got {list(frame.columns)}")
    if "method" in frame.columns and len(frame):  # written by embedding_table
        method, note = str(frame["method"].iloc[0]), str(frame["note"].iloc[0]) if "note" in frame else ""
    return Embedding(frame[["candidate", "x", "y"]], method, note)


def network_points(population: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: its network-mean ``delta_r, lambda_w, delta_r_imdb, lambda_imsg`` (SPEC §4:
    NaN-skipping unweighted means over layers), mean ``score`` and ``layers_won``; for the 3-D scatter."""
    grouped = population.groupby("candidate", sort=True)
    frame = grouped[[*VECTOR_AXES, "score"]].mean()  # pandas' mean skips NaN
    frame["layers_won"] = grouped["won"].sum().astype(int) if "won" in population else 0
    return frame.reset_index()


def layer_winners(population: pd.DataFrame) -> pd.DataFrame:
    """Per layer (first-seen order): the candidate that won it (-1: the base mask was kept), its score
    and ``delta_r_imdb``, with the base mask's for comparison."""
    layers = list(dict.fromkeys(population["layer"]))
    won = population[population["won"].astype(bool)].drop_duplicates("layer").set_index("layer")
    base = population[population["candidate"] == -1].set_index("layer")
    rows = []
    for layer in layers:
        row = {"layer": layer, "winner": int(won.loc[layer, "candidate"]) if layer in won.index else -1}
        row["score"] = float(won.loc[layer, "score"]) if layer in won.index else np.nan
        row["delta_r_imdb"] = float(won.loc[layer, "delta_r_imdb"]) if layer in won.index else np.nan
        row["base_score"] = float(base.loc[layer, "score"]) if layer in base.index else np.nan
        row["base_delta_r_imdb"] = float(base.loc[layer, "delta_r_imdb"]) if layer in base.index else np.nan
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["layer", "winner", "score", "delta_r_imdb", "base_score", "base_delta_r_imdb"]
    )
