"""Charts of one metric across runs (``analysis.run_curves``): pure ``DataFrame -> go.Figure`` builders.

* :func:`overlay_figure`: one line per run (smoothed, with the raw curve faint), or per configuration
  the mean with a ± one standard deviation band; linear or log axes.
* :func:`parallel_figure`: density → method → final distance → final accuracy, one line per run,
  coloured by final accuracy (with its colour bar).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from analysis.run_curves import smooth


def _rgba(hex_colour: str, alpha: float) -> str:
    value = hex_colour.lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def overlay_figure(
    curves: pd.DataFrame,
    grouped: pd.DataFrame | None = None,
    *,
    metric: str,
    smoothing: float = 0.0,
    log_x: bool = False,
    log_y: bool = False,
) -> go.Figure:
    """``curves`` (``run``, ``group``, ``step``, ``value``) one line per run; with ``grouped``
    (``analysis.run_curves.group_curves``) one mean line and ± std band per group instead."""
    figure = go.Figure()
    palette = qualitative.Plotly
    if grouped is not None:
        for index, (group, rows) in enumerate(grouped.groupby("group", sort=True)):
            colour = palette[index % len(palette)]
            rows = rows.sort_values("step")
            mean = smooth(rows["mean"], smoothing) if smoothing else rows["mean"].to_numpy()
            upper, lower = mean + rows["std"].to_numpy(), mean - rows["std"].to_numpy()
            figure.add_trace(go.Scatter(x=rows["step"], y=upper, mode="lines", line={"width": 0},
                                        showlegend=False, hoverinfo="skip", legendgroup=group))  # fmt: skip
            figure.add_trace(go.Scatter(x=rows["step"], y=lower, mode="lines", line={"width": 0}, fill="tonexty",
                                        fillcolor=_rgba(colour, 0.2), showlegend=False, hoverinfo="skip",
                                        legendgroup=group))  # fmt: skip
            runs = int(rows["n"].max())
            figure.add_trace(go.Scatter(x=rows["step"], y=mean, mode="lines", name=f"{group} (n={runs})",
                                        line={"color": colour, "width": 2}, legendgroup=group))  # fmt: skip
    else:
        for index, (run, rows) in enumerate(curves.groupby("run", sort=False)):
            colour = palette[index % len(palette)]
            rows = rows.sort_values("step")
            if smoothing:
                figure.add_trace(go.Scatter(x=rows["step"], y=rows["value"], mode="lines", showlegend=False,
                                            line={"color": _rgba(colour, 0.25), "width": 1}, hoverinfo="skip",
                                            legendgroup=run))  # fmt: skip
            values = smooth(rows["value"], smoothing) if smoothing else rows["value"]
            figure.add_trace(go.Scatter(x=rows["step"], y=values, mode="lines", name=str(run),
                                        line={"color": colour, "width": 2}, legendgroup=run))  # fmt: skip
    title = f"{metric} across runs" + (f" · smoothing {smoothing:g}" if smoothing else "")
    if grouped is not None:
        title += " · mean ± 1 std over seeds"
    figure.update_layout(title={"text": title}, height=460, margin={"t": 50},
                         xaxis={"title": {"text": "step"}, "type": "log" if log_x else "linear"},
                         yaxis={"title": {"text": metric}, "type": "log" if log_y else "linear"})  # fmt: skip
    return figure


def parallel_figure(table: pd.DataFrame) -> go.Figure:
    """Parallel coordinates of ``analysis.run_curves.parallel_table``: density → method → final ℓ2-moving
    distance → final accuracy."""
    methods = table.drop_duplicates("method_code").sort_values("method_code")
    dimensions = [
        {"label": "density", "values": table["density"]},
        {"label": "method", "values": table["method_code"], "tickvals": methods["method_code"].tolist(),
         "ticktext": methods["method"].tolist()},
        {"label": "final ℓ2-moving distance", "values": table["final_distance"]},
        {"label": "final test accuracy", "values": table["final_accuracy"]},
    ]  # fmt: skip
    figure = go.Figure(
        go.Parcoords(
            line={"color": table["final_accuracy"], "colorscale": "Viridis", "showscale": True,
                  "colorbar": {"title": {"text": "final accuracy"}}},
            dimensions=dimensions,
        )
    )  # fmt: skip
    figure.update_layout(
        title={"text": f"{len(table)} runs: density → method → distance → accuracy"}, height=420
    )
    return figure
