"""Chart builders for full-spectrum trajectories (FS23 §4, Fig. 3; SPEC §4). Pure: DataFrames in, Figures out.

* :func:`trajectory_figure`: each layer's 3-D coordinate ``(Δr, λ, Δr_imdb)``
  over training, lines with markers coloured by step, one highlighted marker
  per layer at a chosen step, the network-mean trajectory; points with a NaN
  coordinate are not drawn and the title says how many were left out.
* :func:`metrics_figure`: ℓ2-moving distance, exploration rate and accuracy over steps.
* Both split into a step-independent base (:func:`trajectory_base`, :func:`metrics_base`), which the app
  caches per run, and a cheap step placement (:func:`place_marker`, :func:`with_step_line`): moving the
  step slider redraws without rebuilding the figures.
* :func:`correlation_figure`: final distance vs final accuracy across runs
  beside density vs final accuracy (MGE24's baseline), with Pearson ρ and Spearman.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TrajectoryBase:
    """A trajectory figure without its step: built once per run and choice of layers, then placed at any
    step by :func:`place_marker` without rebuilding the paths (the step slider stays fast)."""

    figure: dict
    """Plotly figure dict: one path per layer, the network mean, the layout (no marker, no title)."""
    markers: dict
    """Step -> the marker trace's ``x, y, z, text, customdata, marker`` at that step (drawable points)."""
    steps: tuple
    """Every step drawn (layers and network mean), ascending."""
    frames: tuple
    """Play-control frames (plotly dicts, named by step); empty without ``animate``."""
    left_out: int
    """Points with a NaN coordinate that are not drawn."""


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
    base = trajectory_base(layers, selected_layers=selected_layers, network=network, animate=animate,
                           revision=revision)  # fmt: skip
    return place_marker(base, step)


def trajectory_base(
    layers: pd.DataFrame,
    *,
    selected_layers: list[str] | None = None,
    network: pd.DataFrame | None = None,
    animate: bool = False,
    revision: str = "trajectory",
) -> TrajectoryBase:
    """The step-independent part of :func:`trajectory_figure` (same arguments, less ``step``)."""
    names = list(dict.fromkeys(layers["layer"])) if selected_layers is None else list(selected_layers)
    shown = layers[layers["layer"].isin(names)]
    all_steps = shown["step"] if network is None else pd.concat([shown["step"], network["step"]])
    low, high = (float(all_steps.min()), float(all_steps.max())) if len(all_steps) else (0.0, 1.0)
    palette = qualitative.Plotly
    colours = {name: palette[index % len(palette)] for index, name in enumerate(names)} | {
        NETWORK_NAME: "black"
    }
    figure = go.Figure()
    left_out, parts = 0, []
    for index, name in enumerate(names):
        points, missing = drawable(shown[shown["layer"] == name].sort_values("step"))
        left_out += missing
        figure.add_trace(_path_trace(points, name, low, high, show_scale=index == 0, colour=colours[name]))
        parts.append(points.assign(label=name))
    if network is not None and len(network):
        points, missing = drawable(network.sort_values("step"))
        left_out += missing
        trace = _path_trace(points, NETWORK_NAME, low, high, show_scale=not names, colour="black")
        trace.line.update(width=7, color="black")
        figure.add_trace(trace)
        parts.append(points.assign(label=NETWORK_NAME))
    figure.update_layout(
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
    points = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["step", "label", *PLOT_AXES])
    )
    markers = _markers_by_step(points, colours)
    frames = _frames(markers, marker_index=len(figure.data)) if animate else ()
    steps = tuple(sorted({int(s) for s in all_steps}))
    return TrajectoryBase(
        figure=figure.to_plotly_json(), markers=markers, steps=steps, frames=frames, left_out=left_out
    )


def place_marker(
    base: TrajectoryBase, step: int | None, *, play: bool = True, validate: bool = True
) -> go.Figure:
    """``base`` with its marker at the last drawn step at or before ``step`` (none for ``None``), the title
    naming it, and the Play control when ``play`` is set, ``base`` has frames and the step has drawable
    points.

    ``play=False`` leaves out the frames, the Play/Pause buttons and the chart's own step slider: the
    figure then holds only its traces and the marker, the least a browser re-receives and redraws per
    step. ``validate=False`` skips plotly's validation of the dict (most of the cost of a step change);
    the tests build every part through ``trajectory_figure``, which validates."""
    marked_step = nearest_step(base.steps, step) if step is not None else None
    layout = dict(base.figure["layout"])
    data = list(base.figure["data"])
    marker = base.markers.get(marked_step)
    frames = list(base.frames) if play and marker is not None else []
    if marker is not None:
        data.append(marker)
    if frames:
        layout.update(_play_layout(base.frames, marked_step))
    title = "Full-spectrum trajectories"
    if step is not None:
        title += f" · marker at step {marked_step}"
    if base.left_out:
        title += (
            f" · {base.left_out} point{'s' if base.left_out != 1 else ''} with a NaN coordinate not drawn"
        )
    layout["title"] = {"text": title}
    return go.Figure({"data": data, "layout": layout, "frames": frames}, _validate=validate)


