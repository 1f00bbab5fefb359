"""Glossary page: every symbol and word the app shows, what it means, which direction is better, where it
is defined (generated from ``analysis.glossary``, the table every hover text comes from)."""

from __future__ import annotations

import streamlit as st

from app import glossary

st.title("Glossary")
st.caption(
    "Every symbol of the app, from one table: the papers' symbols (R23, FS23, SPEC §2–5), what each means, "
    "and whether higher or lower is better. Hover texts and column help elsewhere are taken from it."
)
glossary.table()
