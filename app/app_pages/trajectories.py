"""Trajectories page: each layer's full-spectrum coordinate over training (FS23 §4), and across runs
final ℓ2-moving distance vs final accuracy beside the density-only baseline (FS23 Fig. 3; MGE24)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import cache, widgets
from app.charts.trajectories import correlation_figure, metrics_figure, trajectory_figure
from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum import VECTOR_AXES

MAX_DEFAULT_LAYERS = 8  # layers drawn by default (deep networks have dozens; the picker adds more)

st.title("Trajectories")
runs = widgets.load_runs()
selected = st.session_state.get("selected_run")

if runs.empty or not selected:
    st.info(
        "No runs to show. Pick a run in the sidebar once there is one: train with "
        "`fullspectrum train --out cached_runs/my_run` or start one on the **Live training** page."
    )
    st.stop()

st.subheader(f"One run: {Path(selected).name}")
stamp = cache.run_stamp(selected)
try:
    layers = cache.run_layers(selected, stamp)
    evals = cache.run_evals(selected, stamp)
    network = cache.network_means(selected, stamp)
except FullSpectrumError as error:
    widgets.error_box(error, what="This run cannot be read")
    layers = None

if layers is not None and layers.empty:
    st.info("This run has no spectral snapshots yet (a run records one at step 0 as soon as it starts).")
elif layers is not None:
    names = list(dict.fromkeys(layers["layer"]))
    steps = sorted(int(s) for s in layers["step"].unique())
    picker, options = st.columns([3, 1])
    chosen = picker.multiselect(
        "Layers", names, default=names[:MAX_DEFAULT_LAYERS], key=f"traj_layers_{selected}"
    )
    show_network = options.checkbox("network mean", value=True, key="traj_network")
    step = (
        st.select_slider(
            "Step (moves a marker on every layer)", options=steps, value=steps[-1], key="traj_step"
        )
        if len(steps) > 1
        else steps[0]
    )
    figure = trajectory_figure(
        layers, selected_layers=chosen, step=step, network=network if show_network else None
    )
    st.plotly_chart(figure, key="traj_3d")
    st.plotly_chart(
        metrics_figure(layers, evals, selected_layers=chosen, network=network, step=step),
        key="traj_metrics",
    )
    at_step = layers[(layers["layer"].isin(chosen)) & (layers["step"] == step)]
    with st.expander(f"Per-layer values at step {step}"):
        st.dataframe(
            at_step[["layer", *VECTOR_AXES, "moving_distance", "exploration_rate", "density", "in_regime"]],
            hide_index=True,
        )

# -- across runs ---------------------------------------------------------------------------------------
st.subheader("Across runs: final distance vs final accuracy")
st.caption(
    "FS23 (Fig. 3) find the final ℓ2-moving distance tracks final accuracy; MGE24 warn that across "
    "densities both follow density. The right plot is that density-only baseline; the table gives the "
    "correlation within each density and pooled once each density's mean is removed."
)
candidates = runs[(runs["kind"] == "train") & runs["final_accuracy"].notna()]
if candidates.empty:
    st.info("No finished training runs yet: the correlation needs runs with a final test accuracy.")
    st.stop()
labels = {row["path"]: widgets.run_label(row) for row in candidates.to_dict("records")}
picked = st.multiselect(
    "Runs", list(labels), default=list(labels), format_func=labels.get, key="traj_corr_runs"
)
if len(picked) < 3:
    st.info("Pick at least three finished runs to see a correlation.")
    st.stop()
try:
    study = cache.correlation_study(tuple(picked), tuple(cache.run_stamp(p) for p in picked))
except FullSpectrumError as error:
    widgets.error_box(error, what="Correlation")
    st.stop()
st.plotly_chart(correlation_figure(study), key="traj_corr")
summary = pd.DataFrame(
    [
        {"what": "distance vs accuracy, all runs", "n": study.distance.n, "pearson": study.distance.pearson,
         "spearman": study.distance.spearman},
        {"what": "density vs accuracy (baseline)", "n": study.density.n, "pearson": study.density.pearson,
         "spearman": study.density.spearman},
        {"what": "distance vs accuracy, density held fixed", "n": study.pooled_within.n,
         "pearson": study.pooled_within.pearson, "spearman": study.pooled_within.spearman},
    ]
)  # fmt: skip
left, right = st.columns(2)
left.dataframe(summary, hide_index=True)
right.dataframe(study.within_density.rename(columns={"n": "runs"}), hide_index=True)
