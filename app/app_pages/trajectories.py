"""Trajectories page: each layer's full-spectrum coordinate over training (FS23 §4), and across runs
final ℓ2-moving distance vs final accuracy beside the density-only baseline (FS23 Fig. 3; MGE24)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.correlation import study_reading
from app import cache, export, glossary, layer_groups, widgets
from app.charts.trajectories import correlation_figure, place_marker, with_step_line
from fullspectrum.errors import FullSpectrumError
from fullspectrum.spectrum import VECTOR_AXES


def _ci(interval) -> str:
    low, high = interval
    return f"{low:+.2f} to {high:+.2f}" if math.isfinite(low) and math.isfinite(high) else "n/a"


MAX_DEFAULT_LAYERS = 8  # layers drawn by default (deep networks have dozens; the picker adds more)
PLAY_HELP = (
    "Adds ▶ Play / ❚❚ Pause buttons and a step slider inside the 3-D chart: they move the markers through "
    "the recorded steps in your browser, without asking the server. Off by default, because the chart then "
    "carries every step's markers and the Step slider below redraws more slowly."
)

st.title("Trajectories")
runs = widgets.load_runs()
selected = st.session_state.get("selected_run")

if runs.empty or not selected:
    st.info(
        "No runs to show. Pick a run in the sidebar once there is one: train with "
        "`fullspectrum train --out cached_runs/my_run` or start one on the **Live training** page."
    )
    st.stop()


def _layers_in_picked_blocks(selected: str, stamp: tuple, names: list[str]) -> list[str]:
    """``names``, narrowed by a block and a projection filter when the run repeats blocks (a
    transformer's hundreds of layers: "every ``down_proj``" at once); the layer picker offers these."""
    groups = layer_groups.grouped_layers(pd.DataFrame({"layer": names}), cache.run_info(selected, stamp))
    if not layer_groups.has_blocks(groups):
        return names
    blocks = layer_groups.block_order(groups.loc[groups["block"] != "", "block"])
    projections = layer_groups.projection_order(groups)
    left, right = st.columns(2)
    picked_blocks = left.multiselect(
        "Blocks", blocks, key=f"traj_blocks_{selected}", placeholder="all blocks"
    )
    picked_projections = right.multiselect(
        "Projections", projections, key=f"traj_projections_{selected}", placeholder="all projections"
    )
    kept = layer_groups.filter_layers(groups, picked_blocks, picked_projections)["layer"].tolist()
    st.caption(f"{len(kept)} of {len(names)} layers ({len(blocks)} blocks × {len(projections)} projections)")
    return kept


@st.fragment
def one_run(selected: str) -> None:
    """One run's trajectories; a fragment, so the step slider reruns this part only (fast), not the
    cross-run study below."""
    st.subheader(f"One run: {Path(selected).name}")
    stamp = cache.run_stamp(selected)
    try:
        layers = cache.run_layers(selected, stamp)
        cache.run_evals(selected, stamp)  # read here (cached) so that an unreadable run says so in one line;
        cache.network_means(selected, stamp)  # the chart bases below reuse both
    except FullSpectrumError as error:
        widgets.error_box(error, what="This run cannot be read")
        layers = None

    if layers is not None and layers.empty:
        st.info("This run has no spectral snapshots yet (a run records one at step 0 as soon as it starts).")
    elif layers is not None and layers["step"].nunique() == 1:
        st.info(
            "This run has a single snapshot (an analysed or uploaded checkpoint): a trajectory needs two or more "
            "steps. Its full-spectrum coordinate per layer is below; open it in the **Graph inspector** to see "
            "each layer's graph."
        )
        shown = [c for c in ("layer", *VECTOR_AXES, "density", "in_regime") if c in layers.columns]
        export.table(
            layers[shown],
            f"layers {Path(selected).name}",
            hide_index=True,
            column_config=glossary.column_help(shown),
        )
    elif layers is not None:
        names = _layers_in_picked_blocks(selected, stamp, list(dict.fromkeys(layers["layer"])))
        steps = sorted(int(s) for s in layers["step"].unique())
        picker, options = st.columns([3, 1])
        chosen = picker.multiselect(
            "Layers",
            names,
            default=names[:MAX_DEFAULT_LAYERS],
            key=f"traj_layers_{selected}_{hash(tuple(names))}",
        )
        show_network = options.checkbox("network mean", value=True, key="traj_network")
        play = options.toggle("Play the steps in the chart", value=False, key="traj_play", help=PLAY_HELP)
        step = st.select_slider(
            "Step (moves a marker on every layer)", options=steps, value=steps[-1], key="traj_step"
        )
        # The figures are built once per run and choice of layers (cached); a step only places the marker
        # and the line, unvalidated (the builders' tests validate every part), so the slider reacts at once.
        # Without Play the 3-D figure carries no animation frames: the browser re-receives only the traces.
        base = cache.trajectory_chart_base(selected, stamp, tuple(chosen), show_network)
        export.chart(
            place_marker(base, step, play=play, validate=False),
            f"trajectory {Path(selected).name}",
            key="traj_3d",
        )
        export.chart(
            with_step_line(cache.metrics_chart_base(selected, stamp, tuple(chosen)), step, validate=False),
            f"trajectory metrics {Path(selected).name}",
            key="traj_metrics",
        )
        at_step = layers[(layers["layer"].isin(chosen)) & (layers["step"] == step)]
        with st.expander(f"Per-layer values at step {step}"):
            shown = ["layer", *VECTOR_AXES, "moving_distance", "exploration_rate", "density", "in_regime"]
            export.table(
                at_step[shown],
                f"trajectory values {Path(selected).name} step {step}",
                hide_index=True,
                column_config=glossary.column_help(shown),
            )
        glossary.expander(
            ["u", "Δr", "λ", "Δr_imdb", "λ_imsg", "ℓ2-moving distance", "exploration rate", "in_regime"]
        )


one_run(selected)

# -- across runs ---------------------------------------------------------------------------------------
st.subheader("Across runs: final distance vs final accuracy")
st.caption(
    "FS23 (Fig. 3) find the final ℓ2-moving distance tracks final accuracy; MGE24 warn that across "
    "densities both follow density. Runs are studied per dataset and model (their accuracies are not "
    "comparable), by requested density; the right plot is the density-only baseline, and the tables give "
    "95% bootstrap intervals, the correlation within each density and pooled once each density's mean is "
    "removed."
)
candidates = runs[(runs["kind"] == "train") & runs["final_accuracy"].notna()]
if candidates.empty:
    st.info("No finished training runs yet: the correlation needs runs with a final test accuracy.")
    st.stop()
labels = {row["path"]: widgets.run_label(row) for row in candidates.to_dict("records")}
picked = st.multiselect(
    "Runs", list(labels), default=list(labels), format_func=labels.get, key="traj_corr_runs"
)
include_chance = st.checkbox(
    "include runs that ended at chance", value=False, key="traj_corr_chance",
    help="A run whose test accuracy is no better than guessing learned nothing; it is left out by default.",
)  # fmt: skip
if len(picked) < 3:
    st.info("Pick at least three finished runs to see a correlation.")
    st.stop()
try:
    studies = cache.correlation_studies(
        tuple(picked), tuple(cache.run_stamp(p) for p in picked), include_chance=include_chance
    )
except FullSpectrumError as error:
    widgets.error_box(error, what="Correlation")
    st.stop()
excluded = studies.excluded_at_chance
if len(excluded):
    names = ", ".join(excluded["label"].astype(str).tolist()[:5]) + ("…" if len(excluded) > 5 else "")
    st.warning(
        f"{len(excluded)} run{'s' if len(excluded) != 1 else ''} that ended at chance left out ({names}); "
        "tick the box above to include them."
    )
groups = [study for study in studies.groups if study.distance.n or study.left_out]
if len(groups) > 1:
    st.caption(f"{len(groups)} dataset/model groups: one chart each, never pooled.")
tabs = st.tabs([f"{study.data} · {study.model}" for study in groups]) if groups else []
for tab, study in zip(tabs, groups, strict=True):
    with tab:
        st.markdown(study_reading(study))
        key = f"traj_corr_{study.data}_{study.model}"
        export.chart(correlation_figure(study), f"distance vs accuracy {study.data} {study.model}", key=key)
        summary = pd.DataFrame(
            [
                {"what": what, "n": result.n, "pearson": result.pearson, "pearson 95% CI": _ci(result.pearson_ci),
                 "spearman": result.spearman, "spearman 95% CI": _ci(result.spearman_ci)}
                for what, result in (
                    ("distance vs accuracy, all runs", study.distance),
                    ("density vs accuracy (baseline)", study.density),
                    ("distance vs accuracy, density held fixed", study.pooled_within),
                )
            ]
        )  # fmt: skip
        left, right = st.columns(2)
        export.table(summary, f"correlations {study.data} {study.model}", container=left, hide_index=True)
        export.table(
            study.within_density.rename(columns={"n": "runs"}),
            f"correlation by density {study.data} {study.model}",
            container=right,
            hide_index=True,
            column_config={"density": st.column_config.NumberColumn("requested density", format="%g")},
        )
