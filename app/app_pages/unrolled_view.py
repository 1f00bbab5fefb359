"""Unrolled view: a whole network as one graph from the input to the output (MGE24, SPEC §7) — kept vs
effective weights per layer, live units per partition, the topometrics with their meanings — and which
metrics predict accuracy over finished runs (MGE24 §4), beside the density-only baseline."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analysis.correlation import study_reading
from analysis.glossary import help_text
from analysis.predictors import BASELINE, MIN_RUNS
from analysis.unrolled_view import TERMS, source_network
from app import cache, export, glossary, widgets
from app.charts.unrolled import effective_bars, live_flow, predictor_figure
from fullspectrum.data import DATASET_NAMES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import MODEL_NAMES
from fullspectrum.topology import SKIP_MODES

ERRORS = (FullSpectrumError, OSError, KeyError, RuntimeError, ValueError)
SKIP_HELP = {
    "identity": "identity shortcuts as fixed weight-1 edges (the faithful graph)",
    "none": "identity shortcuts left out (MGE24's graph)",
}

st.title("Unrolled view")
st.caption(
    "MGE24 read a sparse network as one graph: a node per unit of every feature map (the input included), "
    "an edge per kept weight and position. A kept weight is **effective** when it lies on a path from the "
    "input to the output; the others spend budget on nothing (Vysogorets & Kempe 2021)."
)
runs = widgets.load_runs()


def _network(source: tuple, stamp: tuple) -> tuple | None:
    """``(model, data, data_dir)`` of a mask source: from its run, or from an upload's meta, else asked."""
    if source[0] == "upload":
        found = source_network(source)
    else:
        config = cache.run_info(source[1], stamp).get("config") or {}
        found = {"model": config.get("model"), "data": config.get("data"), "data_dir": config.get("data_dir")}
    model, data = found.get("model"), found.get("data")
    if model not in MODEL_NAMES or data not in DATASET_NAMES:
        st.caption("The file does not name its zoo model and dataset (its `meta`): pick them.")
        left, right = st.columns(2)
        model = left.selectbox("Model", MODEL_NAMES, key="uv_model")
        data = right.selectbox("Dataset", DATASET_NAMES, key="uv_data")
    return str(model), str(data), found.get("data_dir")


def _unrolled_section() -> None:
    pick, options = st.columns([3, 2])
    with pick:
        picked = widgets.mask_source_picker(runs, key="uv")
    with options:
        skips = st.radio(
            "Identity shortcuts", SKIP_MODES, horizontal=True, format_func=lambda s: f"{s}: {SKIP_HELP[s]}",
            key="uv_skips",
        )  # fmt: skip
        compat = st.checkbox(
            "MGE24 compatibility (the input holds the first layer's zero padding)", key="uv_compat"
        )
    if picked is None:
        st.info("Choose a mask: a run snapshot, a PAGS candidate or an uploaded checkpoint.")
        return
    source, stamp = picked
    try:
        network = _network(source, stamp)
        bar = st.progress(0.0, text="Building the unrolled graph (1 of 2)…")
        cache.unrolled_graph_of(source, stamp, network, skips, compat)
        bar.progress(0.5, text="Effective paths and topometrics (2 of 2)…")
        view = cache.unrolled(source, stamp, network, skips, compat)
        bar.empty()
    except ERRORS as error:
        widgets.error_box(error, what=f"The unrolled graph of {source[1].rsplit('/', 1)[-1]} cannot be built")
        return
    metrics = view.topometrics
    cols = st.columns(5)
    for col, (label, value, term) in zip(
        cols,
        (
            ("nodes", f"{metrics['nodes']:,}", "unrolled nodes"),
            ("unrolled edges", f"{metrics['edges']:,}", "unrolled edges"),
            ("identity edges", f"{metrics['identity_edges']:,}", "identity edges"),
            ("density", f"{metrics['density']:.4f}", "density"),
            ("effective density", f"{metrics['effective_density']:.4f}", "effective density"),
        ),
        strict=True,
    ):
        col.metric(label, value, help=help_text(term) or None)
    layers = view.layers
    wasted = layers[layers["ineffective"] > 0]
    if wasted.empty:
        st.success("Every kept weight lies on an input → output path: no budget is wasted.")
    else:
        total = int(layers["ineffective"].sum())
        kept = int(layers["kept"].sum())
        lines = [
            f"`{row.layer}`: {row.ineffective:,} of {row.kept:,} kept weights ({row.ineffective / row.kept:.1%})"
            for row in wasted.itertuples()
        ]
        st.warning(
            f"{total:,} of {kept:,} kept weights ({total / kept:.1%}) are ineffective: they carry nothing "
            "from the input to the output.\n" + "\n".join(f"- {line}" for line in lines)
        )
    left, right = st.columns(2)
    export.chart(
        effective_bars(layers), "effective paths per layer", container=left, width="stretch", key="uv_bars"
    )
    export.chart(live_flow(view.partitions), "live units", container=right, width="stretch", key="uv_flow")
    dead = view.partitions[view.partitions["live"] < view.partitions["units"]]
    if not dead.empty:
        st.caption(
            "Units that are not live: "
            + "; ".join(f"`{r.partition}` {r.units - r.live:,} of {r.units:,}" for r in dead.itertuples())
            + " (reached from the input but not reaching the output, or the reverse)."
        )
    st.subheader("Topometrics (MGE24)")
    export.table(
        view.metrics,
        "topometrics",
        hide_index=True,
        width="stretch",
        column_config={
            "meaning": st.column_config.TextColumn("meaning", width="large"),
            "normalised": st.column_config.NumberColumn("normalised", help=help_text("normalised")),
            "value": st.column_config.NumberColumn("value", format="%.6g"),
        },
    )
    with st.expander("What each topometric means (the table's last column in full)", expanded=False):
        # a table cell cuts long text; the full sentences are readable here
        st.markdown("\n".join(f"- **{row.metric}**: {row.meaning}" for row in view.metrics.itertuples()))
    glossary.expander([TERMS.get(name, name) for name in ("nodes", "edges", "kept", "live")]
                      + ["effective weights", "ineffective weights", "effective density", "normalised"])  # fmt: skip
    with st.expander("Per layer and per partition", expanded=False):
        export.table(layers, "unrolled layers", hide_index=True, width="stretch")
        export.table(view.partitions, "unrolled partitions", hide_index=True, width="stretch")
    for note in view.notes:
        st.caption(note)


