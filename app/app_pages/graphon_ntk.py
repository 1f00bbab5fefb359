"""Graphon & NTK: G25's view of pruning methods (SPEC §7b) — a generator's graphon fingerprint per layer,
the width-convergence curves and the trainability study from the cached results, and NTK eigenvalue
spectra of several masks overlaid with their spectral summary — saying plainly where the studies find
G25's claims do not hold."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis.graphon_studies import (
    SPECTRUM_FIELDS,
    claims_not_holding,
    eigenvalue_shares,
    spectrum_shares,
    summary_row,
    trainability_folders,
)
from analysis.unrolled_view import source_network
from app import cache, export, glossary, widgets
from app.charts.graphon import (
    fingerprint_figure,
    loss_curves_figure,
    spectra_figure,
    trainability_figure,
    width_curves_figure,
)
from fullspectrum.data import DATASET_NAMES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.fingerprints import DEFAULT_K
from fullspectrum.models import MODEL_NAMES
from fullspectrum.pruning import GENERATOR_NAMES

ERRORS = (FullSpectrumError, OSError, KeyError, RuntimeError, ValueError)
MASKS_KEY = (
    "gn_masks"  # session list of the masks whose NTK the user added: (label, source, stamp, network, N)
)
SPECTRUM_TERMS = ["λ_max", "condition number", "effective rank", "top-5 energy", "decay α", "early descent"]

st.title("Graphon & NTK")
st.markdown(
    "G25 (*The Graphon Limit Hypothesis*, NeurIPS 2025) say that the masks a pruning method draws converge, "
    "as width grows, to a **graphon** — the method's fingerprint — and that the spectrum of the resulting "
    "NTK explains why some sparse networks train faster. Graphon estimates here sort each side's units by "
    f"degree into **K** equal blocks; **K = {DEFAULT_K} is this project's default, not G25's** (they state "
    "none). The NTKs shown are empirical (measured on a batch); the graphon NTK recursion of SPEC §7b is "
    "exact only with a dense first layer — with a sparse first layer it is a **mean-field approximation** "
    "(4–7% off at 64 inputs)."
)


def _ci_text(ci: dict | None) -> str:
    """``mean [low, high]`` of a stored t interval (``—`` when there is none)."""
    if not ci or ci.get("mean") is None or math.isnan(ci["mean"]):
        return "—"
    low, high = ci.get("low"), ci.get("high")
    bounds = "" if low is None or math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
    return f"{ci['mean']:+.3f}{bounds}"


def _graphon_roots() -> list[Path]:
    """``graphon/`` under each of the app's run folders that has one."""
    return [Path(root) / "graphon" for root in widgets.run_roots() if (Path(root) / "graphon").is_dir()]


roots = _graphon_roots()
root = roots[0] if roots else None
width = trainability = None
studies: dict = {}
if root is None:
    st.info(
        "No cached G25 studies in the run folders (a `graphon/` folder, as `cached_runs/graphon/`): run "
        "`python scripts/make_graphon_studies.py`. Fingerprints and NTK spectra can still be drawn below."
    )
else:
    if (root / "width").is_dir():
        try:
            width = cache.width_study(str(root / "width"), cache.folder_stamp(str(root / "width")))
        except ERRORS as error:
            widgets.error_box(error, what="The width study cannot be read")
    for folder in trainability_folders(root):
        try:
            studies[folder.name] = cache.trainability_study(str(folder), cache.folder_stamp(str(folder)))
        except ERRORS as error:
            widgets.error_box(error, what=f"The trainability study {folder.name} cannot be read")
    failures = claims_not_holding(width, studies)
    if failures:
        st.warning(
            "**Where the cached studies find G25's claims do not hold:**\n"
            + "\n".join(f"- {line}" for line in failures)
        )
    elif width is not None or studies:
        st.success("In the cached studies every width curve falls and the trainability claim holds.")

# -- fingerprints -------------------------------------------------------------------------------------------
st.subheader("A generator's fingerprint per layer")
modes = ["From the cached width study", "Draw now"] if width is not None else ["Draw now"]
mode = st.radio("Fingerprint", modes, horizontal=True, key="gn_fp_mode")
if mode == "From the cached width study":
    config = width.record.get("config", {})
    generators = list(dict.fromkeys(g for g, _, _ in width.estimates))
    widths = sorted({n for _, n, _ in width.estimates})
    left, right = st.columns(2)
    generator = left.selectbox("Generator", generators, key="gn_fp_gen")
    chosen_width = right.select_slider("Hidden width n", widths, value=widths[-1], key="gn_fp_width")
    layers = {
        layer: v for (g, n, layer), v in width.estimates.items() if g == generator and n == chosen_width
    }
    shape = next(iter(layers.values())).shape if layers else ()
    export.chart(
        fingerprint_figure(
            layers,
            title=f"{generator} at width {chosen_width}, density {config.get('density')}: mean over seeds "
            f"{config.get('seeds')} ({shape[-1] if shape else '?'} blocks stored; distances use K = {config.get('K')})",
        ),
        f"fingerprint {generator} width {chosen_width}",
        width="stretch",
        key="gn_fp_cached",
    )
