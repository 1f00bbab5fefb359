"""How the full-spectrum metrics are named to a reader: the papers' symbols and chart axis titles.

The columns of the engine (``delta_r``, ``lambda_w``, ...) are the names code
uses; a reader sees the symbols of R23 and FS23 (``Δr``, ``λ``, ``Δr_imdb``,
``λ_imsg``, ``Δs``; SPEC §2) and, on a chart axis, the symbol with a short
reading of it. Comparison summaries, chart titles, axis titles and metric tiles
all take their words from here, so every place spells a metric the same way.

>>> metric_symbol("delta_r_imdb")
'Δr_imdb'
>>> axis_title("lambda_w")
'λ (weighted spectral gap)'
>>> metric_label("dead_right"), metric_label("density")  # a count's words; an unnamed column stays as it is
('dead output units', 'density')
>>> ", ".join(metric_symbol(axis) for axis in ("delta_r", "lambda_w", "delta_r_imdb", "lambda_imsg"))
'Δr, λ, Δr_imdb, λ_imsg'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

SYMBOLS: Mapping[str, str] = MappingProxyType(
    {
        "delta_r": "Δr",
        "lambda_w": "λ",
        "delta_r_imdb": "Δr_imdb",
        "lambda_imsg": "λ_imsg",
        "delta_s": "Δs",
    }
)
"""Metric column -> the papers' symbol (R23 "Δs"; FS23 "Δr", "λ", "Δr_imdb"; SPEC §2)."""

AXIS_TITLES: Mapping[str, str] = MappingProxyType(
    {
        "delta_r": "Δr (Ramanujan gap)",
        "lambda_w": "λ (weighted spectral gap)",
        "delta_r_imdb": "Δr_imdb (regular subgraphs)",
        "lambda_imsg": "λ_imsg (weighted, regular subgraphs)",
        "delta_s": "Δs (canonical gap)",
    }
)
"""Metric column -> chart axis title: the symbol and what it measures."""

COUNT_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "dead_left": "dead input units",
        "dead_right": "dead output units",
        "dead_in_channels": "dead input channels",
        "n_classes": "qualifying classes",
    }
)
"""Count column -> its words (counts have no symbol in the papers)."""


def metric_symbol(name: str) -> str:
    """The papers' symbol of metric column ``name``, or ``name`` itself when it has none."""
    return SYMBOLS.get(name, name)


def axis_title(name: str) -> str:
    """The axis title of metric column ``name`` (its symbol when no longer title is defined)."""
    return AXIS_TITLES.get(name, metric_symbol(name))


def metric_label(name: str) -> str:
    """How a table or chart names column ``name``: its symbol, else its words, else the name."""
    return SYMBOLS.get(name) or COUNT_LABELS.get(name, name)
