"""Chart builders for full-spectrum trajectories (FS23 §4, Fig. 3; SPEC §4). Pure: DataFrames in, Figures out.

* :func:`trajectory_figure`: each layer's 3-D coordinate ``(Δr, λ, Δr_imdb)``
  over training, lines with markers coloured by step, one highlighted marker
  per layer at a chosen step, the network-mean trajectory; points with a NaN
  coordinate are not drawn and the title says how many were left out.
* :func:`metrics_figure`: ℓ2-moving distance, exploration rate and accuracy over steps.
* :func:`correlation_figure`: final distance vs final accuracy across runs
  beside density vs final accuracy (MGE24's baseline), with Pearson ρ and Spearman.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from fullspectrum.spectrum import AXIS_TITLES, PLOT_AXES, metric_symbol

HIGHLIGHT_NAME = "at selected step"
_HOVER = "<br>".join(f"{metric_symbol(name)} %{{{axis}:.3f}}" for axis, name in zip("xyz", PLOT_AXES))
NETWORK_NAME = "network mean"
STEP_COLORSCALE = "Viridis"


def nearest_step(steps, step: int | None) -> int | None:
    """The last recorded step at or before ``step`` (the first one if none is); ``None`` without steps."""
    steps = sorted({int(s) for s in steps})
    if not steps:
        return None
    if step is None:
        return steps[-1]
    before = [s for s in steps if s <= step]
    return before[-1] if before else steps[0]


def drawable(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows whose three coordinates are finite, and how many rows were left out."""
    values = frame[list(PLOT_AXES)].to_numpy(dtype=float) if len(frame) else np.empty((0, 3))
    keep = np.isfinite(values).all(axis=1)
    return frame[keep], int((~keep).sum())


def trajectory_figure(
    layers: pd.DataFrame,
    *,
    selected_layers: list[str] | None = None,
    step: int | None = None,
    network: pd.DataFrame | None = None,
    animate: bool = False,
    revision: str = "trajectory",
) -> go.Figure:
    """3-D trajectories: one trace per layer (its own colour; markers coloured by step), the network mean
    (black), and the points at ``step`` in their layer's colour.

    ``layers`` has ``step``, ``layer`` and :data:`PLOT_AXES`; ``network`` (optional)
    has ``step`` and :data:`PLOT_AXES` (one row per step). ``animate`` adds a Play control that moves the
    markers through the steps in the browser. ``revision`` is plotly's ``uirevision``: while it stays the
    same (one run), redrawing the figure keeps the user's camera.
    """
    names = list(dict.fromkeys(layers["layer"])) if selected_layers is None else list(selected_layers)
    shown = layers[layers["layer"].isin(names)]
    all_steps = shown["step"] if network is None else pd.concat([shown["step"], network["step"]])
    low, high = (float(all_steps.min()), float(all_steps.max())) if len(all_steps) else (0.0, 1.0)
    marked_step = nearest_step(all_steps, step) if step is not None else None
    palette = qualitative.Plotly
    colours = {name: palette[index % len(palette)] for index, name in enumerate(names)} | {
        NETWORK_NAME: "black"
    }
    figure = go.Figure()
    left_out = 0
    highlight = []
    for index, name in enumerate(names):
        points, missing = drawable(shown[shown["layer"] == name].sort_values("step"))
        left_out += missing
        figure.add_trace(_path_trace(points, name, low, high, show_scale=index == 0, colour=colours[name]))
        highlight.append(_at_step(points, marked_step, name))
    if network is not None and len(network):
        points, missing = drawable(network.sort_values("step"))
        left_out += missing
        trace = _path_trace(points, NETWORK_NAME, low, high, show_scale=not names, colour="black")
        trace.line.update(width=7, color="black")
        figure.add_trace(trace)
        highlight.append(_at_step(points, marked_step, NETWORK_NAME))
    marked = pd.concat([h for h in highlight if len(h)]) if any(len(h) for h in highlight) else None
    if marked is not None:
        figure.add_trace(_marker_trace(marked, colours))
        if animate:
            _add_play_control(figure, shown, network, names, colours, marked_step)
    title = "Full-spectrum trajectories"
    if step is not None:
        title += f" · marker at step {marked_step}"
    if left_out:
        title += f" · {left_out} point{'s' if left_out != 1 else ''} with a NaN coordinate not drawn"
    figure.update_layout(
        title=title,
        scene={
            **{f"{axis}axis": {"title": {"text": AXIS_TITLES[name]}} for axis, name in zip("xyz", PLOT_AXES)},
            "uirevision": revision,
        },
        legend={"itemsizing": "constant", "orientation": "h", "y": -0.02, "yanchor": "top"},
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        height=600,
        meta={"left_out": left_out},
        uirevision=revision,
    )
    return figure


