"""Charts of a two-mask comparison (``analysis.compare``; SPEC §2–3, §7): pure ``DataFrame -> go.Figure``.

* :func:`difference_bars`: per layer, B − A for a few full-spectrum metrics.
* :func:`iou_bars`: per layer, the overlap of the two masks' kept weights.
* :func:`graphon_figure`: the degree-sorted block adjacency (G25's graphon
  estimate) of A and B side by side, and their difference.
* :func:`composition_figure`: the degree classes of one layer in A and in B
  (size per degree, qualifying classes solid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fullspectrum.spectrum import metric_label

COLOURS = {"A": "#1e88e5", "B": "#d81b60"}


def difference_bars(long: pd.DataFrame, metrics: Sequence[str] | None = None) -> go.Figure:
    """One panel per metric: bars of B − A per layer (``long``: ``MaskComparison.long()``).

    A layer where the metric is undefined in A or B has no bar; the panel title counts them.
    """
    metrics = list(metrics or dict.fromkeys(long["metric"]))
    titles = []
    for metric in metrics:
        rows = long[long["metric"] == metric]
        missing = int(rows["delta"].isna().sum())
        titles.append(
            f"{metric_label(metric)}: B − A" + (f" ({missing} layers undefined)" if missing else "")
        )
    figure = make_subplots(
        rows=len(metrics), cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.08
    )
    for row, metric in enumerate(metrics, start=1):
        data = long[long["metric"] == metric]
        delta = data["delta"].to_numpy(dtype=float)
        colours = [COLOURS["B"] if d > 0 else COLOURS["A"] for d in np.nan_to_num(delta)]
        figure.add_trace(
            go.Bar(
                x=data["layer"], y=delta, name=metric_label(metric), marker={"color": colours}, showlegend=False,
                customdata=np.stack([data["a"], data["b"]], axis=1),
                hovertemplate="%{x}<br>A %{customdata[0]:.4g}<br>B %{customdata[1]:.4g}<br>B − A %{y:.4g}",
            ),
            row=row, col=1,
        )  # fmt: skip
        figure.update_yaxes(title_text=f"Δ {metric_label(metric)}", row=row, col=1)
    figure.update_xaxes(title_text="layer", row=len(metrics), col=1)
    figure.update_layout(
        title={"text": "Per-layer differences (pink: higher in B, blue: higher in A)"},
        height=max(300, 200 * len(metrics)),
    )
    return figure


def iou_bars(table: pd.DataFrame) -> go.Figure:
    """Per layer: IoU of the kept weights of A and B (1 = the same mask)."""
    figure = go.Figure(
        go.Bar(
            x=table["layer"], y=table["iou"], name="IoU", marker={"color": "#546e7a"},
            hovertemplate="%{x}<br>IoU %{y:.3f}<extra></extra>",
        )
    )  # fmt: skip
    figure.update_layout(
        title={"text": "Mask overlap per layer: |A ∧ B| / |A ∨ B|"},
        xaxis={"title": {"text": "layer"}},
        yaxis={"title": {"text": "IoU"}, "range": [0, 1.05]},
        height=320,
    )
    return figure


def graphon_figure(values_a: np.ndarray, values_b: np.ndarray, *, layer: str = "layer") -> go.Figure:
    """G25 graphon estimates (block densities, rows: outputs, columns: inputs, by degree) of A, B and B − A."""
    values_a, values_b = np.asarray(values_a, float), np.asarray(values_b, float)
    same = values_a.shape == values_b.shape
    titles = ("A", "B", "B − A") if same else ("A", "B")
    figure = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.06)
    for col, (values, label) in enumerate(((values_a, "A"), (values_b, "B")), start=1):
        figure.add_trace(
            go.Heatmap(
                z=values, zmin=0, zmax=1, colorscale="Viridis", name=label, showscale=col == 1,
                colorbar={"title": {"text": "edge density"}, "x": -0.12},
                hovertemplate="output block %{y}<br>input block %{x}<br>density %{z:.3f}<extra>" + label + "</extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
    if same:
        limit = float(np.nanmax(np.abs(values_b - values_a))) or 1.0
        figure.add_trace(
            go.Heatmap(
                z=values_b - values_a, zmin=-limit, zmax=limit, colorscale="RdBu_r", name="B − A",
                colorbar={"title": {"text": "B − A"}},
                hovertemplate="output block %{y}<br>input block %{x}<br>B − A %{z:.3f}<extra></extra>",
            ),
            row=1, col=3,
        )  # fmt: skip
    for col in range(1, len(titles) + 1):
        figure.update_xaxes(title_text="input block (by degree ↓)", row=1, col=col)
        figure.update_yaxes(title_text="output block (by degree ↓)", autorange="reversed", row=1, col=col)
    shape = " × ".join(str(s) for s in values_a.shape)
    figure.update_layout(
        title={"text": f"{layer}: degree-sorted adjacency, {shape} blocks (graphon estimate, G25)"},
        height=420,
    )
    return figure


def composition_figure(classes: pd.DataFrame, layer: str) -> go.Figure:
    """Input units per degree class of one layer in A and B (``MaskComparison.classes``); faded = not qualifying."""
    figure = go.Figure()
    rows = classes[classes["layer"] == layer]
    for label in ("A", "B"):
        data = rows[rows["mask"] == label].sort_values("d_c")
        qualifies = data["qualifies"].astype(bool).to_numpy()
        figure.add_trace(
            go.Bar(
                x=data["d_c"], y=data["n_c"], name=f"{label} ({int(qualifies.sum())} qualifying of {len(data)})",
                marker={"color": COLOURS[label], "opacity": [1.0 if q else 0.35 for q in qualifies]},
                customdata=np.stack([data["delta_r_c"], data["f_c"]], axis=1) if len(data) else None,
                hovertemplate="d_c %{x}: %{y} input units<br>Δr_c %{customdata[0]:.3g}, f_c %{customdata[1]:.3g}",
            )
        )  # fmt: skip
    figure.update_layout(
        barmode="group",
        title={"text": f"{layer}: degree classes (regular subgraphs); faded bars do not qualify"},
        xaxis={"title": {"text": "class degree d_c"}},
        yaxis={"title": {"text": "input units n_c"}},
        height=340,
    )
    return figure
