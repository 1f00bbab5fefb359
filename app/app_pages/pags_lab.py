"""PAGS lab: pruning at initialisation as graph sampling (FS23, SPEC §5). Launch a PAGS / PEGS sampling as
a job process, watch its progress, then explore the scored population — network-mean full-spectrum
coordinates in 3-D and a UMAP (or PCA) map of the per-layer vectors — with the base and assembled masks
highlighted, the per-layer winners, and any two masks sent to Compare masks or trained briefly."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import streamlit as st

from app import cache, export, glossary, widgets
from app.charts.pags import accuracy_figure, embedding_figure, population_3d_figure
from fullspectrum.data import DATASET_NAMES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import MODEL_NAMES
from fullspectrum.pruning import GENERATOR_NAMES
from fullspectrum.runs import jobs
from fullspectrum.runs.naming import run_folder_name
from fullspectrum.sampling import ASSEMBLED, BASE, candidate_label, candidate_slug, save_candidate_checkpoint

ERRORS = (FullSpectrumError, OSError, KeyError, ValueError)
_SELECT = "_pags_select"  # a sampling that just finished: the results section selects it once
_PROGRESS = re.compile(r"(warm-up|candidates)[^\n]*?(\d+)/(\d+)")

st.title("PAGS lab")
st.caption(
    "PAGS draws a population of masks from a pruning-at-initialisation generator, each with the base mask's "
    "per-layer budgets, scores every layer by its full-spectrum vector u = (Δr, λ, Δr_imdb, λ_imsg) and "
    "assembles the best layer of each (FS23). PEGS does the same after a short dense warm-up."
)

# -- launch ---------------------------------------------------------------------------------------------
with st.expander("New sampling", expanded=st.session_state.get("pags_job") is None):
    with st.form("pags_form"):
        c1, c2, c3 = st.columns(3)
        model = c1.selectbox("Model", MODEL_NAMES, key="pags_model")
        data = c2.selectbox("Data", DATASET_NAMES, key="pags_data")
        generator = c3.selectbox(
            "Generator", GENERATOR_NAMES, index=GENERATOR_NAMES.index("snip"), key="pags_gen"
        )
        c4, c5, c6, c7 = st.columns(4)
        density = c4.number_input("Density", 0.001, 1.0, 0.05, step=0.01, format="%.3f", key="pags_density")
        population = c5.number_input("Population", 2, 1000, 20, key="pags_population")
        warmup = c6.number_input("Warm-up iterations (0 = PAGS)", 0, 5000, 0, key="pags_warmup")
        seed = c7.number_input("Seed", 0, 2**31 - 1, 0, key="pags_seed")
        launched = st.form_submit_button("Start sampling")
    if launched:
        run_dir = cache.workspace_root() / run_folder_name(
            "pegs" if warmup else "pags", generator, model, data
        )
        arguments = ["--model", model, "--data", data, "--generator", generator, "--density", density,
                     "--population", int(population), "--warmup-iters", int(warmup), "--seed", int(seed),
                     "--out", run_dir]  # fmt: skip
        try:
            jobs.start_job("pags", arguments, run_dir)
            st.session_state["pags_job"] = str(run_dir)
        except ERRORS as error:
            widgets.error_box(error, what="The sampling could not start")

if st.session_state.get("pags_job") is None:  # a refresh or a second tab finds a running sampling again
    running = [job for job in jobs.find_running(cache.workspace_root()) if job.kind in (None, "pags")]
    if running:
        st.session_state["pags_job"] = str(running[0].run_dir)


def _phase(run_dir: str, job) -> tuple[float | None, str]:
    """Progress fraction and words: warm-up, candidates, then the map of the population (after the last
    candidate the job maps the population before it finishes; that phase has no counter)."""
    if job.status == "finished":
        return 1.0, "finished"
    match = _PROGRESS.findall(jobs.read_log(run_dir, max_chars=400))
    if match:
        phase, done, total = match[-1]
        done, total = int(done), max(1, int(total))
        if phase == "candidates" and done >= total:
            return 0.99, f"candidates: {done} of {total} · mapping the population in 2-D (UMAP)…"
        return min(0.98, done / total), f"{phase}: {done} of {total}"
    return 0.0, "preparing (model, data and base mask)…"


def job_panel() -> None:
    """Progress of the sampling job; when it finishes, the page reruns with the new run selected."""
    run_dir = st.session_state.get("pags_job")
    if not run_dir:
        return
    job = jobs.job_state(run_dir)
    line = jobs.last_log_line(run_dir) or ""
    st.markdown(f"**Sampling** `{Path(run_dir).name}` · {job.status}")
    if job.active or job.status == "finished":
        fraction, text = _phase(run_dir, job)
        st.progress(fraction, text=text)
    if job.status == "failed":
        widgets.error_box(job.error or line or "no log", what="The sampling failed")
    if job.active and st.button("Stop", key="pags_stop"):
        jobs.stop(run_dir)
    if job.status == "interrupted" and not job.alive and st.button("Resume", key="pags_resume"):
        try:
            jobs.resume_sampling(run_dir)  # continues from the last scored candidate: the same result
        except FullSpectrumError as error:
            widgets.error_box(error, what="Could not resume")
        else:
            st.rerun()
    if not job.active and st.button("Clear", key="pags_clear"):
        st.session_state["pags_job"] = None
        st.rerun()
    if job.active != st.session_state.get("_pags_job_active"):
        st.session_state["_pags_job_active"] = job.active
        if not job.active:  # just ended: show (and select) its results
            if job.status == "finished":
                st.session_state[_SELECT] = run_dir
            cache.run_table.clear()
        st.rerun()  # polling starts or stops with the job


active_job = st.session_state.get("pags_job")
st.session_state.setdefault("_pags_job_active", None)
_job_active = bool(active_job) and jobs.job_state(active_job).active
st.fragment(job_panel, run_every=widgets.POLL_S if _job_active else None)()

# -- results --------------------------------------------------------------------------------------------
runs = widgets.load_runs()
pags_runs = runs[(runs["kind"] == "pags") & (runs["status"] == "finished")] if not runs.empty else runs
if _job_active and not runs.empty:  # a sampling mapping its saved population: its results show already
    mapping = runs[(runs["path"] == active_job) & (runs["kind"] == "pags")]
    if len(mapping) and not cache.run_population(active_job, cache.run_stamp(active_job)).empty:
        pags_runs = pd.concat([mapping, pags_runs], ignore_index=True)
if pags_runs.empty:
    st.info("No finished PAGS run yet: start a sampling above (the MLP on digits takes seconds on a CPU).")
    st.stop()

just_finished = st.session_state.get(_SELECT)
if just_finished and just_finished in set(pags_runs["path"]):
    st.session_state["pags_run"] = just_finished  # the picker shows the run that just finished
    st.session_state.pop(_SELECT)
preferred = st.session_state.get("pags_job") or st.session_state.get("selected_run")
run = widgets.run_picker("PAGS run", pags_runs, preferred=preferred, key="pags_run")
stamp = cache.run_stamp(run)
try:
    views = cache.population_views(run, stamp)
    info = cache.run_info(run, stamp)
except ERRORS as error:
    widgets.error_box(error, what=f"Run {Path(run).name} cannot be read")
    st.stop()
if views["population"].empty:
    st.info("This run has no scored population.")
    st.stop()

config = info.get("config", {})
final = info.get("final", {})
st.markdown(
    f"**{config.get('generator', '?')}** on {config.get('model', '?')}/{config.get('data', '?')} at density "
    f"{config.get('density', '?')}, {config.get('population', '?')} candidates, warm-up "
    f"{config.get('warmup_iters', 0)} · layers replaced: {final.get('layers_replaced', '?')} of "
    f"{final.get('layers', '?')}"
)

# -- the score beside the evidence ------------------------------------------------------------------------
st.subheader("Does the assembled mask train better than the base mask?")
st.caption(
    "PAGS picks layers by their full-spectrum score; only training says whether that helps. Runs that "
    "trained these very masks (static runs from the mask files, **Train both** below) are found by content."
)
base_source, assembled_source = ("candidate", run, BASE), ("candidate", run, ASSEMBLED)
try:
    answer, _ = cache.verdict(assembled_source, base_source, (stamp, stamp), cache.evidence_runs(runs))
except ERRORS as error:
    widgets.error_box(error, what="No evidence")
else:
    lines = "\n".join(f"- {line}" for line in answer.sentences)
    text = f"A = assembled mask, B = base mask.\n{lines}"
    (st.warning if answer.agrees is False else st.info)(text)
    export.table(answer.table(), "pags evidence", hide_index=True, width="stretch",
                 column_config=glossary.column_help(["predictor", "favours"]))  # fmt: skip

left, right = st.columns(2)
export.chart(
    population_3d_figure(views["points"]), "pags population", container=left, width="stretch", key="pags_3d"
)
embedding = views["embedding"]
if embedding is None:
    right.info("This run has no 2-D map.")
else:
    export.chart(
        embedding_figure(embedding.frame, embedding.method, embedding.note),
        "pags map",
        container=right,
        width="stretch",
        key="pags_map",
    )
glossary.expander(["PAGS score", "u", "base mask", "assembled mask", "Δr_imdb", "qualifies", "f_c", "PEGS"])

st.subheader("Per-layer winners")
winners = views["winners"].assign(winner=lambda frame: [candidate_label(c) for c in frame["winner"]])
export.table(winners, "pags winners per layer", hide_index=True, width="stretch",
             column_config=glossary.column_help(list(winners.columns)))  # fmt: skip

# -- compare or train two masks ---------------------------------------------------------------------------
st.subheader("Compare two masks")
candidates = sorted(int(c) for c in views["population"]["candidate"].unique())
pick_a, pick_b = st.columns(2)
first = pick_a.selectbox("Mask A", candidates, index=candidates.index(ASSEMBLED) if ASSEMBLED in candidates else 0,
                         format_func=candidate_label, key="pags_pick_a")  # fmt: skip
second = pick_b.selectbox("Mask B", candidates, index=candidates.index(BASE) if BASE in candidates else 0,
                          format_func=candidate_label, key="pags_pick_b")  # fmt: skip
if st.button("Open in Compare masks", key="pags_compare"):
    st.session_state["compare_a"] = {"kind": "candidate", "run": run, "candidate": int(first)}
    st.session_state["compare_b"] = {"kind": "candidate", "run": run, "candidate": int(second)}
    try:
        st.switch_page("app_pages/compare_masks.py")
    except st.errors.StreamlitAPIException:
        st.info("Open the **Compare masks** page: both masks are selected there.")


def _train_folder(candidate: int, seed: int) -> Path:
    """One folder per mask and seed, found again on the next press."""
    slug = candidate_slug(candidate) + ("" if seed == config.get("seed", 0) else f"-s{seed}")
    return cache.workspace_root() / run_folder_name("static", slug, source=run, timestamp=False)


def _training_panel(train_dirs: dict) -> None:
    """Progress of each training, then its final accuracy; polls while one is active."""
    rows, any_active = [], False
    for candidate, run_dir in train_dirs.items():
        if not (run_dir / "run.json").exists() and not (run_dir / jobs.JOB_FILE).exists():
            continue
        job = jobs.job_state(run_dir)
        any_active |= job.active
        st.markdown(f"**{candidate_label(candidate)}** · `{run_dir.name}`")
        widgets.job_progress(job)
        accuracy = None
        if job.status == "finished":
            accuracy = (cache.run_info(str(run_dir), cache.run_stamp(str(run_dir))).get("final") or {}).get(
                "test_accuracy"
            )
        rows.append({"mask": candidate_label(candidate), "run": run_dir.name, "status": job.status,
                     "test accuracy": accuracy})  # fmt: skip
    if rows:
        export.table(pd.DataFrame(rows), "pags trainings", hide_index=True, width="stretch")
    curves = {}
    for candidate, run_dir in train_dirs.items():
        if (run_dir / "run.json").exists():
            try:
                curves[candidate_label(candidate)] = cache.run_evals(
                    str(run_dir), cache.run_stamp(str(run_dir))
                )
            except ERRORS as error:
                widgets.error_box(error, what=f"Training run of the {candidate_label(candidate)}")
    if curves:
        export.chart(accuracy_figure(curves), "pags training curves", width="stretch", key="pags_curves")
    if any_active != st.session_state.get("_pags_training_active", False):
        st.session_state["_pags_training_active"] = any_active
        cache.run_table.clear()
        st.rerun()  # polling starts or stops with the trainings; the evidence above updates when they end


with st.expander("Train masks A and B (static sparse training, the dataset's preset epochs)", expanded=True):
    st.caption(
        "Each mask trains from the weights it was sampled at; a candidate is first regenerated from the "
        "run's seed and its index and saved as a mask checkpoint beside the training run. The finished runs "
        "are the evidence above."
    )
    epochs = st.number_input(
        "Epochs (0 = the dataset's preset, as the command line)", 0, 1000, 0, key="pags_epochs"
    )
    seed = st.number_input("Training seed", 0, 2**31 - 1, int(config.get("seed", 0)), key="pags_train_seed")
    train_dirs = {c: _train_folder(c, int(seed)) for c in dict.fromkeys((first, second))}
    existing = {c: d for c, d in train_dirs.items() if (d / "run.json").exists()}
    for candidate, run_dir in existing.items():
        status = jobs.job_state(run_dir).status
        st.caption(
            f"The {candidate_label(candidate)} was trained with seed {seed} already (`{run_dir.name}`, {status}): "
            "**Train both** reuses that run; pick another seed to train it again."
        )
    if st.button("Train both", key="pags_train", disabled=len(existing) == len(train_dirs)):
        for candidate, run_dir in train_dirs.items():
            if candidate in existing:
                continue
            try:
                with st.spinner(f"Preparing the {candidate_label(candidate)}..."):
                    mask_file = save_candidate_checkpoint(
                        run, candidate, run_dir.parent / f"{run_dir.name}.mask.pt"
                    )
                options = {"model": config.get("model"), "data": config.get("data"), "method": "static",
                           "density": config.get("density"), "epochs": int(epochs) or None, "seed": int(seed),
                           "mask": mask_file}  # fmt: skip
                jobs.start_training(options, run_dir)
            except ERRORS as error:
                widgets.error_box(error, what=f"Training the {candidate_label(candidate)} could not start")
        st.session_state["_pags_training_active"] = None  # start polling
    training = any(jobs.job_state(d).active for d in train_dirs.values() if d.exists())
    st.fragment(_training_panel, run_every=widgets.POLL_S if training else None)(train_dirs)