else:
    cols = st.columns(5)
    generator = cols[0].selectbox("Generator", GENERATOR_NAMES, key="gn_draw_gen")
    data = cols[1].selectbox("Dataset", ["digits", "mnist1d"], key="gn_draw_data")
    density = cols[2].number_input(
        "Density", 0.001, 1.0, 0.05, step=0.01, format="%.3f", key="gn_draw_density"
    )
    hidden = cols[3].selectbox("Hidden width", [64, 128, 256, 512], index=2, key="gn_draw_width")
    K = cols[4].number_input(f"K (default {DEFAULT_K}: ours, not G25's)", 1, 512, DEFAULT_K, key="gn_draw_K")
    seeds = st.slider("Seeds", 1, 5, 3, key="gn_draw_seeds")
    try:
        with st.spinner(f"Drawing {seeds} {generator} masks and estimating every layer…"):
            fp = cache.fingerprint(generator, data, float(density), int(hidden), tuple(range(seeds)), int(K))
        export.chart(
            fingerprint_figure(
                fp.mean,
                title=f"{generator} on a {hidden}-wide MLP for {data}, density {density:g}: mean of {seeds} "
                f"seeds at K = {K}",
            ),
            f"fingerprint {generator} width {hidden}",
            width="stretch",
            key="gn_fp_drawn",
        )
        st.caption(
            "Layer densities: " + ", ".join(f"`{name}` {d:.3f}" for name, d in fp.layer_densities.items())
        )
    except ERRORS as error:
        widgets.error_box(error, what=f"The fingerprint of {generator}")
glossary.expander(["graphon estimate", "successive distance"])

# -- width convergence ----------------------------------------------------------------------------------
st.subheader("The width limit: do the estimates settle as the MLP widens?")
if width is None:
    st.info(
        "No cached width study (`graphon/width/`): run `python scripts/make_graphon_studies.py --only width`."
    )
else:
    kind = st.radio(
        "Distance", ["successive", "to_widest"], horizontal=True, key="gn_width_kind",
        format_func=lambda k: "to the next width" if k == "successive" else "to the widest",
    )  # fmt: skip
    export.chart(
        width_curves_figure(width.curves, kind=kind), f"width study {kind}", width="stretch", key="gn_width"
    )
    shown = ["generator", "layer", "first", "last", "ratio", "falls", "flat", "density_narrowest", "density_widest",
             "verdict"]  # fmt: skip
    export.table(
        width.verdicts[[c for c in shown if c in width.verdicts.columns]], "width study verdicts",
        hide_index=True, width="stretch",
        column_config={"verdict": st.column_config.TextColumn("verdict", width="large")},
    )  # fmt: skip
    st.caption(
        "A global generator's, ER's and ERK's layer densities move with width at a fixed global density, so "
        "their first layer's estimate cannot settle: the verdicts give each layer's density at both ends."
    )

# -- NTK spectra ----------------------------------------------------------------------------------------
st.subheader("NTK eigenvalue spectra")
st.caption(
    "Eigenvalues as shares of the trace λ_k / Σλ (zoo models use PyTorch's parameterisation, so only the "
    "spectra's shapes compare). Cached: the trainability study's MLPs at initialisation, mean over seeds."
)
shares, summaries = [], []
study_name = next(iter(studies), None)
if study_name is not None:
    study = studies[study_name]
    generators = list(dict.fromkeys(study.eigenvalues["generator"]))
    picked = st.multiselect("Generators (cached)", generators, default=generators[:4], key="gn_ntk_gens")
    cached = spectrum_shares(study.eigenvalues[study.eigenvalues["generator"].isin(picked)])
    shares.append(cached.rename(columns={"generator": "mask"}).assign(mask=lambda t: t["mask"] + " (cached)"))
    own = study.runs[(study.runs["kind"] == "generator") & study.runs["generator"].isin(picked)]
    for generator, rows in own.groupby("generator", sort=False):
        summaries.append({"mask": f"{generator} (cached, mean of {len(rows)} seeds)",
                          **{f: float(rows[f].mean()) for f in SPECTRUM_FIELDS}})  # fmt: skip
