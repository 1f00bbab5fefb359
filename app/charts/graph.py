"""Charts of one layer's bipartite graph (SPEC §1, §3; R23, FS23): pure ``arrays -> go.Figure`` builders.

* :func:`bipartite_figure`: input units on the left, output units on the right,
  each degree class (an extracted left-regular subgraph) in its own colour,
  dead units marked; a layer too large to draw legibly is reduced faithfully
  (a random subset of output units with *all* their edges, or a channel-level
  view of a convolution) and the chart says so in its title.
* :func:`degree_histograms_figure`: degree distributions of both sides.
* :func:`singular_values_figure`: the top singular values against the bipartite
  Ramanujan bound ``sqrt(d_left - 1) + sqrt(d_right - 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_EDGES = 3000
"""Most edges drawn before a layer is reduced (browsers stay responsive, lines stay distinguishable)."""
MAX_UNITS = 300
"""Most units drawn on one side before a layer is reduced."""
VIEWS = ("auto", "units", "channels")
DEAD_COLOUR = "#9e9e9e"


@dataclass(frozen=True)
class _Drawing:
    """What is drawn: a 0/1 matrix (rows: outputs, columns: inputs) and which rows/columns are shown."""

    matrix: np.ndarray  # (out, in) bool: units (taps) or channels
    rows: np.ndarray  # output indices drawn
    note: str
    level: str  # "units" or "channels"


def _flat(mask) -> np.ndarray:
    array = np.asarray(mask).astype(bool)
    return array.reshape(array.shape[0], -1)  # (out, in*prod(kernel))


def _channels(mask) -> np.ndarray:
    array = np.asarray(mask).astype(bool)
    return array.reshape(array.shape[0], array.shape[1], -1).any(axis=2)  # (out, in)


def _subset_rows(
    matrix: np.ndarray, rows: np.ndarray, seed: int, max_edges: int, max_units: int
) -> np.ndarray:
    """A random subset of ``rows`` (seeded) whose edges fit ``max_edges``; at least one row."""
    shuffled = np.random.default_rng(seed).permutation(rows)
    cumulative = np.cumsum(matrix[shuffled].sum(axis=1))
    count = int(np.searchsorted(cumulative, max_edges, side="right"))
    return np.sort(shuffled[: max(1, min(count, max_units))])


def _plan(mask, rows: np.ndarray, columns: np.ndarray, view: str, seed: int, max_edges: int, max_units: int):
    flat = _flat(mask)
    sub = np.zeros_like(flat)
    sub[np.ix_(rows, columns)] = flat[np.ix_(rows, columns)]
    edges = int(sub.sum())
    conv = np.asarray(mask).ndim > 2
    fits = edges <= max_edges and rows.size <= max_units and columns.size <= 2 * max_units
    if view == "channels" and conv:
        channels = _channels(mask)
        chosen = np.arange(channels.shape[0])
        note = f"channel-level view: an edge joins two channels when any of the {flat.shape[1] // channels.shape[1]} kernel taps is kept"
        if int(channels.sum()) > max_edges or chosen.size > max_units:
            chosen = _subset_rows(channels, chosen, seed, max_edges, max_units)
            note += f"; {chosen.size} of {channels.shape[0]} output channels (random, seed {seed}) with all their edges"
        return _Drawing(channels, chosen, note, "channels")
    if view == "units" or fits:
        if fits:
            return _Drawing(sub, rows, "", "units")
    chosen = _subset_rows(sub, rows, seed, max_edges, max_units)
    if view == "auto" and conv and chosen.size < min(4, rows.size):
        return _plan(mask, rows, columns, "channels", seed, max_edges, max_units)
    shown = int(sub[chosen].sum())
    note = (
        f"reduced: {chosen.size} of {rows.size} output units (random, seed {seed}) with all their "
        f"{shown:,} of {edges:,} edges"
    )
    return _Drawing(sub, chosen, note, "units")


def _positions(order: np.ndarray) -> dict[int, float]:
    """Evenly spaced heights in [0, 1], first unit at the top."""
    if order.size == 1:
        return {int(order[0]): 0.5}
    return {int(unit): 1.0 - k / (order.size - 1) for k, unit in enumerate(order)}


def class_colours(degrees: Sequence[int]) -> dict[int, str]:
    """One colour per degree class (ordered along a perceptual scale)."""
    degrees = sorted(set(int(d) for d in degrees))
    if not degrees:
        return {}
    samples = pc.sample_colorscale(
        "Turbo", [0.5] if len(degrees) == 1 else np.linspace(0.05, 0.95, len(degrees))
    )
    return dict(zip(degrees, samples, strict=True))


def bipartite_figure(
    mask,
    classes: Sequence = (),
    *,
    selected: int | None = None,
    view: str = "auto",
    seed: int = 0,
    max_edges: int = MAX_EDGES,
    max_units: int = MAX_UNITS,
    name: str = "layer",
) -> go.Figure:
    """The layer's bipartite graph; ``classes`` are its ``DegreeClass`` objects (SPEC §3).

    ``selected`` (a class degree ``d_c``) shows that class alone. ``view`` is
    ``auto`` (all units when they fit, else a random subset of output units with
    all their edges, else channels), ``units`` or ``channels`` (convolutions).
    Every reduction is stated in the title.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view '{view}'; choose from {', '.join(VIEWS)}")
    flat = _flat(mask)
    n_right, n_left = flat.shape
    left_degree, right_degree = flat.sum(axis=0), flat.sum(axis=1)
    by_degree = {int(c.d_c): c for c in classes}
    colours = class_colours(by_degree)
    if selected is not None and selected in by_degree:
        chosen_class = by_degree[selected]
        rows, columns = np.array(chosen_class.right_units, int), np.array(chosen_class.left_units, int)
        what = f"degree class d_c={selected} alone ({chosen_class.l_c} inputs, {chosen_class.r_c} outputs)"
    else:
        rows, columns = np.arange(n_right), np.arange(n_left)
        what = f"{n_left} input units, {n_right} output units, {int(flat.sum()):,} edges"
    drawing = _plan(mask, rows, columns, view, seed, max_edges, max_units)
    matrix = drawing.matrix[drawing.rows]  # (drawn outputs, inputs)
    # inputs drawn: those the drawn outputs reach (plus, in a full view, the dead ones)
    reached = np.flatnonzero(matrix.any(axis=0))
    left_deg = matrix.sum(axis=0) if drawing.level == "channels" else left_degree
    if drawing.level == "units":
        reached = reached if drawing.note or selected is not None else columns
    order = reached[np.lexsort((reached, -left_deg[reached]))]  # by degree (class bands), ties by index
    y_left, y_right = _positions(order), _positions(drawing.rows)
    figure = go.Figure()
    right_of, left_of = np.nonzero(matrix)
    edges_by_group: dict[object, list[tuple[int, int]]] = {}
    for r, left in zip(right_of, left_of, strict=True):
        group = int(left_degree[left]) if drawing.level == "units" else "channels"
        edges_by_group.setdefault(group, []).append((int(drawing.rows[r]), int(left)))
    for group in sorted(edges_by_group, key=lambda g: -g if isinstance(g, int) else 0):
        pairs = edges_by_group[group]
        xs = [v for _ in pairs for v in (0.0, 1.0, None)]
        ys = [v for right, left in pairs for v in (y_left[left], y_right[right], None)]
        if group == "channels":
            label, colour = "channel edges (any tap kept)", "#5c6bc0"
        else:
            degree_class = by_degree.get(group)
            tick = " ✓ qualifies" if degree_class is not None and degree_class.qualifies else ""
            size = f", {degree_class.n_c} inputs" if degree_class is not None else ""
            label, colour = f"d_c={group}{size}{tick}", colours.get(group, "#5c6bc0")
        figure.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", line={"width": 0.6, "color": colour}, opacity=0.55,
                name=label, legendgroup=str(group), hoverinfo="skip",
            )
        )  # fmt: skip
    live_left = [u for u in order if left_deg[u] > 0]
    dead_left = [u for u in order if left_deg[u] == 0]
    unit = "channel" if drawing.level == "channels" else "unit"
    figure.add_trace(
        go.Scatter(
            x=[0.0] * len(live_left), y=[y_left[u] for u in live_left], mode="markers", name=f"input {unit}s",
            marker={"size": 5, "color": [colours.get(int(left_degree[u]), "#37474f") if drawing.level == "units"
                                          else "#37474f" for u in live_left]},
            text=[f"input {unit} {u}, degree {int(left_deg[u])}" for u in live_left], hoverinfo="text",
        )
    )  # fmt: skip
    live_right = [int(r) for r in drawing.rows if matrix[list(drawing.rows).index(r)].any()]
    dead_right = [int(r) for r in drawing.rows if int(r) not in set(live_right)]
    figure.add_trace(
        go.Scatter(
            x=[1.0] * len(live_right), y=[y_right[r] for r in live_right], mode="markers",
            name=f"output {unit}s", marker={"size": 6, "color": "#263238"},
            text=[f"output {unit} {r}, degree {int(right_degree[r]) if drawing.level == 'units' else int(drawing.matrix[r].sum())}"
                  for r in live_right], hoverinfo="text",
        )
    )  # fmt: skip
    for side, units, x, heights in (("input", dead_left, 0.0, y_left), ("output", dead_right, 1.0, y_right)):
        if units:
            figure.add_trace(
                go.Scatter(
                    x=[x] * len(units), y=[heights[u] for u in units], mode="markers",
                    name=f"dead {side} {unit}s ({len(units)})",
                    marker={"symbol": "x", "size": 7, "color": DEAD_COLOUR},
                    text=[f"dead {side} {unit} {u}" for u in units], hoverinfo="text",
                )
            )  # fmt: skip
    hidden_dead = int((left_degree == 0).sum()) - (len(dead_left) if drawing.level == "units" else 0)
    notes = [drawing.note] if drawing.note else []
    if drawing.level == "units" and hidden_dead > 0 and selected is None:
        notes.append(f"{hidden_dead} dead input units not drawn")
    title = f"{name}: {what}"
    if notes:
        title += "<br><sup>" + "; ".join(notes) + "</sup>"
    figure.update_layout(
        title={"text": title},
        xaxis={
            "title": {"text": "inputs (left) → outputs (right)"},
            "showticklabels": False,
            "range": [-0.15, 1.15],
        },
        yaxis={"title": {"text": "units (inputs ordered by degree)"}, "showticklabels": False},
        legend={"title": {"text": "degree classes"}},
        height=620,
        margin={"t": 90},
        meta={"reduction": "; ".join(notes), "level": drawing.level},
    )
    return figure


