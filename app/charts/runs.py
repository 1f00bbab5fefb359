"""Chart builders for the Runs page: a run's evaluations, and final accuracy against density over runs."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def evals_figure(evals: pd.DataFrame) -> go.Figure:
    """Accuracy and loss of every split (``EVAL_COLUMNS``) over steps, one trace per split and quantity."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    for split in ("train", "val", "test"):
        rows = evals[evals["split"] == split].sort_values("step")
        if rows.empty:
            continue
        mode = "markers" if split == "test" else "lines+markers"
        figure.add_trace(
            go.Scatter(x=rows["step"], y=rows["accuracy"], mode=mode, name=split, legendgroup=split),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=rows["step"], y=rows["loss"], mode=mode, name=split, legendgroup=split, showlegend=False
            ),
            row=1,
            col=2,
        )
    figure.update_xaxes(title_text="step")
    figure.update_yaxes(title_text="accuracy", row=1, col=1)
    figure.update_yaxes(title_text="cross-entropy", row=1, col=2)
    figure.update_layout(height=320, margin={"t": 40, "b": 40})
    return figure


def overview_figure(runs: pd.DataFrame) -> go.Figure:
    """Final accuracy against density, one trace per (data, method) pair (runs without a final accuracy
    are left out): accuracies of different datasets are not comparable, so they are never one trace."""
    shown = runs.dropna(subset=["final_accuracy", "density"])
    figure = go.Figure()
    keys = [shown["data"].fillna("?"), shown["method"].fillna("?")]
    for (data, method), group in shown.groupby(keys, sort=True):
        figure.add_trace(
            go.Scatter(
                x=group["density"],
                y=group["final_accuracy"],
                mode="markers",
                name=f"{data} · {method}",
                text=group["path"].map(lambda p: str(p).rsplit("/", 1)[-1]),
                hovertemplate="%{text}<br>density %{x:g}<br>accuracy %{y:.3f}<extra></extra>",
                marker={"size": 9},
            )
        )
    left_out = len(runs) - len(shown)
    title = "Final test accuracy by density"
    if left_out:
        title += f" · {left_out} run{'s' if left_out != 1 else ''} without a final accuracy not shown"
    figure.update_layout(
        title=title, xaxis_title="density", yaxis_title="final test accuracy", height=320, margin={"t": 40}
    )
    figure.update_xaxes(type="log")
    return figure
