"""Live training page: configure an ITOP-Rand/RigL/static run (ITOP21, FS23), start it in a job
process, watch its trajectories, exploration rate and accuracy update, stop it, resume it.

The page never trains: ``fullspectrum.runs.jobs`` starts ``fullspectrum train`` as a
separate process writing a run directory, and a fragment polls that directory.
A refresh or a second tab finds the job again from the run store.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from analysis.chance import chance_sentence
from app import cache, export, widgets
from app.charts.trajectories import metrics_figure, trajectory_figure
from fullspectrum.data import DATASET_NAMES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import MODEL_NAMES
from fullspectrum.runs import jobs
from fullspectrum.runs.naming import run_folder_name
from fullspectrum.training import METHODS, PRESETS, TrainConfig

SPARSE_METHODS = sorted(
    (name for name in METHODS if name != "dense"), key=lambda name: not METHODS[name].rewires
)
# The methods this page trains, those whose masks move first (a dense run has no mask to watch).
_WATCHED = "live_run"
DEFAULTS = TrainConfig()
# The command line's defaults (`fullspectrum train` with no options): the form starts at them.

st.title("Live training")

# -- configure and start -------------------------------------------------------------------------------
with st.form("live_config"):
    first, second, third = st.columns(3)
    model = first.selectbox("Model", MODEL_NAMES, index=MODEL_NAMES.index(DEFAULTS.model), key="live_model")
    data = first.selectbox("Data", DATASET_NAMES, index=DATASET_NAMES.index(DEFAULTS.data), key="live_data")
    method = second.selectbox(
        "Method",
        SPARSE_METHODS,
        index=SPARSE_METHODS.index(DEFAULTS.method),
        key="live_method",
        help="itop: random growth (ITOP-Rand/SET); rigl: gradient growth; static: the mask never moves",
    )
    density = second.number_input(
        "Density (fraction kept)", min_value=0.001, max_value=1.0, value=float(DEFAULTS.density), step=0.01,
        key="live_density",
    )  # fmt: skip
    epochs = third.number_input(
        "Epochs",
        min_value=0,
        max_value=1000,
        value=0,
        key="live_epochs",
        help="0 = the dataset's preset, as `fullspectrum train` uses: "
        + ", ".join(f"{name} {preset.epochs}" for name, preset in PRESETS.items()),
    )
    delta_t = third.number_input(
        "ΔT (iterations between mask updates, 0 = preset)", min_value=0, value=0, key="live_delta_t"
    )
    snapshot_every = first.number_input(
        "Snapshot interval (iterations, 0 = preset)", min_value=0, value=0, key="live_snapshot_every"
    )
    seed = second.number_input("Seed", min_value=0, value=int(DEFAULTS.seed), key="live_seed")
    name = third.text_input("Run name", value="", placeholder="auto", key="live_name")
    started = st.form_submit_button("Start training", type="primary")

if started:
    parts = [name] if name.strip() else [model, data, method, f"d{density:g}", f"s{seed}"]
    run_dir = cache.workspace_root() / run_folder_name(*parts)
    options = {
        "model": model,
        "data": data,
        "method": method,
        "density": density,
        "epochs": int(epochs) or None,  # None: the preset, exactly as the command line
        "delta_t": int(delta_t) or None,
        "snapshot_every": int(snapshot_every) or None,
        "seed": int(seed),
        "device": "cpu",
    }
    try:
        jobs.start_training(options, run_dir)
    except (FullSpectrumError, OSError) as error:
        widgets.error_box(error, what="Could not start training")
    else:
        st.session_state[_WATCHED] = str(run_dir)

# -- which job to watch --------------------------------------------------------------------------------
workspace = cache.workspace_root()
running = jobs.find_running(workspace)
for root in widgets.run_roots():
    if Path(root).absolute() != workspace:
        running += jobs.find_running(root)
watchable = [str(job.run_dir) for job in running]
watched = st.session_state.get(_WATCHED)
if watched and watched not in watchable:
    watchable.insert(0, watched)
if not watchable:
    st.info(
        "No training job yet. Configure a run above and press **Start training**; it runs in a separate "
        f"process and writes its run into `{workspace}`, so you can leave this page and come back."
    )
    st.stop()
watched = st.selectbox(
    "Job", watchable, index=watchable.index(watched) if watched in watchable else 0,
    format_func=lambda path: Path(path).name, key="live_job",
)  # fmt: skip
st.session_state[_WATCHED] = watched


def _live_panel(run_dir: str, was_active: bool) -> None:
    """Poll one run: status, progress, stop/resume, charts. Reruns the page when the job starts/stops."""
    job = jobs.job_state(run_dir)
    widgets.job_progress(job)
    buttons = st.columns(4)
    if job.active and buttons[0].button("Stop", key="live_stop"):
        if jobs.stop(run_dir):
            st.toast("Stopping: the run saves a checkpoint and is left resumable.")
        else:
            st.warning("No live job for this run.")
    if job.status == "interrupted" and job.kind == "train" and buttons[1].button("Resume", key="live_resume"):
        try:
            jobs.resume_training(run_dir)
        except FullSpectrumError as error:
            widgets.error_box(error, what="Could not resume")
        else:
            st.rerun()
    if job.status == "corrupt":
        widgets.error_box(job.error or "unreadable run", what="This run cannot be read")
    stamp = cache.run_stamp(run_dir)
    layers = evals = None
    if job.status not in ("starting", "corrupt", "unknown"):
        try:
            layers = cache.run_layers(run_dir, stamp)
            evals = cache.run_evals(run_dir, stamp)
            network = cache.network_means(run_dir, stamp)
        except FullSpectrumError as error:
            widgets.error_box(error, what="This run cannot be read")
    if job.status == "finished":
        info = cache.run_info(run_dir, stamp)
        accuracy = (info.get("final") or {}).get("test_accuracy")
        warning = chance_sentence(accuracy, (info.get("config") or {}).get("data"))
        if warning:
            st.error(warning)
        elif accuracy is not None:
            st.success(f"Finished: test accuracy {float(accuracy):.4f}.")
    if layers is not None and not layers.empty:
        last = int(layers["step"].max())
        left, right = st.columns(2)
        name = Path(run_dir).name
        export.chart(trajectory_figure(layers, step=last, network=network), f"trajectory {name}", container=left,
                     key="live_3d")  # fmt: skip
        export.chart(
            metrics_figure(layers, evals, network=network, step=last),
            f"trajectory metrics {name}",
            container=right,
            key="live_metrics",
        )
    elif job.active:
        st.caption("Waiting for the first snapshot…")
    with st.expander("Job log"):
        st.code(jobs.read_log(run_dir, max_chars=2000) or "(empty)", language="text")
    if job.active != was_active:
        st.rerun()  # polling starts or stops with the job


active = jobs.job_state(watched).active
st.fragment(_live_panel, run_every=widgets.POLL_S if active else None)(watched, active)
