"""Downloads: every chart as PNG or SVG and every table as CSV (the habit of the trackers researchers use).

``chart`` draws a Plotly figure whose toolbar camera saves a PNG named after the chart (the browser
renders it, nothing runs on the server), plus an "Export" popover whose PNG and SVG buttons render
the figure on the server with ``kaleido``. kaleido 1.x starts Chromium and takes seconds per image,
so an image is rendered only when its button is clicked (a deferred download), never on a rerun, and
cached by the figure's JSON. Without kaleido or Chromium the popover says so in one line.

``table`` draws a DataFrame with a CSV download of the same rows and columns.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
from streamlit.runtime.media_file_manager import MediaFileManager

IMAGE_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
"""Server-side export formats and their MIME types."""
DEFERRED_DOWNLOADS = hasattr(MediaFileManager, "add_deferred")
"""Whether this Streamlit takes a callable as ``st.download_button`` data (rendered on click); older ones
get a "Render" button first."""
PNG_SCALE = 2  # twice the on-screen pixels: sharp on slides and high-density screens


def file_stem(name: str) -> str:
    """A file-name-safe version of a chart or table name: ``"Trajectory · run 3"`` -> ``"trajectory_run_3"``."""
    stem = re.sub(r"[^0-9A-Za-z._-]+", "_", name.strip()).strip("._-").lower()
    return stem or "export"


def image_export_problem() -> str | None:
    """Why server-side image export cannot run here (one line), or ``None`` when kaleido and a Chromium exist."""
    if importlib.util.find_spec("kaleido") is None:
        return "PNG/SVG export on the server needs the `kaleido` package (`pip install kaleido`)."
    if _find_chromium() is None:
        return (
            "PNG/SVG export on the server needs Chromium or Chrome (e.g. `apt install chromium`, or "
            "`kaleido_get_chrome`); the camera in the chart's toolbar still saves a PNG."
        )
    return None


@functools.cache  # once per server process: every chart asks on every rerun
def _find_chromium() -> str | None:
    """The Chromium kaleido would start: choreographer's own search (its download, then PATH and the usual
    places), or a plain PATH search where that private API has changed."""
    try:
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False)
    except (ImportError, AttributeError, TypeError):
        names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
        return next((path for path in map(shutil.which, names) if path), None)


@st.cache_data(max_entries=16, show_spinner=False)
def figure_image(figure_json: str, image_format: str) -> bytes:
    """The figure (its Plotly JSON, the cache key) rendered by kaleido as ``png`` or ``svg`` bytes."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {image_format!r}; choose from {sorted(IMAGE_FORMATS)}")
    figure = pio.from_json(figure_json)
    scale = PNG_SCALE if image_format == "png" else 1
    return pio.to_image(figure, format=image_format, scale=scale)


def _renderer(figure: go.Figure, image_format: str):
    """A no-argument callable for a deferred download: the figure's JSON is taken only on click."""
    return lambda: figure_image(figure.to_json(), image_format)


def chart(figure: go.Figure, name: str, *, container: Any = None, **plotly_chart_kwargs: Any) -> Any:
    """``st.plotly_chart`` (in ``container``, default the page) whose toolbar saves ``<name>.png``, followed
    by an "Export" popover rendering PNG/SVG on the server on demand. Returns what ``st.plotly_chart`` does."""
    where = container if container is not None else st
    stem = file_stem(name)
    config = dict(plotly_chart_kwargs.pop("config", None) or {})
    config.setdefault("displaylogo", False)
    config["toImageButtonOptions"] = {
        "format": "png", "filename": stem, "scale": PNG_SCALE, **config.get("toImageButtonOptions", {}),
    }  # fmt: skip
    shown = where.plotly_chart(figure, config=config, **plotly_chart_kwargs)
    key = f"export_{plotly_chart_kwargs.get('key') or stem}"
    with where.popover("Export", icon=":material/download:", type="tertiary", key=f"{key}_popover"):
        problem = image_export_problem()
        if problem:
            st.caption(problem)
        elif DEFERRED_DOWNLOADS:
            st.caption("Rendered on the server when clicked (a few seconds).")
            for image_format, mime in IMAGE_FORMATS.items():
                st.download_button(
                    image_format.upper(),
                    data=_renderer(figure, image_format),
                    file_name=f"{stem}.{image_format}",
                    mime=mime,
                    key=f"{key}_{image_format}",
                    on_click="ignore",
                )
        elif st.button("Render PNG and SVG (a few seconds)", key=f"{key}_render"):
            for image_format, mime in IMAGE_FORMATS.items():  # a Streamlit without deferred downloads
                st.download_button(
                    image_format.upper(),
                    data=figure_image(figure.to_json(), image_format),
                    file_name=f"{stem}.{image_format}",
                    mime=mime,
                    key=f"{key}_{image_format}",
                    on_click="ignore",
                )
    return shown


def table_csv(frame: pd.DataFrame, *, hide_index: bool | None = None) -> bytes:
    """The CSV of ``frame`` as shown: its index is a column unless hidden or a plain 0..n-1 range."""
    plain_index = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    keep_index = not hide_index and not plain_index
    return frame.to_csv(index=keep_index).encode("utf-8")


def table(frame: Any, name: str, *, container: Any = None, **dataframe_kwargs: Any) -> Any:
    """``st.dataframe`` (in ``container``, default the page) with a ``<name>.csv`` download below it.
    ``frame`` is a DataFrame or a pandas Styler (its data is exported). Returns what ``st.dataframe`` does."""
    where = container if container is not None else st
    data = frame.data if hasattr(frame, "data") and isinstance(frame.data, pd.DataFrame) else frame
    shown = where.dataframe(frame, **dataframe_kwargs)
    stem = file_stem(name)
    where.download_button(
        "CSV",
        data=table_csv(pd.DataFrame(data), hide_index=dataframe_kwargs.get("hide_index")),
        file_name=f"{stem}.csv",
        mime="text/csv",
        key=f"export_{dataframe_kwargs.get('key') or stem}_csv",
        icon=":material/download:",
        type="tertiary",
        on_click="ignore",
    )
    return shown
