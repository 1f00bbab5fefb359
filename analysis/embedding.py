"""The PAGS lab's views of a scored PAGS / PEGS population (FS23 §5).

:func:`network_points` gives every member (the candidates, the base mask
``BASE`` and the assembled mask ``ASSEMBLED``) its network-mean full-spectrum
coordinate, for the 3-D scatter; :func:`layer_winners` says which member won
each layer. The 2-D map of the population and its file ``embedding.csv`` live
in the library (:mod:`fullspectrum.sampling.embedding`, written by
``fullspectrum pags``); their names are re-exported here.

>>> import pandas as pd
>>> population = pd.DataFrame(
...     {"candidate": [BASE, BASE, 0, 0], "layer": ["fc1", "fc2"] * 2, "delta_r": [1.0, 3.0, 2.0, 2.0],
...      "lambda_w": 0.0, "delta_r_imdb": 1.0, "lambda_imsg": 0.0, "score": 1.0, "won": [True, False, False, True]}
... )
>>> network_points(population)[["candidate", "delta_r", "layers_won"]].to_dict("records")
[{'candidate': -1, 'delta_r': 2.0, 'layers_won': 1}, {'candidate': 0, 'delta_r': 2.0, 'layers_won': 1}]
>>> layer_winners(population)["winner"].tolist()
[-1, 0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fullspectrum.sampling import BASE
from fullspectrum.sampling.embedding import (
    EMBEDDING_COLUMNS,
    EMBEDDING_FILE,
    MIN_UMAP_CANDIDATES,
    Embedding,
    embed_population,
    embedding_table,
    load_embedding,
    population_matrix,
    save_embedding,
)
from fullspectrum.spectrum import VECTOR_AXES

__all__ = [
    "EMBEDDING_COLUMNS",
    "EMBEDDING_FILE",
    "MIN_UMAP_CANDIDATES",
    "Embedding",
    "embed_population",
    "embedding_table",
    "layer_winners",
    "load_embedding",
    "network_points",
    "population_matrix",
    "save_embedding",
]


def network_points(population: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: its network-mean ``delta_r, lambda_w, delta_r_imdb, lambda_imsg`` (SPEC §4:
    NaN-skipping unweighted means over layers), mean ``score`` and ``layers_won``; for the 3-D scatter."""
    grouped = population.groupby("candidate", sort=True)
    frame = grouped[[*VECTOR_AXES, "score"]].mean()  # pandas' mean skips NaN
    frame["layers_won"] = grouped["won"].sum().astype(int) if "won" in population else 0
    return frame.reset_index()


def layer_winners(population: pd.DataFrame) -> pd.DataFrame:
    """Per layer (first-seen order): the member that won it (``BASE``: the base mask was kept), its score
    and ``delta_r_imdb``, with the base mask's for comparison."""
    layers = list(dict.fromkeys(population["layer"]))
    won = population[population["won"].astype(bool)].drop_duplicates("layer").set_index("layer")
    base = population[population["candidate"] == BASE].set_index("layer")
    rows = []
    for layer in layers:
        row = {"layer": layer, "winner": int(won.loc[layer, "candidate"]) if layer in won.index else BASE}
        row["score"] = float(won.loc[layer, "score"]) if layer in won.index else np.nan
        row["delta_r_imdb"] = float(won.loc[layer, "delta_r_imdb"]) if layer in won.index else np.nan
        row["base_score"] = float(base.loc[layer, "score"]) if layer in base.index else np.nan
        row["base_delta_r_imdb"] = float(base.loc[layer, "delta_r_imdb"]) if layer in base.index else np.nan
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["layer", "winner", "score", "delta_r_imdb", "base_score", "base_delta_r_imdb"]
    )