def _interval(value: float, low: float, high: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _predictor_section() -> None:
    st.subheader("Which metrics predict accuracy? (MGE24 §4)")
    st.caption(
        "A random forest from each feature set of the final masks to the final test accuracy, 5-fold "
        "cross-validated (folds seeded), over finished training runs of **one** model and dataset (never "
        "pooled). Density alone is the baseline: a set helps only if it beats it."
    )
    finished = runs[
        (runs["kind"] == "train") & (runs["status"] == "finished") & runs["final_accuracy"].notna()
    ]
    if finished.empty:
        st.info(
            f"No finished training runs yet; the study needs at least {MIN_RUNS} of one model and dataset."
        )
        return
    groups = finished.groupby(["model", "data"]).size()
    usable = [(m, d) for (m, d), n in groups.items() if n >= MIN_RUNS]
    if not usable:
        st.info(f"No model and dataset has {MIN_RUNS} finished training runs yet (the study's minimum).")
        return
    group = st.selectbox(
        "Model and dataset",
        usable,
        format_func=lambda g: f"{g[0]} on {g[1]} ({groups[g]} runs)",
        key="uv_group",
    )
    if not st.toggle("Run the study on these runs", key="uv_study"):
        return
    chosen = finished[(finished["model"] == group[0]) & (finished["data"] == group[1])]
    paths = tuple(sorted(chosen["path"]))
    try:
        with st.spinner(f"Reading the final masks of {len(paths)} runs and fitting the forests…"):
            studies, _ = cache.predictor_study_of(paths, tuple(cache.run_stamp(p) for p in paths))
    except ERRORS as error:
        widgets.error_box(error, what="The predictor study cannot run")
        return
    study = studies.get((str(group[0]), str(group[1])))
    if study is None:
        st.info(f"Fewer than {MIN_RUNS} of these runs have a final mask and accuracy the study can read.")
        return
    table = study.table()
    table = pd.concat([table[table["feature_set"] == BASELINE], table[table["feature_set"] != BASELINE]])
    (st.info if any(table["beats_density"]) else st.warning)(study.verdict)
    shown = pd.DataFrame(
        {
            "feature set": table["feature_set"],
            "features": table["features"],
            "R² [95% CI]": [_interval(*r) for r in table[["r2", "r2_low", "r2_high"]].to_numpy()],
            "Spearman ρ [95% CI]": [
                _interval(*r) for r in table[["spearman", "spearman_low", "spearman_high"]].to_numpy()
            ],
            "R² − density [95% CI]": [
                "baseline" if name == BASELINE else _interval(*r)
                for name, r in zip(
                    table["feature_set"],
                    table[["r2_minus_density", "difference_low", "difference_high"]].to_numpy(),
                )
            ],
            "beats density": table["beats_density"],
        }
    )
    export.table(shown, "predictors", hide_index=True, width="stretch")
    export.chart(predictor_figure(table), "predictors", width="stretch", key="uv_predictors")
    _fs23_correlation(paths, str(group[1]), str(group[0]))
    if study.skipped:
        st.caption(f"Feature sets with no usable column in these runs: {', '.join(study.skipped)}.")
    with st.expander("Feature importances (a forest fitted on every run)", expanded=False):
        export.table(study.importances, "feature importances", hide_index=True, width="stretch")
    glossary.expander(["cross-validated R²", "Spearman", "density-only baseline", "ℓ2-moving distance"])


def _fs23_correlation(paths: tuple[str, ...], data: str, model: str) -> None:
    """FS23's Figure-3 correlation over the same runs, beside the study (``analysis.correlation``)."""
    st.markdown("**Beside it, FS23's correlation on the same runs** (final ℓ2-moving distance vs accuracy):")
    try:
        studies = cache.correlation_studies(paths, tuple(cache.run_stamp(p) for p in paths))
        study = studies.group(data, model)
    except ERRORS as error:
        widgets.error_box(error, what="FS23's correlation")
        return
    st.markdown(study_reading(study))


_unrolled_section()
st.divider()
_predictor_section()