def _marker_trace(marked: pd.DataFrame, colours: dict) -> go.Scatter3d:
    """The points at the selected step, each in its layer's colour (the network mean black)."""
    return go.Scatter3d(
        x=marked[PLOT_AXES[0]],
        y=marked[PLOT_AXES[1]],
        z=marked[PLOT_AXES[2]],
        mode="markers",
        name=HIGHLIGHT_NAME,
        text=marked["label"],
        hovertemplate="%{text}<br>step %{customdata}<extra></extra>",
        customdata=marked["step"],
        marker={"size": 9, "symbol": "diamond", "color": [colours.get(label, "crimson") for label in marked["label"]],
                "line": {"width": 2, "color": "white"}},
    )  # fmt: skip


MAX_FRAMES = 60
"""Most animation frames drawn (steps evenly thinned beyond this, the selected step kept)."""


def _add_play_control(figure: go.Figure, shown, network, names, colours, marked_step) -> None:
    """Plotly frames that move the step markers through every step in the browser (no server round trip),
    with Play/Pause buttons and a step slider; the camera stays where the user put it."""
    parts = [shown[shown["layer"] == name].assign(label=name) for name in names]
    if network is not None and len(network):
        parts.append(network.assign(label=NETWORK_NAME))
    points, _ = drawable(pd.concat(parts, ignore_index=True)) if parts else (shown.iloc[0:0], 0)
    steps = np.sort(points["step"].unique())
    if steps.size < 2:
        return
    if steps.size > MAX_FRAMES:
        keep = set(steps[np.linspace(0, steps.size - 1, MAX_FRAMES).round().astype(int)].tolist()) | {
            marked_step
        }
        steps = np.array(sorted(s for s in keep if s is not None))
    xyz = points[list(PLOT_AXES)].to_numpy(dtype=float)  # (points, 3)
    labels, at = points["label"].to_numpy(), points["step"].to_numpy()
    colour_of = np.array([colours.get(label, "crimson") for label in labels])
    frames, marker_index = [], len(figure.data) - 1
    for frame_step in steps:
        rows = at == frame_step
        marker = {
            "size": 9,
            "symbol": "diamond",
            "color": colour_of[rows].tolist(),
            "line": {"width": 2, "color": "white"},
        }
        frames.append(go.Frame(name=str(int(frame_step)), traces=[marker_index], data=[go.Scatter3d(
            x=xyz[rows, 0], y=xyz[rows, 1], z=xyz[rows, 2], text=labels[rows], customdata=at[rows], marker=marker,
        )]))  # fmt: skip
    figure.frames = frames
    play = {"frame": {"duration": 400, "redraw": True}, "transition": {"duration": 0}, "fromcurrent": True}
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    figure.update_layout(
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0.0, "y": 1.08, "xanchor": "left",
                      "buttons": [{"label": "▶ Play", "method": "animate", "args": [None, play]},
                                  {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]}]}],
        sliders=[{"active": next((i for i, f in enumerate(frames) if f.name == str(marked_step)), len(frames) - 1),
                  "currentvalue": {"prefix": "marker at step "}, "pad": {"t": 30},
                  "steps": [{"label": f.name, "method": "animate",
                             "args": [[f.name], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}]}
                            for f in frames]}],
    )  # fmt: skip


def _path_trace(points: pd.DataFrame, name: str, low: float, high: float, *, show_scale: bool, colour: str):
    return go.Scatter3d(
        x=points[PLOT_AXES[0]],
        y=points[PLOT_AXES[1]],
        z=points[PLOT_AXES[2]],
        mode="lines+markers",
        name=name,
        customdata=points["step"],
        hovertemplate=f"{name}<br>step %{{customdata}}<br>{_HOVER}<extra></extra>",
        line={"width": 3, "color": colour},
        marker={
            "size": 3,
            "color": points["step"],
            "colorscale": STEP_COLORSCALE,
            "cmin": low,
            "cmax": high,
            "showscale": show_scale,
            "colorbar": {"title": {"text": "step"}, "x": 1.02},
        },
    )


def _at_step(points: pd.DataFrame, step: int | None, label: str) -> pd.DataFrame:
    """The drawable point at ``step`` (none when that step's point has a NaN coordinate)."""
    if step is None:
        return points.iloc[0:0].assign(label=[])
    return points[points["step"] == step].assign(label=label)