with st.expander("Add a mask's NTK (a run snapshot, a PAGS candidate or an upload)", expanded=False):
    picked_source = widgets.mask_source_picker(widgets.load_runs(), key="gn_src")
    inputs = st.number_input("N (inputs from the training split)", 4, 256, 32, step=4, key="gn_inputs")
    if picked_source is not None:
        source, stamp = picked_source
        try:
            found = source_network(source)
            model, data = found.get("model"), found.get("data")
            if model not in MODEL_NAMES or data not in DATASET_NAMES:
                left, right = st.columns(2)
                model = left.selectbox("Model", MODEL_NAMES, key="gn_model")
                data = right.selectbox("Dataset", DATASET_NAMES, key="gn_data")
            label = cache.mask_source(source, stamp).label
            if st.button(f"Add {label}", key="gn_add"):
                entry = (label, source, stamp, (model, data, found.get("data_dir")), int(inputs))
                st.session_state.setdefault(MASKS_KEY, [])
                if entry not in st.session_state[MASKS_KEY]:
                    st.session_state[MASKS_KEY].append(entry)
        except ERRORS as error:
            widgets.error_box(error, what="This mask cannot be used")
    if st.session_state.get(MASKS_KEY) and st.button("Clear the added masks", key="gn_clear"):
        st.session_state[MASKS_KEY] = []
added = st.session_state.get(MASKS_KEY, [])
if added:
    bar = st.progress(0.0, text="Empirical NTKs of the added masks…")
    for i, (label, source, stamp, network, n) in enumerate(added):
        bar.progress(
            i / len(added), text=f"Empirical NTK of {label} on {n} inputs ({i + 1} of {len(added)})…"
        )
        try:
            spectrum = cache.ntk_spectrum_of(source, stamp, network, n)
        except ERRORS as error:
            widgets.error_box(error, what=f"The NTK of {label}")
            continue
        shares.append(eigenvalue_shares(f"{label} (N={n})", spectrum))
        summaries.append(summary_row(f"{label} (N={n})", spectrum))
    bar.empty()
if shares:
    export.chart(
        spectra_figure(pd.concat(shares, ignore_index=True)), "ntk spectra", width="stretch", key="gn_spectra"
    )
    export.table(
        pd.DataFrame(summaries), "ntk spectra summary", hide_index=True, width="stretch",
        column_config=glossary.column_help(SPECTRUM_FIELDS),
    )  # fmt: skip
else:
    st.info("No spectrum to show: pick cached generators or add a mask above.")

# -- trainability ---------------------------------------------------------------------------------------
st.subheader("Trainability: does NTK concentration track faster early descent?")
if not studies:
    st.info(
        "No cached trainability study (`graphon/trainability/`): run "
        "`python scripts/make_graphon_studies.py --only trainability`."
    )
else:
    name = st.radio(
        "Study", list(studies), horizontal=True, key="gn_train_study",
        format_func=lambda n: "sparse-aware initialisation" if "sparse" in n else "PyTorch's initialisation",
    )  # fmt: skip
    study = studies[name]
    config = study.record.get("config", {})
    st.caption(
        f"{config.get('data')} MLP {config.get('widths')}, density {config.get('density')}, seeds "
        f"{config.get('seeds')}, NTK on {config.get('ntk_inputs')} inputs, {config.get('iterations')} "
        "iterations of static sparse training; density-only: each mask's layer counts placed at random."
    )
    verdict = study.verdict
    (st.warning if "does NOT hold" in verdict else st.success)(verdict)
    measure = st.radio(
        "Concentration measure", ["top5_energy", "decay_alpha"], horizontal=True, key="gn_measure"
    )
    left, right = st.columns(2)
    export.chart(trainability_figure(study.runs, measure=measure), f"trainability {measure}", container=left,
                 width="stretch", key="gn_train")  # fmt: skip
    export.chart(
        loss_curves_figure(study.curves), "loss curves", container=right, width="stretch", key="gn_loss"
    )
    stats = study.record["statistics"]
    rows = []
    for generator, kinds in stats["per_generator"].items():
        mine = kinds.get("generator", {})
        paired = stats["vs_random"].get(generator, {})
        density_only = stats["vs_density_only"].get(generator, {})
        rows.append(
            {
                "generator": generator,
                "early descent": _ci_text(mine.get("descent")),
                "top5_energy": _ci_text(mine.get("top5_energy")),
                "vs Random (paired)": _ci_text(paired),
                "vs density-only (paired)": _ci_text(density_only),
                "collapsed runs": mine.get("collapsed_runs", 0),
            }
        )
    export.table(pd.DataFrame(rows), "trainability statistics", hide_index=True, width="stretch")
glossary.expander(SPECTRUM_TERMS)
