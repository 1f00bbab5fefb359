"""A metric over block × projection: a transformer's hundreds of layers as one heat map.

Rows are the repeated blocks in model order (``model.layers.0`` at the top), columns the
projections in first-seen order (``q_proj`` ... ``down_proj``); a cell is one layer's value, blank
where a block lacks that projection. Layers outside any block (``lm_head``) have no cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from app.layer_groups import block_order, projection_order


def block_grid(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``metric`` of the layers inside blocks as a (block × projection) frame, blocks in model order;
    one row per layer expected (one snapshot)."""
    inside = table[table["block"] != ""]
    values = inside[metric].astype(float)
    grid = pd.DataFrame({"block": inside["block"], "projection": inside["projection"], "value": values})
    grid = grid.pivot_table(index="block", columns="projection", values="value", aggfunc="last", dropna=False)
    return grid.reindex(index=block_order(inside["block"]), columns=projection_order(inside))


def block_heatmap(table: pd.DataFrame, metric: str, *, label: str | None = None) -> go.Figure:
    """Heat map of ``metric`` over block × projection with a colour bar titled ``label``."""
    grid = block_grid(table, metric)
    label = label or metric
    z = grid.to_numpy(dtype=float)
    figure = go.Figure(
        go.Heatmap(
            z=np.where(np.isfinite(z), z, np.nan),
            x=list(grid.columns),
            y=list(grid.index),
            colorscale="Viridis",
            colorbar={"title": {"text": label}},
            hovertemplate=f"%{{y}}.%{{x}}<br>{label} = %{{z:.4g}}<extra></extra>",
            hoverongaps=False,
        )
    )
    figure.update_layout(
        title=f"{label} per block and projection ({len(grid.index)} blocks × {len(grid.columns)} projections)",
        xaxis_title="projection",
        yaxis={"title": "block", "autorange": "reversed", "type": "category"},
        height=min(1200, 160 + 18 * len(grid.index)),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure
