"""Charts of the unrolled view (MGE24, SPEC §7; ``analysis.unrolled_view``): pure ``DataFrame -> go.Figure``.

* :func:`effective_bars`: per layer, kept weights stacked as effective and ineffective.
* :func:`live_flow`: units per partition from the input to the output, live ones and the rest, as a
  Sankey whose links are the live units each partition hands on.
* :func:`predictor_figure`: cross-validated R² and Spearman ρ per feature set, with 95% intervals.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLOURS = {"effective": "#2e7d32", "ineffective": "#e53935", "live": "#1e88e5", "dead": "#bdbdbd"}


def effective_bars(layers: pd.DataFrame) -> go.Figure:
    """Kept weights per layer (``UnrolledView.layers``) stacked: effective (on an input → output path) and not."""
    figure = go.Figure()
    for part in ("effective", "ineffective"):
        share = layers[part] / layers["kept"].where(layers["kept"] > 0)
        figure.add_trace(
            go.Bar(
                x=layers["layer"], y=layers[part], name=f"{part} weights", marker_color=COLOURS[part],
                customdata=share.fillna(0).to_numpy(),
                hovertemplate="%{x}<br>" + part + " %{y:,} (%{customdata:.1%} of kept)<extra></extra>",
            )
        )  # fmt: skip
    figure.update_layout(
        barmode="stack",
        # short enough for half the page (a longer title was cut off); the subtitle says what "ineffective" is
        title={
            "text": "Kept weights per layer: effective vs ineffective",
            "subtitle": {"text": "ineffective: on no path from the input to the output"},
        },
        xaxis_title="layer",
        yaxis_title="kept weights",
        height=380,
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def live_flow(partitions: pd.DataFrame) -> go.Figure:
    """Units of each partition (``UnrolledView.partitions``), input first: live units flow on to the next
    partition, the others end in a grey "not live" node under it."""
    names = [f"{row.partition} ({row.live:,} / {row.units:,} live)" for row in partitions.itertuples()]
    n = len(names)
    labels = names + [f"{row.partition}: not live" for row in partitions.itertuples()]
    sources, targets, values, colours = [], [], [], []
    for i, row in enumerate(partitions.itertuples()):
        if i + 1 < n and row.live:
            (
                sources.append(i),
                targets.append(i + 1),
                values.append(int(row.live)),
                colours.append(COLOURS["live"]),
            )
        if row.units - row.live:
            sources.append(i), targets.append(n + i), values.append(int(row.units - row.live))
            colours.append(COLOURS["dead"])
    node_colours = [COLOURS["live"]] * n + [COLOURS["dead"]] * n
    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "color": node_colours, "pad": 12},
            link={"source": sources, "target": targets, "value": values, "color": colours,
                  "hovertemplate": "%{value:,} units<extra></extra>"},
        )
    )  # fmt: skip
    figure.update_layout(
        title={
            "text": "Live units per partition, input → output",
            "subtitle": {"text": "live: reached from the input and reaching the output"},
        },
        height=380,
        margin={"r": 140},  # room for the output partition's label, drawn right of its node
    )
    return figure


def predictor_figure(scores: pd.DataFrame) -> go.Figure:
    """R² and Spearman ρ of each feature set (``PredictorStudy.table()``), density-only baseline first."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("cross-validated R²", "Spearman ρ"))
    for col, (value, low, high) in enumerate(
        (("r2", "r2_low", "r2_high"), ("spearman", "spearman_low", "spearman_high")), start=1
    ):
        colours = ["#757575" if name == "density" else "#1e88e5" for name in scores["feature_set"]]
        figure.add_trace(
            go.Bar(
                x=scores["feature_set"], y=scores[value], marker_color=colours, showlegend=False,
                error_y={"type": "data", "symmetric": False, "array": scores[high] - scores[value],
                         "arrayminus": scores[value] - scores[low]},
                hovertemplate="%{x}: %{y:.3f}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        figure.update_xaxes(title_text="feature set (grey: density-only baseline)", row=1, col=col)
    figure.update_layout(
        height=360, title={"text": "Which metrics predict accuracy (95% bootstrap intervals)"}
    )
    return figure
