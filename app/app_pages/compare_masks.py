"""Compare masks: two masks of one network side by side — per-layer full-spectrum metrics with deltas,
overlap, dead units and channels, degree-class composition (FS23, SPEC §2–3) and degree-sorted adjacency
heat maps (the graphon estimate of G25, SPEC §7) — with a plain-language summary of how they differ."""

from __future__ import annotations

import streamlit as st

from analysis.compare_views import layers_side_by_side, metrics_side_by_side, ntk_side_by_side
from analysis.unrolled_view import source_network
from app import cache, export, glossary, widgets
from app.charts.compare import composition_figure, difference_bars, graphon_figure, iou_bars
from fullspectrum.cli.app import UPLOAD_LIMIT_MB
from fullspectrum.data import DATASET_NAMES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import MODEL_NAMES
from fullspectrum.runs.uploads import StoredUpload
from fullspectrum.sampling import ASSEMBLED, BASE, STORED_MASKS, candidate_label
from fullspectrum.spectrum import VECTOR_AXES, metric_label

KINDS = {"run": "Run snapshot", "candidate": "PAGS candidate", "upload": "Upload"}
# Mask source kinds (``analysis.mask_sources``) and how the picker names them.
TABLE_METRICS = [
    *VECTOR_AXES,
    "density",
    "dead_in_channels",
    "dead_right",
    "n_classes",
    "classes",
    "in_regime",
]
CHART_METRICS = ("delta_r_imdb", "delta_r", "lambda_w", "dead_in_channels")
CLASS_COUNTS = ("dead_left", "dead_in_channels", "dead_right", "n_classes", "classes")
# The counts shown under the degree classes of one layer.
ERRORS = (FullSpectrumError, OSError, KeyError, RuntimeError)
UPLOAD_TYPES = ["pt", "pth", "bin", "safetensors"]

st.title("Compare masks")
st.caption(
    "Pick two masks of the same network (snapshots of runs, PAGS candidates, or uploaded checkpoints) to "
    "see, layer by layer, how their graphs differ — the reasons one mask may train better than another."
)
runs = widgets.load_runs()
readable = runs[runs["status"] != "corrupt"] if not runs.empty else runs
pags_runs = readable[readable["kind"] == "pags"] if not readable.empty else readable
labels = {row["path"]: widgets.run_label(row) for row in runs.to_dict("records")}
uploaded: dict[str, StoredUpload] = {}
# Side -> the upload it shows (its content digest is the cache stamp).


def _readable(error: BaseException) -> str:
    """The error's first line, with the stored paths of uploads replaced by the users' file names."""
    text = str(error)
    for stored in uploaded.values():
        text = stored.message(text)
    return text


def _apply_request(side: str) -> None:
    """Pre-fill the pickers of ``side`` from ``st.session_state["compare_<side>"]`` (set by the PAGS lab)."""
    request = st.session_state.get(f"compare_{side}")
    if not request or st.session_state.get(f"_cmp_applied_{side}") == request:
        return
    st.session_state[f"_cmp_applied_{side}"] = dict(request)
    kind = request.get("kind", "run")
    st.session_state[f"cmp_kind_{side}"] = KINDS.get(kind, KINDS["run"])
    if request.get("run"):
        st.session_state[f"cmp_{'pags' if kind == 'candidate' else 'run'}_{side}"] = str(request["run"])
    if kind == "run" and request.get("step") is not None:
        st.session_state[f"cmp_step_{side}"] = int(request["step"])
    if kind == "candidate" and request.get("candidate") is not None:
        st.session_state[f"cmp_cand_{side}"] = int(request["candidate"])


def _upload(side: str) -> tuple | None:
    """An uploaded checkpoint as a mask source, read at once: a file that is not one is refused and removed."""
    stored = widgets.upload_picker(
        f"Checkpoint (≤ {UPLOAD_LIMIT_MB} MB; read with weights_only, never executed)",
        key=f"cmp_upload_{side}",
        types=UPLOAD_TYPES,
    )
    if stored is None:
        return None
    source = ("upload", str(stored.path))
    try:
        cache.mask_source(source, (stored.digest,))
    except ERRORS as error:
        widgets.error_box(widgets.refuse_upload(stored, error, what=f"Mask {side.upper()} cannot be read"))
        return None
    uploaded[side] = stored
    return source