def metrics_figure(
    layers: pd.DataFrame,
    evals: pd.DataFrame,
    *,
    selected_layers: list[str] | None = None,
    network: pd.DataFrame | None = None,
    step: int | None = None,
) -> go.Figure:
    """Three rows over steps: ℓ2-moving distance (layers + network mean), exploration rate, accuracy."""
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=("ℓ2-moving distance", "exploration rate", "accuracy"),
    )
    names = list(dict.fromkeys(layers["layer"])) if selected_layers is None else list(selected_layers)
    for name in names:
        rows = layers[layers["layer"] == name].sort_values("step")
        figure.add_trace(
            go.Scatter(
                x=rows["step"],
                y=rows["moving_distance"],
                mode="lines",
                name=name,
                legendgroup=name,
                line={"width": 1},
            ),  # fmt: skip
            row=1,
            col=1,
        )
    if network is not None and len(network) and "moving_distance" in network:
        figure.add_trace(
            go.Scatter(
                x=network["step"],
                y=network["moving_distance"],
                mode="lines",
                name=NETWORK_NAME,
                line={"width": 3, "color": "black"},
            ),  # fmt: skip
            row=1,
            col=1,
        )
    rate = evals.dropna(subset=["exploration_rate"]).drop_duplicates("step").sort_values("step")
    figure.add_trace(
        go.Scatter(x=rate["step"], y=rate["exploration_rate"], mode="lines+markers", name="exploration rate"),
        row=2,
        col=1,
    )
    for split in ("train", "val", "test"):
        rows = evals[evals["split"] == split].sort_values("step")
        if len(rows):
            mode = "markers" if split == "test" else "lines+markers"
            figure.add_trace(
                go.Scatter(x=rows["step"], y=rows["accuracy"], mode=mode, name=f"{split} accuracy"),
                row=3,
                col=1,
            )
    if step is not None:
        for row in (1, 2, 3):
            figure.add_vline(x=step, line={"dash": "dot", "color": "crimson"}, row=row, col=1)
    figure.update_xaxes(title_text="step", row=3, col=1)
    figure.update_yaxes(title_text="‖u(t) − u(0)‖", row=1, col=1)
    figure.update_yaxes(title_text="R_s", row=2, col=1)
    figure.update_yaxes(title_text="accuracy", row=3, col=1)
    figure.update_layout(height=650, margin={"t": 40, "b": 40})
    return figure


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def _ci(interval) -> str:
    """`` [−0.21, +0.52]`` (the 95% bootstrap interval), or nothing when there is none."""
    low, high = interval
    return "" if not (math.isfinite(low) and math.isfinite(high)) else f" [{_fmt(low)}, {_fmt(high)}]"


def correlation_figure(study) -> go.Figure:
    """FS23 Fig. 3 beside the density-only plot, for an ``analysis.correlation.CorrelationStudy``."""
    points = study.points
    left = (
        f"final distance vs accuracy: ρ {_fmt(study.distance.pearson)}{_ci(study.distance.pearson_ci)}, "
        f"Spearman {_fmt(study.distance.spearman)} (n={study.distance.n})"
    )
    right = (
        f"density vs accuracy (baseline): ρ {_fmt(study.density.pearson)}{_ci(study.density.pearson_ci)}, "
        f"Spearman {_fmt(study.density.spearman)} (n={study.density.n})"
    )
    figure = make_subplots(rows=1, cols=2, subplot_titles=(left, right), horizontal_spacing=0.1)
    for density, group in points.groupby("density", sort=True):
        name = f"density {density:g}"
        text = group["label"].astype(str) + " · " + group["method"].astype(str)
        # Same runs, same colours: spectrum distance on the left, density alone on the right.
        for col, x, hover in ((1, "final_distance", "distance %{x:.3f}"), (2, "density", "density %{x:g}")):
            figure.add_trace(
                go.Scatter(
                    x=group[x],
                    y=group["final_accuracy"],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    text=text,
                    marker={"size": 10},
                    hovertemplate=f"%{{text}}<br>{hover}<br>accuracy %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    figure.update_xaxes(title_text="final ℓ2-moving distance (network mean)", row=1, col=1)
    figure.update_xaxes(title_text="density", row=1, col=2)
    figure.update_yaxes(title_text="final test accuracy", row=1, col=1)
    figure.update_yaxes(title_text="final test accuracy", row=1, col=2)
    title = "Across runs: does the spectrum say more than density?"
    if getattr(study, "data", "?") != "?":
        title = f"{study.data} · {study.model}: does the spectrum say more than density?"
    if study.left_out:
        title += (
            f" · {study.left_out} run{'s' if study.left_out != 1 else ''} without a final accuracy left out"
        )
    figure.update_layout(title=title, height=450, margin={"t": 80}, meta={"left_out": study.left_out})
    figure.update_annotations(font_size=12)
    return figure
