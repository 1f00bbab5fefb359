"""Charts of an FS23 reproduction (SPEC §9; ``analysis.reproduction_view``): pure ``DataFrame -> go.Figure``.

* :func:`cost_accuracy_figure`: accuracy (mean with its 95% CI) against the iterations each method cost,
  on a log x axis, one colour per method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from fullspectrum.reproduction.report import METHODS


def cost_accuracy_figure(results: pd.DataFrame, *, title: str = "Cost vs accuracy") -> go.Figure:
    """One point per row of ``results`` (``data``, ``label``, ``method``, ``mean_accuracy``, ``ci95_*``,
    ``iterations``, ``density``, ``n``); error bars are the 95% t intervals (none with one seed)."""
    figure = go.Figure()
    methods = [m for m in METHODS if m in set(results["method"])] + sorted(
        set(results["method"]) - set(METHODS)
    )
    palette = px.colors.qualitative.Dark24
    for i, method in enumerate(methods):
        rows = results[results["method"] == method]
        upper = (rows["ci95_high"] - rows["mean_accuracy"]).to_numpy(float)
        lower = (rows["mean_accuracy"] - rows["ci95_low"]).to_numpy(float)
        figure.add_trace(
            go.Scatter(
                x=rows["iterations"], y=rows["mean_accuracy"], mode="markers", name=method,
                marker={"color": palette[i % len(palette)], "size": 10},
                error_y={"type": "data", "symmetric": False, "array": np.nan_to_num(upper),
                         "arrayminus": np.nan_to_num(lower)},
                customdata=np.stack([rows["label"], rows["density"], rows["n"]], axis=1),
                hovertemplate="%{customdata[0]} at d=%{customdata[1]}<br>accuracy %{y:.4f} (n=%{customdata[2]})"
                "<br>%{x:,.0f} iterations<extra></extra>",
            )
        )  # fmt: skip
    figure.update_xaxes(type="log", title_text="training iterations (finding the mask + final training, log)")
    figure.update_yaxes(title_text="test accuracy (mean, 95% CI over seeds)")
    figure.update_layout(title={"text": title}, height=440)
    return figure