def _markers_by_step(points: pd.DataFrame, colours: dict) -> dict:
    """Step -> the marker trace at that step: each point in its layer's colour (the network mean black)."""
    xyz = points[list(PLOT_AXES)].to_numpy(dtype=float)  # (points, 3)
    labels, at = points["label"].to_numpy(), points["step"].to_numpy()
    colour_of = np.array([colours.get(label, "crimson") for label in labels])
    markers = {}
    for step in np.unique(at):
        rows = at == step
        markers[int(step)] = {
            "type": "scatter3d", "mode": "markers", "name": HIGHLIGHT_NAME,
            "x": xyz[rows, 0].tolist(), "y": xyz[rows, 1].tolist(), "z": xyz[rows, 2].tolist(),
            "text": labels[rows].tolist(), "customdata": at[rows].tolist(),
            "hovertemplate": "%{text}<br>step %{customdata}<extra></extra>",
            "marker": {"size": 9, "symbol": "diamond", "color": colour_of[rows].tolist(),
                       "line": {"width": 2, "color": "white"}},
        }  # fmt: skip
    return markers


MAX_FRAMES = 60
"""Most animation frames drawn (steps evenly thinned beyond this)."""


def _frames(markers: dict, marker_index: int) -> tuple:
    """Plotly frames that move the step markers (trace ``marker_index``) through the steps in the browser,
    no server round trip."""
    steps = np.array(sorted(markers))
    if steps.size < 2:
        return ()
    if steps.size > MAX_FRAMES:
        steps = np.unique(steps[np.linspace(0, steps.size - 1, MAX_FRAMES).round().astype(int)])
    keys = ("x", "y", "z", "text", "customdata", "marker")
    return tuple(
        {"name": str(int(step)), "traces": [marker_index],
         "data": [{"type": "scatter3d", **{key: markers[int(step)][key] for key in keys}}]}
        for step in steps
    )  # fmt: skip


def _play_layout(frames: tuple, marked_step: int | None) -> dict:
    """Play/Pause buttons and a step slider over ``frames``, starting at the last frame at or before the
    marked step; the camera stays where the user put it."""
    play = {"frame": {"duration": 400, "redraw": True}, "transition": {"duration": 0}, "fromcurrent": True}
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    names = [frame["name"] for frame in frames]
    before = [i for i, name in enumerate(names) if marked_step is not None and int(name) <= marked_step]
    return {
        "updatemenus": [{"type": "buttons", "direction": "left", "x": 0.0, "y": 1.08, "xanchor": "left",
                         "buttons": [{"label": "▶ Play", "method": "animate", "args": [None, play]},
                                     {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]}]}],
        "sliders": [{"active": before[-1] if before else 0, "currentvalue": {"prefix": "marker at step "},
                     "pad": {"t": 30},
                     "steps": [{"label": name, "method": "animate",
                                "args": [[name], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}]}
                               for name in names]}],
    }  # fmt: skip


def _path_trace(points: pd.DataFrame, name: str, low: float, high: float, *, show_scale: bool, colour: str):
    # Plain lists, not Series: plotly would store arrays base64-encoded, which the cached base keeps as is.
    return go.Scatter3d(
        x=points[PLOT_AXES[0]].tolist(),
        y=points[PLOT_AXES[1]].tolist(),
        z=points[PLOT_AXES[2]].tolist(),
        mode="lines+markers",
        name=name,
        customdata=points["step"].tolist(),
        hovertemplate=f"{name}<br>step %{{customdata}}<br>{_HOVER}<extra></extra>",
        line={"width": 3, "color": colour},
        marker={
            "size": 3,
            "color": points["step"].tolist(),
            "colorscale": STEP_COLORSCALE,
            "cmin": low,
            "cmax": high,
            "showscale": show_scale,
            "colorbar": {"title": {"text": "step"}, "x": 1.02},
        },
    )


def metrics_figure(
    layers: pd.DataFrame,
    evals: pd.DataFrame,
    *,
    selected_layers: list[str] | None = None,
    network: pd.DataFrame | None = None,
    step: int | None = None,
) -> go.Figure:
    """Three rows over steps: ℓ2-moving distance (layers + network mean), exploration rate, accuracy; a
    dotted line at ``step`` on each."""
    return with_step_line(metrics_base(layers, evals, selected_layers=selected_layers, network=network), step)


def with_step_line(base: dict, step: int | None, *, validate: bool = True) -> go.Figure:
    """A :func:`metrics_base` figure dict with a dotted line at ``step`` on its three rows (none for
    ``None``); ``validate`` as for :func:`place_marker`."""
    layout = dict(base["layout"])
    if step is not None:
        line = {"dash": "dot", "color": "crimson"}
        layout["shapes"] = [
            {"type": "line", "x0": step, "x1": step, "xref": x, "y0": 0, "y1": 1, "yref": f"{y} domain", "line": line}
            for x, y in (("x", "y"), ("x2", "y2"), ("x3", "y3"))
        ]  # fmt: skip
    return go.Figure({"data": base["data"], "layout": layout}, _validate=validate)


def metrics_base(
    layers: pd.DataFrame,
    evals: pd.DataFrame,
    *,
    selected_layers: list[str] | None = None,
    network: pd.DataFrame | None = None,
) -> dict:
    """The step-independent :func:`metrics_figure`, as a plotly dict (built once per run and layers)."""
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
    figure.update_xaxes(title_text="step", row=3, col=1)
    figure.update_yaxes(title_text="‖u(t) − u(0)‖", row=1, col=1)
    figure.update_yaxes(title_text="R_s", row=2, col=1)
    figure.update_yaxes(title_text="accuracy", row=3, col=1)
    figure.update_layout(height=650, margin={"t": 40, "b": 40})
    # A datarevision that changes only with the data: moving the step line then redraws the line alone in
    # the browser (Plotly.react otherwise recomputes every trace, each step's arrays being new objects).
    figure.update_layout(datarevision=hashlib.sha1(figure.to_json().encode()).hexdigest()[:16])
    return figure.to_plotly_json()


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
