"""Graph inspector: one layer's mask as a bipartite graph (SPEC §1) with its degree classes, the
extracted regular subgraphs of FS23 (SPEC §3), its degree distributions and its top singular values
against the bipartite Ramanujan bound (R23).

A transformer's hundreds of layers are picked by block and projection first; an N:M layer says so
in one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.glossary import help_text
from app import cache, glossary, layer_groups, widgets
from app.charts.graph import bipartite_figure, degree_histograms_figure, singular_values_figure
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.groups import layer_groups as groups_of
from fullspectrum.layers.nm import nm_pattern
from fullspectrum.spectrum import metric_label, metric_symbol

CLASS_COLUMNS = ["d_c", "n_c", "l_c", "r_c", "edges", "d_right", "delta_r_c", "lambda_c", "f_c", "qualifies"]
ALL = "all classes"
ANY = "any"

st.title("Graph inspector")
st.caption(
    "A layer's mask as a bipartite graph: input units (kernel taps of input channels) on the left, output "
    "units on the right. Each degree class — the input units sharing one degree, with all their edges — is "
    "a left-regular subgraph (FS23); qualifying classes enter Δr_imdb."
)
runs = widgets.load_runs()
if runs.empty:
    st.info(
        "No runs yet. Make one with `fullspectrum train --out cached_runs/my_run` (or `fullspectrum pags`), "
        "or start one on the **Live training** page; its masks appear here."
    )
    st.stop()

run = widgets.run_picker("Run", runs, preferred=st.session_state.get("selected_run"), key="gi_run")
stamp = cache.run_stamp(run)
try:
    steps = cache.run_mask_steps(run, stamp)
except (FullSpectrumError, OSError) as error:
    widgets.error_box(error, what=f"Run {Path(run).name} cannot be read")
    st.stop()
if not steps:
    unstored = [
        note for note in cache.run_info(run, stamp).get("notes") or [] if note.startswith("masks not stored")
    ]
    st.info(
        f"No masks to draw: {unstored[0]}." if unstored
        else "This run stored no mask snapshots yet (training runs store one at step 0 and at every snapshot)."
    )  # fmt: skip
    st.stop()

pick_step, pick_layer = st.columns(2)
step = pick_step.selectbox("Step", steps, index=len(steps) - 1, key=f"gi_step_{run}")
try:
    names = cache.mask_source(("run", run, int(step)), stamp).layers()
except (FullSpectrumError, OSError) as error:
    widgets.error_box(error, what=f"Masks of step {step} cannot be read")
    st.stop()
groups = pd.DataFrame(groups_of(names), columns=["block", "projection"]).assign(layer=names)
if layer_groups.has_blocks(groups):  # hundreds of layers: narrow the picker by block and projection first
    pick_block, pick_projection = pick_layer.columns(2)  # right above the layer picker they narrow
    block = pick_block.selectbox(
        "Block",
        [ANY, *layer_groups.block_order(groups.loc[groups["block"] != "", "block"])],
        key=f"gi_block_{run}",
    )
    projection = pick_projection.selectbox(
        "Projection", [ANY, *layer_groups.projection_order(groups)], key=f"gi_projection_{run}"
    )
    narrowed = layer_groups.filter_layers(
        groups, [] if block == ANY else [block], [] if projection == ANY else [projection]
    )
    names = narrowed["layer"].tolist()
    if not names:
        st.info(f"Block {block} has no {projection} layer.")
        st.stop()
layer = pick_layer.selectbox("Layer", names, key=f"gi_layer_{run}")
try:
    view = cache.layer_view(run, step, layer, stamp)
except (FullSpectrumError, OSError) as error:
    widgets.error_box(error, what=f"Layer {layer} cannot be analysed")
    st.stop()

spectrum, classes, mask = view.spectrum.as_dict(), view.classes, view.mask
# The run recorded this layer's metrics at this step with the weights of that moment; where the
# snapshot kept no weights, masks alone cannot give the weighted ones, so the recorded row wins.
recorded = cache.run_layers(run, stamp).query("step == @step and layer == @layer")
if not recorded.empty and view.omega is None:
    spectrum = {**spectrum, **recorded.iloc[0].to_dict()}
if view.omega is None:
    st.caption(
        "This snapshot stores no weights (a training run keeps them at its first and last snapshots "
        "only): the class table's λ_c is left blank; the layer's λ above is the value the run recorded."
    )
cols = st.columns(6)
for col, (label, value) in zip(
    cols,
    (
        *((metric_symbol(name), spectrum[name]) for name in ("delta_r", "lambda_w", "delta_r_imdb")),
        (metric_label("n_classes"), spectrum["n_classes"]),
        ("dead inputs / outputs", f"{spectrum['dead_left']} / {spectrum['dead_right']}"),
        (metric_label("dead_in_channels"), spectrum["dead_in_channels"]),
    ),
    strict=True,
):
    col.metric(label, f"{value:.4g}" if isinstance(value, float) else value, help=help_text(label) or None)
if not spectrum["in_regime"] and spectrum["edges"]:
    st.caption("Mean degrees below 3: outside the Ramanujan regime (the bound's reading does not apply).")
stored = cache.grouped_run_layers(run, stamp).query("step == @step and layer == @layer")["nm_pattern"]
pattern = stored.iloc[0] if len(stored) and stored.iloc[0] else nm_pattern(mask)
if sentence := layer_groups.nm_sentence(pattern):
    st.info(sentence)

# -- degree classes -----------------------------------------------------------------------------------
st.subheader(f"Degree classes ({len(classes)}, {spectrum['n_classes']} qualifying)")
table = pd.DataFrame([{c: getattr(k, c) for c in CLASS_COLUMNS} for k in classes], columns=CLASS_COLUMNS)
st.dataframe(table, hide_index=True, width="stretch", column_config=glossary.column_help(CLASS_COLUMNS))
glossary.expander(["degree class", "d_c", "n_c", "l_c", "r_c", "f_c", "Δr_c", "λ_c", "qualifies", "Δr_imdb",
                   "λ_imsg", "in_regime"])  # fmt: skip

options = [ALL, *[int(k.d_c) for k in classes]]
picker, view_picker = st.columns([2, 1])
chosen = picker.selectbox(
    "Show degree class",
    options,
    format_func=lambda d: d if d == ALL else f"d_c = {d}",
    key=f"gi_class_{run}_{layer}",
)
views = ["auto", "units", "channels"] if mask.ndim > 2 else ["auto", "units"]
drawing = view_picker.radio("Drawing", views, horizontal=True, key="gi_view")
figure = bipartite_figure(mask, classes, selected=None if chosen == ALL else chosen, view=drawing, name=layer)
st.plotly_chart(figure, width="stretch", key="gi_graph")

# -- degrees and spectrum -----------------------------------------------------------------------------
left, right = st.columns(2)
left.plotly_chart(degree_histograms_figure(mask, name=layer), width="stretch", key="gi_degrees")
right.plotly_chart(
    singular_values_figure(
        view.sigma, spectrum["d_left"], spectrum["d_right"], weighted=view.omega, name=layer
    ),
    width="stretch",
    key="gi_sigma",
)