def _source(side: str, default_step_index: int) -> tuple | None:
    """The chosen mask source of one side as a hashable tuple, or None when not chosen."""
    _apply_request(side)
    kind_label = st.radio("Source", list(KINDS.values()), horizontal=True, key=f"cmp_kind_{side}")
    kind = next(k for k, v in KINDS.items() if v == kind_label)
    if kind == "upload":
        return _upload(side)
    choices = readable if kind == "run" else pags_runs
    if choices.empty:
        st.info(
            "No PAGS runs yet: start one on the **PAGS lab** page." if kind == "candidate" else "No runs yet."
        )
        return None
    paths = choices["path"].tolist()
    key = f"cmp_{'pags' if kind == 'candidate' else 'run'}_{side}"
    if st.session_state.get(key) not in paths:
        selected = st.session_state.get("selected_run")
        st.session_state[key] = selected if selected in paths else paths[0]
    path = st.selectbox("Run", paths, format_func=lambda p: labels.get(p, p), key=key)
    stamp = cache.run_stamp(path)
    if kind == "run":
        steps = cache.run_mask_steps(path, stamp)
        if not steps:
            st.info("This run stored no masks.")
            return None
        if st.session_state.get(f"cmp_step_{side}") not in steps:
            st.session_state[f"cmp_step_{side}"] = steps[default_step_index]
        step = st.selectbox("Step", steps, key=f"cmp_step_{side}")
        return ("run", path, int(step))
    population = cache.run_population(path, stamp)
    candidates = sorted(int(c) for c in population["candidate"].unique()) or [ASSEMBLED, BASE]
    if st.session_state.get(f"cmp_cand_{side}") not in candidates:
        st.session_state[f"cmp_cand_{side}"] = ASSEMBLED if side == "a" else BASE
    index = st.selectbox(
        "Candidate",
        candidates,
        format_func=lambda c: (
            candidate_label(c) + ("" if c in STORED_MASKS else " (regenerated from its seed and index)")
        ),
        key=f"cmp_cand_{side}",
    )
    return ("candidate", path, int(index))


if readable.empty and not st.session_state.get("compare_a"):
    st.info(
        "No runs to compare yet. Train (`fullspectrum train --out cached_runs/my_run`), sample "
        "(**PAGS lab**), or pick **Upload** below to compare two checkpoint files."
    )

pickers = st.columns(2)
sources = {}
for column, side, default_step in ((pickers[0], "a", -1), (pickers[1], "b", 0)):
    with column:
        st.subheader(f"Mask {side.upper()}")
        try:
            sources[side] = _source(side, default_step)
        except ERRORS as error:
            widgets.error_box(error, what=f"Mask {side.upper()} cannot be read")
            sources[side] = None

if sources["a"] is None or sources["b"] is None:
    st.info("Choose both masks to compare them.")
    st.stop()

stamps = tuple(
    (uploaded[side].digest,) if sources[side][0] == "upload" else cache.run_stamp(sources[side][1])
    for side in ("a", "b")
)
try:
    with st.spinner("Comparing the two masks (a candidate is regenerated from its seed the first time)…"):
        result, label_a, label_b = cache.mask_comparison(sources["a"], sources["b"], stamps)
except ERRORS as error:
    widgets.error_box(_readable(error), what="These masks cannot be compared")
    st.stop()

st.markdown(f"**A** = {label_a} · **B** = {label_b}")
st.subheader("Verdict: which mask should train better, and did it?")
try:
    answer, (links_a, links_b) = cache.verdict(sources["a"], sources["b"], stamps, cache.evidence_runs(runs))
except ERRORS as error:
    widgets.error_box(_readable(error), what="No verdict")
else:
    headline = "\n".join(f"- {sentence}" for sentence in answer.sentences)
    if answer.agrees is False:
        st.warning(headline)
    else:
        st.info(headline)
    export.table(
        answer.table(),
        "verdict",
        hide_index=True,
        width="stretch",
        column_config=glossary.column_help(["predictor", "A", "B", "better", "favours"]),
    )
    cross = [f"{side}: {link.sentence()}" for side, links in (("A", links_a), ("B", links_b))
             for link in links if link.sentence()]  # fmt: skip
    if cross:
        st.markdown("**Dead paths across layers**\n" + "\n".join(f"- {line}" for line in cross))
    glossary.expander(["PAGS score", "Δr_imdb", "dead paths", "IoU", "qualifies", "f_c"])

