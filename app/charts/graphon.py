"""Charts of G25's graphon view and NTK spectra (SPEC §7b; ``analysis.graphon_studies``): pure builders.

* :func:`fingerprint_figure`: one heat map per layer of a fingerprint, block densities with a colour bar.
* :func:`width_curves_figure`: successive-width distance per generator, one panel per layer.
* :func:`spectra_figure`: NTK eigenvalue shares ``λ_k / Σλ`` on log–log axes, one line per mask.
* :func:`trainability_figure`: early descent against an NTK concentration measure, one colour per generator.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = px.colors.qualitative.Plotly


def _colour(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def fingerprint_figure(layers: Mapping[str, np.ndarray], *, title: str) -> go.Figure:
    """Block densities per layer (rows: output blocks, columns: input blocks, both by degree ↓), one shared
    0–1 colour scale with its bar."""
    names = list(layers)
    figure = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.05)
    for col, name in enumerate(names, start=1):
        figure.add_trace(
            go.Heatmap(
                z=np.asarray(layers[name], float), zmin=0, zmax=1, colorscale="Viridis", showscale=col == 1,
                colorbar={"title": {"text": "edge density"}},
                hovertemplate="output block %{y}<br>input block %{x}<br>density %{z:.3f}<extra>" + name + "</extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        figure.update_xaxes(title_text="input block (degree ↓)", row=1, col=col)
        figure.update_yaxes(title_text="output block (degree ↓)" if col == 1 else None, autorange="reversed",
                            row=1, col=col)  # fmt: skip
    figure.update_layout(title={"text": title}, height=400)
    return figure


def width_curves_figure(curves: pd.DataFrame, *, kind: str = "successive") -> go.Figure:
    """Distance between the fingerprints of a width and the next (or the widest), per generator, per layer."""
    rows = curves[curves["kind"] == kind]
    layers = list(dict.fromkeys(rows["layer"]))
    colours = _colour(list(dict.fromkeys(rows["generator"])))
    figure = make_subplots(rows=1, cols=len(layers), subplot_titles=layers, shared_yaxes=True)
    for col, layer in enumerate(layers, start=1):
        for generator, group in rows[rows["layer"] == layer].groupby("generator", sort=False):
            group = group.sort_values("width")
            figure.add_trace(
                go.Scatter(
                    x=group["width"], y=group["distance"], mode="lines+markers", name=generator,
                    legendgroup=generator, showlegend=col == 1, line={"color": colours[generator]},
                    customdata=np.stack([group["other"], group["density"]], axis=1),
                    hovertemplate=generator + ": width %{x} → %{customdata[0]}<br>distance %{y:.4f}"
                    "<br>layer density %{customdata[1]:.3f}<extra></extra>",
                ),
                row=1, col=col,
            )  # fmt: skip
        figure.update_xaxes(type="log", title_text="hidden width n", row=1, col=col)
    against = "the next width" if kind == "successive" else "the widest"
    figure.update_yaxes(title_text=f"mean |Δ block density| to {against}", row=1, col=1)
    figure.update_layout(
        title={"text": "Width convergence: G25's hypothesis says every curve falls as the width grows"},
        height=420,
    )
    return figure


def spectra_figure(shares: pd.DataFrame, *, group: str = "mask") -> go.Figure:
    """``λ_k / Σλ`` against ``k`` on log–log axes, one line per ``group`` value (``mask`` or ``generator``)."""
    figure = go.Figure()
    colours = _colour(list(dict.fromkeys(shares[group])))
    for name, rows in shares.groupby(group, sort=False):
        rows = rows[rows["share"] > 0]
        figure.add_trace(
            go.Scatter(
                x=rows["k"], y=rows["share"], mode="lines+markers", name=str(name),
                line={"color": colours[name]}, marker={"size": 4},
                hovertemplate=str(name) + ": λ_%{x} / Σλ = %{y:.3g}<extra></extra>",
            )
        )  # fmt: skip
    figure.update_xaxes(type="log", title_text="eigenvalue index k")
    figure.update_yaxes(type="log", title_text="λ_k / Σλ (share of the trace)", exponentformat="power")
    figure.update_layout(title={"text": "NTK eigenvalue spectrum (normalised, log–log)"}, height=420)
    return figure


def trainability_figure(runs: pd.DataFrame, *, measure: str = "top5_energy") -> go.Figure:
    """Early descent against ``measure`` per run (kind ``generator``); collapsed runs hollow."""
    own = runs[runs["kind"] == "generator"]
    colours = _colour(list(dict.fromkeys(own["generator"])))
    figure = go.Figure()
    for generator, rows in own.groupby("generator", sort=False):
        figure.add_trace(
            go.Scatter(
                x=rows[measure], y=rows["descent"], mode="markers", name=generator,
                marker={"color": colours[generator], "size": 9,
                        "symbol": ["circle-open" if c else "circle" for c in rows["collapsed"]]},
                customdata=rows["seed"],
                hovertemplate=generator + " seed %{customdata}<br>" + measure + " %{x:.4g}<br>descent %{y:.3f}"
                "<extra></extra>",
            )
        )  # fmt: skip
    figure.update_layout(
        title={"text": f"Early descent vs {measure} at initialisation (hollow: a layer kept no weight)"},
        xaxis_title=measure, yaxis_title="early descent (loss at 0 − mean early loss)", height=420,
    )  # fmt: skip
    return figure


def loss_curves_figure(curves: pd.DataFrame) -> go.Figure:
    """Early validation loss per generator (``generator, kind, seed, step, loss``; kind ``generator``), the
    mean over seeds with the seeds' range shaded."""
    own = curves[curves["kind"] == "generator"]
    colours = _colour(list(dict.fromkeys(own["generator"])))
    figure = go.Figure()
    for generator, rows in own.groupby("generator", sort=False):
        stats = rows.groupby("step")["loss"].agg(["mean", "min", "max"]).reset_index()
        colour = colours[generator]
        figure.add_trace(
            go.Scatter(
                x=np.concatenate([stats["step"], stats["step"][::-1]]),
                y=np.concatenate([stats["max"], stats["min"][::-1]]),
                fill="toself", fillcolor=colour, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                legendgroup=generator, showlegend=False,
            )
        )  # fmt: skip
        figure.add_trace(
            go.Scatter(
                x=stats["step"], y=stats["mean"], mode="lines", name=generator, legendgroup=generator,
                line={"color": colour}, hovertemplate=generator + ": step %{x}, loss %{y:.3f}<extra></extra>",
            )
        )  # fmt: skip
    figure.update_layout(
        title={"text": "Early validation loss of static sparse training (mean over seeds, range shaded)"},
        xaxis_title="iteration", yaxis_title="validation loss", height=400,
    )  # fmt: skip
    return figure