def degree_histograms_figure(mask, *, name: str = "layer") -> go.Figure:
    """Degree counts of the input units (fan-out) and of the output units (fan-in); degree 0 = dead."""
    flat = _flat(mask)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("input units", "output units"))
    for col, (degrees, axis) in enumerate(
        (
            (flat.sum(axis=0), "input-unit degree (fan-out)"),
            (flat.sum(axis=1), "output-unit degree (fan-in)"),
        ),
        start=1,
    ):
        counts = np.bincount(degrees.astype(int))
        x = np.flatnonzero(counts)
        colours = [DEAD_COLOUR if d == 0 else "#3f51b5" for d in x]
        figure.add_trace(
            go.Bar(x=x, y=counts[x], marker={"color": colours}, name=axis, showlegend=False), row=1, col=col
        )
        figure.update_xaxes(title_text=axis, row=1, col=col)
        figure.update_yaxes(title_text="units", row=1, col=col)
    figure.update_layout(
        title={"text": f"{name}: degree distributions (grey: dead units, degree 0)"}, height=340
    )
    return figure


def singular_values_figure(
    values: Sequence[float],
    d_left: float,
    d_right: float,
    *,
    weighted: Sequence[float] | None = None,
    name: str = "layer",
) -> go.Figure:
    """The top singular values of the live 0/1 mask (and of ``|W ⊙ M|``) and the Ramanujan bound."""
    values = np.asarray(values, dtype=float)
    index = np.arange(1, values.size + 1)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=index, y=values, mode="lines+markers", name="σᵢ of the 0/1 mask"))
    if weighted is not None and len(weighted):
        w = np.asarray(weighted, dtype=float)
        figure.add_trace(
            go.Scatter(x=np.arange(1, w.size + 1), y=w, mode="lines+markers", name="ωᵢ of |W ⊙ M|", yaxis="y")
        )
    with np.errstate(invalid="ignore"):
        bound = float(np.sqrt(d_left - 1) + np.sqrt(d_right - 1))
    if np.isfinite(bound) and values.size:
        figure.add_trace(
            go.Scatter(
                x=[0.5, max(values.size, 1) + 0.5], y=[bound, bound], mode="lines",
                line={"dash": "dash", "color": "#e53935"}, name="Ramanujan bound √(d_L−1)+√(d_R−1)",
            )
        )  # fmt: skip
        gap = bound - values[1] if values.size > 1 else bound
        subtitle = f"Δr = bound − σ₂ = {gap:.3g}" + (" (inside the bound)" if gap >= 0 else " (outside)")
    else:
        subtitle = "Ramanujan bound undefined (a mean degree below 1)"
    figure.update_layout(
        title={"text": f"{name}: top singular values<br><sup>{subtitle}</sup>"},
        xaxis={"title": {"text": "index i"}, "dtick": 1},
        yaxis={"title": {"text": "singular value"}},
        height=380,
    )
    return figure