st.subheader("The whole network: unrolled view (MGE24) and NTK spectrum (G25)")
networks = {}
for side, source, stamp in (("a", sources["a"], stamps[0]), ("b", sources["b"], stamps[1])):
    try:
        if source[0] == "upload":
            found = source_network(source)
        else:
            found = cache.run_info(source[1], stamp).get("config") or {}
    except ERRORS as error:
        found = {}
        widgets.error_box(_readable(error), what=f"Mask {side.upper()}'s network")
    if found.get("model") in MODEL_NAMES and found.get("data") in DATASET_NAMES:
        networks[side] = (str(found["model"]), str(found["data"]), found.get("data_dir"))
if len(networks) < 2:
    st.info(
        "The unrolled view needs each mask's zoo model and dataset; an upload names them in its `meta` "
        "(open it on the Unrolled view page to pick them by hand)."
    )
else:
    try:
        with st.spinner("Building both unrolled graphs…"):
            view_a = cache.unrolled(sources["a"], stamps[0], networks["a"], "identity", False)
            view_b = cache.unrolled(sources["b"], stamps[1], networks["b"], "identity", False)
    except ERRORS as error:
        widgets.error_box(_readable(error), what="No unrolled view")
    else:
        st.caption(
            "Effective weights lie on a path from the input to the output; the others cannot carry the "
            "input's signal (Vysogorets & Kempe 2021). Topometrics as MGE24 define them."
        )
        left, right = st.columns(2)
        export.table(
            layers_side_by_side(view_a.layers, view_b.layers),
            "effective paths per layer",
            container=left,
            hide_index=True,
            width="stretch",
            key="cmp_paths",
        )
        export.table(
            metrics_side_by_side(view_a.metrics, view_b.metrics),
            "topometrics",
            container=right,
            hide_index=True,
            width="stretch",
            key="cmp_topo",
            column_config={"meaning": st.column_config.TextColumn("meaning", width="large")},
        )
    if st.toggle(
        "Also compare their empirical NTK spectra (seconds for an MLP, longer for a convnet)", key="cmp_ntk"
    ):
        try:
            with st.spinner("Computing both empirical NTKs on 64 training inputs…"):
                ntk_a = cache.ntk_spectrum_of(sources["a"], stamps[0], networks["a"], 64)
                ntk_b = cache.ntk_spectrum_of(sources["b"], stamps[1], networks["b"], 64)
        except ERRORS as error:
            widgets.error_box(_readable(error), what="No NTK spectrum")
        else:
            export.table(
                ntk_side_by_side(ntk_a, ntk_b),
                "ntk spectra",
                hide_index=True,
                width="stretch",
                key="cmp_ntk_table",
            )
            st.caption(
                "G25 relate faster early training to an NTK whose energy sits in few eigenvalues; the "
                "Graphon & NTK page shows where that does not hold on this project's cached study."
            )

st.subheader("Summary")
st.markdown("\n".join(f"- {sentence}" for sentence in result.summary))

table = result.table
st.subheader("Per-layer metrics")
metrics = st.multiselect("Metrics", TABLE_METRICS, default=TABLE_METRICS[:4], key="cmp_metrics")
columns = ["layer", "shape", "iou", "u_distance"]
for metric in metrics:
    columns += [f"{metric}_a", f"{metric}_b", f"{metric}_delta"]
export.table(
    table[columns],
    "mask comparison",
    hide_index=True,
    width="stretch",
    column_config=glossary.column_help(columns),
)

export.chart(difference_bars(result.long(CHART_METRICS)), "mask differences", width="stretch", key="cmp_bars")
export.chart(iou_bars(table), "mask iou", width="stretch", key="cmp_iou")

st.subheader("One layer: graphon estimate and degree classes")
layer = st.selectbox("Layer", table["layer"].tolist(), key="cmp_layer")
try:
    values_a, values_b = cache.graphon_pair(sources["a"], sources["b"], layer, stamps)
    export.chart(
        graphon_figure(values_a, values_b, layer=layer),
        f"graphon {layer}",
        width="stretch",
        key="cmp_graphon",
    )
except ERRORS as error:
    widgets.error_box(_readable(error), what=f"Graphon of {layer}")
export.chart(
    composition_figure(result.classes, layer), f"degree classes {layer}", width="stretch", key="cmp_classes"
)
row = table.set_index("layer").loc[layer]
export.table(
    {
        "": [metric_label(m) for m in CLASS_COUNTS],
        "A": [int(row[f"{m}_a"]) for m in CLASS_COUNTS],
        "B": [int(row[f"{m}_b"]) for m in CLASS_COUNTS],
    },
    f"class counts {layer}",
    hide_index=True,
)
