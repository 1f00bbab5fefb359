"""The glossary in the app: hover texts, column help and expanders, all from ``analysis.glossary``."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import streamlit as st

from analysis.glossary import help_text, rows


def column_help(columns: Iterable[str]) -> dict:
    """``st.dataframe`` column configs whose hover help is the glossary's text (columns it knows)."""
    return {column: st.column_config.Column(help=text) for column in columns if (text := help_text(column))}


def expander(names: Iterable[str], *, label: str = "What do these symbols mean?") -> None:
    """A collapsed expander with the glossary entries ``names``."""
    with st.expander(label, expanded=False):
        table(names)


def table(names: Iterable[str] | None = None) -> None:
    """The glossary (or the entries ``names``) as a table."""
    st.dataframe(
        pd.DataFrame(rows(list(names) if names is not None else None)), hide_index=True, width="stretch"
    )
