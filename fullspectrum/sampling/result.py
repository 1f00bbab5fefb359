"""The typed result of a PAGS / PEGS sampling (SPEC §5 step 5; FS23).

There is no single winning candidate: the result is the *assembled mask*
(layer ``j`` from the candidate that won layer ``j``), the base mask it started
from, the whole scored population and the winner of every layer. The
population table has the run store's ``POPULATION_COLUMNS``: one row per
candidate and layer, ``candidate = -1`` for the base mask and ``-2`` for the
assembled mask (scored as its own point). The four components of ``u`` are
stored raw, NaN where undefined (``u`` itself sets them to 0, SPEC §4), so
FS23's "NaN counts as −∞" can be read back. ``won`` is true on exactly one row
per layer among the base mask and the candidates, the one whose layer the
assembled mask took; assembled rows have ``won = False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import Tensor

from fullspectrum.runs import POPULATION_COLUMNS
from fullspectrum.sampling.config import SamplingConfig
from fullspectrum.spectrum import SPECTRUM_FIELDS, VECTOR_AXES, full_spectrum_vector

BASE, ASSEMBLED = -1, -2
"""Candidate numbers of the base mask and of the assembled mask in the population table."""
NAMED_MEMBERS = {BASE: "base", ASSEMBLED: "assembled"}
"""The population members that are not drawn candidates, by their one-word names."""


def candidate_label(index: int) -> str:
    """How a reader names population member ``index``.

    >>> candidate_label(BASE), candidate_label(ASSEMBLED), candidate_label(3)
    ('base mask', 'assembled mask', 'candidate 3')
    """
    index = int(index)
    return f"{NAMED_MEMBERS[index]} mask" if index in NAMED_MEMBERS else f"candidate {index}"


def candidate_slug(index: int) -> str:
    """Population member ``index`` in a file or folder name.

    >>> candidate_slug(BASE), candidate_slug(ASSEMBLED), candidate_slug(3)
    ('base', 'assembled', 'candidate3')
    """
    index = int(index)
    return NAMED_MEMBERS.get(index, f"candidate{index}")


@dataclass(frozen=True)
class SamplingResult:
    """What a PAGS / PEGS sampling produced."""

    config: SamplingConfig
    """The resolved config it ran with."""
    base_masks: dict[str, Tensor]
    """Base mask of the generator (parameter name -> bool CPU tensor), in layer order."""
    assembled_masks: dict[str, Tensor]
    """The assembled mask: every layer from its winner; the same per-layer counts as the base mask."""
    population: pd.DataFrame
    """Every scored layer: ``POPULATION_COLUMNS`` (base rows first, candidates by index, assembled last)."""
    winners: dict[str, int]
    """Layer (module path, ``layer1.0.conv1``) -> index of the candidate that won it (-1: base kept)."""
    base_layers: pd.DataFrame
    """Every ``LayerSpectrum`` field plus ``layer`` and ``score`` of the base mask, one row per layer."""
    assembled_layers: pd.DataFrame
    """The same for the assembled mask."""
    state_dict: dict[str, Tensor]
    """The weights the masks were sampled at (initial, or PEGS's warmed-up ones)."""
    warmup_loss: float = float("nan")
    """Last warm-up minibatch loss (NaN for PAGS)."""
    seconds: float = float("nan")
    """Wall time of the population (generation, scoring and selection)."""
    run_dir: Path | None = None
    """The run directory, when written by ``run_pags`` (or read back by ``resume_pags``)."""
    already_finished: bool = False
    """True when ``resume_pags`` found the run finished and read this result back, changing nothing."""

    @property
    def layers_replaced(self) -> int:
        """Layers the assembled mask took from a candidate rather than the base mask."""
        return sum(winner != BASE for winner in self.winners.values())

    def scores(self) -> pd.DataFrame:
        """Per layer: base and assembled score and ``delta_r_imdb``, and the winner."""
        return pd.DataFrame(
            {
                "layer": self.base_layers["layer"],
                "base_score": self.base_layers["score"].to_numpy(),
                "assembled_score": self.assembled_layers["score"].to_numpy(),
                "base_delta_r_imdb": self.base_layers["delta_r_imdb"].to_numpy(),
                "assembled_delta_r_imdb": self.assembled_layers["delta_r_imdb"].to_numpy(),
                "winner": [self.winners[layer] for layer in self.base_layers["layer"]],
            }
        )

    def summary(self) -> dict[str, float | int]:
        """Numbers describing the sampling (what ``run.json["final"]`` holds)."""
        kept = sum(int(mask.sum()) for mask in self.assembled_masks.values())
        total = sum(mask.numel() for mask in self.assembled_masks.values())
        base, assembled = self.base_layers, self.assembled_layers
        population = self.config.population
        return {
            "population": population,
            "layers": len(self.winners),
            "layers_replaced": self.layers_replaced,
            "kept": kept,
            "total": total,
            "density": kept / total if total else 0.0,
            "base_mean_score": _mean(base["score"]),
            "assembled_mean_score": _mean(assembled["score"]),
            "base_mean_delta_r_imdb": _mean(base["delta_r_imdb"]),
            "assembled_mean_delta_r_imdb": _mean(assembled["delta_r_imdb"]),
            "base_mean_delta_r": _mean(base["delta_r"]),
            "assembled_mean_delta_r": _mean(assembled["delta_r"]),
            "seconds": self.seconds,
            "candidates_per_second": population / self.seconds if self.seconds > 0 else float("nan"),
            "warmup_loss": self.warmup_loss,
        }


def _mean(column: pd.Series) -> float:
    values = column.to_numpy(dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def population_rows(candidate: int, rows: dict[str, dict], layer_of: dict[str, str]) -> list[dict]:
    """Population-table rows of one candidate (``rows``: parameter name -> ``u`` fields and ``score``)."""
    return [
        {
            "candidate": candidate,
            "layer": layer_of[name],
            **{key: float(row[key]) for key in VECTOR_AXES},
            "score": float(row["score"]),
            "won": False,
        }
        for name, row in rows.items()
    ]


def population_table(rows: list[dict], winners: dict[str, int]) -> pd.DataFrame:
    """The ``POPULATION_COLUMNS`` table with ``won`` set from ``winners`` (layer -> candidate)."""
    table = pd.DataFrame.from_records(rows, columns=list(POPULATION_COLUMNS))
    table["won"] = [
        candidate != ASSEMBLED and winners.get(layer) == candidate
        for candidate, layer in zip(table["candidate"], table["layer"])
    ]
    return table.astype({"candidate": "int64", "won": "bool"})


def spectrum_frame(layers: list[dict], layer_of: dict[str, str]) -> pd.DataFrame:
    """``layer_table`` rows as a DataFrame with ``layer`` (module path) first and no ``param``."""
    records = [{"layer": layer_of[row["param"]], **row} for row in layers]
    frame = pd.DataFrame.from_records(records)
    return frame.drop(columns=["param"])


def snapshot_rows(layers: pd.DataFrame, start: pd.DataFrame) -> list[dict]:
    """Rows of the run store's ``layers`` table, moving distance measured from ``start`` (the base mask)."""
    rows = []
    for (_, row), (_, origin) in zip(layers.iterrows(), start.iterrows()):
        distance = float(np.linalg.norm(full_spectrum_vector(row) - full_spectrum_vector(origin)))
        record = {"layer": row["layer"], **{field: row[field] for field in SPECTRUM_FIELDS}}
        rows.append({**record, "moving_distance": distance, "exploration_rate": float("nan")})
    return rows
