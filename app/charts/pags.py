"""Charts of a PAGS / PEGS population (SPEC §5; FS23): pure ``DataFrame -> go.Figure`` builders.

* :func:`population_3d_figure`: every candidate's network-mean full-spectrum
  coordinate ``(Δr, λ, Δr_imdb)``, the base mask and the assembled mask highlighted.
* :func:`embedding_figure`: the 2-D UMAP (or PCA) map of the per-layer vectors,
  titled with the method that drew it, base and assembled highlighted.
* :func:`accuracy_figure`: accuracy curves of briefly trained masks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fullspectrum.sampling import ASSEMBLED, BASE, candidate_label
from fullspectrum.spectrum import PLOT_AXES, metric_symbol

AXIS_TITLES = tuple(f"mean {metric_symbol(name)}" for name in PLOT_AXES)
"""Titles of the 3-D population chart's axes (network means of :data:`PLOT_AXES`)."""
HIGHLIGHTS = {
    BASE: (candidate_label(BASE), "#f4511e", "diamond"),
    ASSEMBLED: (candidate_label(ASSEMBLED), "#43a047", "square"),
}


def _candidates(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["candidate"] >= 0]


def population_3d_figure(points: pd.DataFrame) -> go.Figure:
    """``points``: ``analysis.embedding.network_points`` (candidate, delta_r, lambda_w, delta_r_imdb, ...).

    Points with a NaN coordinate are not drawn; the title says how many.
    """
    finite = np.isfinite(points[list(PLOT_AXES)].to_numpy(dtype=float)).all(axis=1)
    dropped = int((~finite).sum())
    shown = points[finite]
    figure = go.Figure()
    candidates = _candidates(shown)
    figure.add_trace(
        go.Scatter3d(
            x=candidates[PLOT_AXES[0]], y=candidates[PLOT_AXES[1]], z=candidates[PLOT_AXES[2]], mode="markers",
            name=f"candidates ({len(candidates)})",
            marker={"size": 3, "color": candidates["score"] if "score" in candidates else "#90a4ae",
                    "colorscale": "Blues", "opacity": 0.8, "showscale": "score" in candidates,
                    "colorbar": {"title": {"text": "PAGS score ‖u‖<br>(network mean)"}}},
            text=[f"candidate {int(c)}" for c in candidates["candidate"]], hoverinfo="text",
            customdata=candidates["candidate"],
        )
    )  # fmt: skip
    for candidate, (label, colour, symbol) in HIGHLIGHTS.items():
        row = shown[shown["candidate"] == candidate]
        if len(row):
            figure.add_trace(
                go.Scatter3d(
                    x=row[PLOT_AXES[0]], y=row[PLOT_AXES[1]], z=row[PLOT_AXES[2]], mode="markers", name=label,
                    marker={"size": 8, "color": colour, "symbol": symbol, "line": {"width": 1, "color": "black"}},
                    text=[label], hoverinfo="text", customdata=row["candidate"],
                )
            )  # fmt: skip
    title = "Population: network-mean full-spectrum coordinates"
    if dropped:
        title += f"<br><sup>{dropped} masks with an undefined coordinate not drawn</sup>"
    figure.update_layout(
        title={"text": title},
        scene={f"{axis}axis": {"title": {"text": title}} for axis, title in zip("xyz", AXIS_TITLES)},
        height=560,
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
    )
    return figure


def embedding_figure(frame: pd.DataFrame, method: str, note: str = "") -> go.Figure:
    """``frame``: candidate, x, y (``analysis.embedding``); ``method`` "umap" or "pca" titles the chart."""
    label = {"umap": "UMAP", "pca": "PCA"}.get(method, method.upper())
    figure = go.Figure()
    candidates = _candidates(frame)
    figure.add_trace(
        go.Scatter(
            x=candidates["x"], y=candidates["y"], mode="markers", name=f"candidates ({len(candidates)})",
            marker={"size": 7, "color": "#78909c"}, text=[f"candidate {int(c)}" for c in candidates["candidate"]],
            hoverinfo="text", customdata=candidates["candidate"],
        )
    )  # fmt: skip
    for candidate, (name, colour, symbol) in HIGHLIGHTS.items():
        row = frame[frame["candidate"] == candidate]
        if len(row):
            figure.add_trace(
                go.Scatter(
                    x=row["x"], y=row["y"], mode="markers", name=name, text=[name], hoverinfo="text",
                    marker={"size": 14, "color": colour, "symbol": symbol, "line": {"width": 1, "color": "black"}},
                    customdata=row["candidate"],
                )
            )  # fmt: skip
    title = f"{label} of the per-layer vectors u"
    if note:
        title += f"<br><sup>{note}</sup>"
    figure.update_layout(
        title={"text": title},
        xaxis={"title": {"text": f"{label} 1"}},
        yaxis={"title": {"text": f"{label} 2"}},
        height=480,
    )
    return figure


def accuracy_figure(curves: Mapping[str, pd.DataFrame], *, split: str = "val") -> go.Figure:
    """Accuracy over steps of each trained mask (``curves``: label -> ``evals`` table)."""
    figure = go.Figure()
    for label, evals in curves.items():
        data = evals[evals["split"] == split].sort_values("step")
        figure.add_trace(go.Scatter(x=data["step"], y=data["accuracy"], mode="lines+markers", name=label))
    figure.update_layout(
        title={"text": f"Brief static training: {split} accuracy"},
        xaxis={"title": {"text": "step"}},
        yaxis={"title": {"text": "accuracy"}},
        height=360,
    )
    return figure
