"""Entry point of the fullspectrum lab: navigation, the shared sidebar, then the page.

Run with ``fullspectrum app``, which serves it through ``app/server.py`` (the
Host allow-list); ``streamlit run app/streamlit_app.py`` serves it without. Pages
are thin files in ``app/app_pages/``; a page whose file is not there yet is left
out of the navigation rather than breaking the app.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `from app import ...` works however streamlit was started
    sys.path.insert(0, str(HERE.parent))

from app import cache, widgets  # noqa: E402
from fullspectrum.runs.uploads import UPLOADS_DIR  # noqa: E402

# (file, title, icon): the pages, in menu order
PAGES = (
    ("runs.py", "Runs", ":material/folder_open:"),
    ("trajectories.py", "Trajectories", ":material/timeline:"),
    ("compare_runs.py", "Compare runs", ":material/stacked_line_chart:"),
    ("graph_inspector.py", "Graph inspector", ":material/hub:"),
    ("pags_lab.py", "PAGS lab", ":material/science:"),
    ("compare_masks.py", "Compare masks", ":material/compare:"),
    ("unrolled_view.py", "Unrolled view", ":material/account_tree:"),
    ("graphon_ntk.py", "Graphon & NTK", ":material/grid_on:"),
    ("reproductions.py", "Reproductions", ":material/table_chart:"),
    ("live_training.py", "Live training", ":material/play_circle:"),
    ("glossary.py", "Glossary", ":material/menu_book:"),
)


def main() -> None:
    st.set_page_config(page_title="fullspectrum", page_icon=":material/hub:", layout="wide")
    pages = [
        st.Page(str(HERE / "app_pages" / file), title=title, icon=icon, default=(file == "runs.py"))
        for file, title, icon in PAGES
        if (HERE / "app_pages" / file).is_file()
    ]
    navigation = st.navigation(pages)
    cache.clean_uploads(str(cache.workspace_root() / UPLOADS_DIR))  # what dead sessions left a day ago
    widgets.sidebar()
    navigation.run()


main()
