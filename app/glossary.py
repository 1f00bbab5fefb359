"""The glossary in the app: hover texts, column help and expanders, all from ``analysis.glossary``."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import streamlit as st

from analysis.glossary import help_text, rows

SIDES = (("_delta", "B − A of: "), ("_a", "Mask A's value of: "), ("_b", "Mask B's value of: "),
         ("base_", "The base mask's value of: "))  # fmt: skip
"""Column name affixes of comparison tables and how their help starts."""


def column_text(column: str) -> str:
    """The glossary's text for ``column``, also for ``<metric>_a``/``_b``/``_delta`` and ``base_<metric>``."""
    text = help_text(column)
    if text:
        return text
    for affix, words in SIDES:
        base = column.removesuffix(affix) if affix.startswith("_") else column.removeprefix(affix)
        if base != column and (text := help_text(base)):
            return words + text
    return ""


def column_help(columns: Iterable[str]) -> dict:
    """``st.dataframe`` column configs whose hover help is the glossary's text (columns it knows)."""
    return {column: st.column_config.Column(help=text) for column in columns if (text := column_text(column))}


def expander(names: Iterable[str], *, label: str = "What do these symbols mean?") -> None:
    """A collapsed expander with the glossary entries ``names``."""
    with st.expander(label, expanded=False):
        table(names)


def table(names: Iterable[str] | None = None) -> None:
    """The glossary (or the entries ``names``) as a table."""
    st.dataframe(
        pd.DataFrame(rows(list(names) if names is not None else None)), hide_index=True, width="stretch"
    )
