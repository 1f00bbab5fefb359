"""Runs page: every run in the chosen folders, filters, a details panel, CSV downloads, checkpoint upload,
model folders.

An uploaded checkpoint is saved into this browser session's upload folder (by
content) and analysed by a job process (``fullspectrum ingest``:
``weights_only=True``, never executed) into an ``analysis`` run of its own
folder, which then appears here like any other and keeps a copy of the file.
When the job ends the upload is removed; when it fails, so is the run's folder.

A Hugging Face model folder (sharded safetensors) under one of the run folders is analysed the
same way by a worker (:mod:`app.model_folders`), layer by layer with a progress bar, into a run in
the workspace; the folder itself is only read. An analysis run's layers can be filtered by block
and projection, and a metric drawn over block × projection.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import streamlit as st

from analysis import run_admin
from analysis.chance import at_chance, chance_sentence
from analysis.glossary import help_text
from app import cache, export, glossary, layer_groups, model_folders, widgets
from app.charts.blocks import block_heatmap
from app.charts.runs import evals_figure, overview_figure
from fullspectrum.cli.app import UPLOAD_LIMIT_MB
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import jobs, uploads
from fullspectrum.runs.naming import run_folder_name
from fullspectrum.spectrum import metric_label

TABLE_COLUMNS = ["kind", "model", "data", "method", "density", "seed", "status", "final_accuracy", "steps"]
FILTERS = ("kind", "method", "data", "status")
UPLOAD_TYPES = ["pt", "pth", "tar", "bin", "ckpt", "safetensors"]
_INGESTS = "_ingest_jobs"
_RESULTS = "_ingest_results"
_FOLDERS = "_folder_jobs"  # run folder -> the model folder as the user named it
_FOLDER_RESULTS = "_folder_results"
OTHER_FOLDER = "Another folder…"
HEATMAP_METRICS = ["delta_r", "lambda_w", "delta_r_imdb", "lambda_imsg", "density", "sigma2", "dead_right"]

st.title("Runs")
runs = widgets.load_runs()

if runs.empty:
    st.info(
        "No runs yet. Train one with `fullspectrum train --out cached_runs/my_run` (or on the "
        "**Live training** page), add a folder of runs in the sidebar, or upload a checkpoint below."
    )
else:
    columns = st.columns(len(FILTERS) + 1)
    shown = runs
    for column, name in zip(columns, FILTERS, strict=False):
        options = sorted(runs[name].dropna().astype(str).unique())
        picked = column.multiselect(name, options, key=f"runs_filter_{name}")
        if picked:
            shown = shown[shown[name].astype(str).isin(picked)]
    densities = sorted(runs["density"].dropna().unique())
    picked_density = columns[-1].multiselect("density", densities, key="runs_filter_density")
    if picked_density:
        shown = shown[shown["density"].isin(picked_density)]
    st.caption(f"{len(shown)} of {len(runs)} runs")
    table = shown[TABLE_COLUMNS].assign(
        run=shown["path"].map(lambda p: Path(p).name),
        at_chance=[at_chance(a, d) for a, d in zip(shown["final_accuracy"], shown["data"], strict=True)],
    )
    chance_count = int(table["at_chance"].sum())
    if chance_count:
        st.warning(
            f"{chance_count} run{'s' if chance_count != 1 else ''} ended at chance (ticked in the table)."
        )
    selection = st.dataframe(
        table[["run", *TABLE_COLUMNS, "at_chance"]],
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="runs_table",
        column_config={
            "density": st.column_config.NumberColumn(format="%.3f"),
            "final_accuracy": st.column_config.NumberColumn("final accuracy", format="%.4f"),
            "at_chance": st.column_config.CheckboxColumn("at chance", help=help_text("at chance")),
        },
    )
    rows = selection.selection.rows if selection is not None else []
    if rows:
        clicked = shown.iloc[rows[0]]["path"]
        if clicked != st.session_state.get("selected_run"):
            widgets.select_run(clicked)
            st.rerun()
    corrupt = runs[runs["status"] == "corrupt"]
    for _, row in corrupt.iterrows():
        widgets.error_box(row["error"] or "unreadable run", what=f"Corrupt run {Path(row['path']).name}")
    if runs["final_accuracy"].notna().any():
        st.plotly_chart(overview_figure(shown))

ANALYSIS_COLUMNS = ["layer", "edges", "density", "dead_right", "dead_in_channels", "delta_r", "lambda_w",
                    "delta_r_imdb", "lambda_imsg", "n_classes", "in_regime"]  # fmt: skip
NM_HELP = help_text("nm_pattern")  # one definition, the glossary's


def _analysis_details(path: str, stamp: tuple, info: dict) -> None:
    """An analysed checkpoint: its detected format, whether it is sparse at all, the analysis notes and
    the per-layer table (its one snapshot)."""
    config = info.get("config") or {}
    density = config.get("density")
    st.markdown(
        f"Analysed checkpoint **{config.get('source', '?')}** · detected format **{config.get('format', '?')}**"
    )
    if isinstance(density, int | float) and density >= 1.0:
        st.warning("Every weight is kept: this checkpoint is dense, not sparse — its graphs are complete.")
    elif isinstance(density, int | float):
        st.caption(f"Sparse: {density:.2%} of the weights of its layers are kept.")
    for note in info.get("notes") or []:
        st.info(note)
    for name, reason in info.get("skipped") or []:
        st.caption(f"Not analysed: `{name}` ({reason})")
    layers = cache.grouped_run_layers(path, stamp)
    if layers.empty:
        st.caption(
            "The analysis is still running."
            if info.get("status") == "running"
            else "No layers were analysed."
        )
        return
    shown = [column for column in ANALYSIS_COLUMNS if column in layers.columns]
    if model_folders.GROUPS_KEY in info:  # the run knows each layer's N:M pattern
        shown.insert(1, "nm_pattern")
    if layer_groups.has_blocks(layers):
        shown[1:1] = ["block", "projection"]
        layers = _block_views(layers, path)
    config = {**glossary.column_help(shown), "nm_pattern": st.column_config.TextColumn("N:M", help=NM_HELP)}
    export.table(
        layers[shown], f"{Path(path).name}_layers", hide_index=True, width="stretch", column_config=config,
        key="runs_layers",
    )  # fmt: skip


def _block_views(layers: pd.DataFrame, path: str) -> pd.DataFrame:
    """Filters by block and projection and a heat map of a metric over block × projection; returns the
    filtered layers (the heat map shows the filtered ones too)."""
    blocks = layer_groups.block_order(layers.loc[layers["block"] != "", "block"])
    projections = layer_groups.projection_order(layers)
    left, right = st.columns(2)
    picked_blocks = left.multiselect("Blocks", blocks, key=f"runs_blocks_{path}", placeholder="all blocks")
    picked_projections = right.multiselect(
        "Projections", projections, key=f"runs_projections_{path}", placeholder="all projections"
    )
    shown = layer_groups.filter_layers(layers, picked_blocks, picked_projections)
    st.caption(
        f"{len(shown)} of {len(layers)} layers ({len(blocks)} blocks × {len(projections)} projections)"
    )
    metrics = [metric for metric in HEATMAP_METRICS if metric in shown.columns]
    metric = st.selectbox("Heat map of", metrics, format_func=metric_label, key=f"runs_heatmap_metric_{path}")
    if (shown["block"] != "").any():
        figure = block_heatmap(shown, metric, label=metric_label(metric))
        export.chart(figure, f"{Path(path).name}_{metric}_blocks", key="runs_heatmap")
    outside = int((shown["block"] == "").sum())
    if outside:
        st.caption(
            f"{outside} layer(s) outside the blocks (e.g. `lm_head`) are in the table, not the heat map."
        )
    return shown


def _manage(path: str, info: dict) -> None:
    """Title, tags and delete for the app's own runs; a read-only run says why it cannot be changed."""
    workspace = cache.workspace_root()
    reason = run_admin.refusal(path, workspace)
    tags = info.get("tags") or []
    if info.get("title"):
        st.markdown(f"Title: **{info['title']}**")
    if tags:
        st.markdown("Tags: " + " ".join(f"`{tag}`" for tag in tags))
    with st.expander("Rename, tag or delete"):
        if reason:
            st.caption(reason)
            return
        title = st.text_input(
            "Title (the folder keeps its name)", value=info.get("title") or "", key="run_title"
        )
        tag_text = st.text_input("Tags (comma-separated)", value=", ".join(tags), key=f"run_tags_{path}")
        if st.button("Save title and tags", key="run_save"):
            try:
                run_admin.rename(path, title, workspace=workspace)
                run_admin.set_tags(path, tag_text, workspace=workspace)
            except (FullSpectrumError, OSError) as error:
                widgets.error_box(error, what="Not saved")
            else:
                st.rerun()
        sure = st.checkbox(f"Yes, delete {Path(path).name} and its files", key=f"run_delete_sure_{path}")
        if st.button("Delete run", key="run_delete", disabled=not sure):
            try:
                run_admin.delete(path, workspace=workspace)
            except (FullSpectrumError, OSError) as error:
                widgets.error_box(error, what="Not deleted")
            else:
                widgets.select_run(None)
                cache.run_table.clear()
                st.rerun()


# -- details of the selected run -----------------------------------------------------------------------
selected = st.session_state.get("selected_run")
if selected and not runs.empty and selected in set(runs["path"]):
    st.subheader(f"Details: {Path(selected).name}")
    summary = runs[runs["path"] == selected].iloc[0]
    if summary["status"] == "corrupt":
        widgets.error_box(summary["error"] or "unreadable run", what="This run cannot be read")
    else:
        stamp = cache.run_stamp(selected)
        try:
            info = cache.run_info(selected, stamp)
            evals = cache.run_evals(selected, stamp)
        except FullSpectrumError as error:
            widgets.error_box(error, what="This run cannot be read")
        else:
            left, right = st.columns([1, 2])
            with left:
                st.markdown(f"**{info.get('kind')}** run · status **{summary['status']}**")
                st.caption(f"`{selected}`")
                final = info.get("final") or {}
                warning = chance_sentence(final.get("test_accuracy"), (info.get("config") or {}).get("data"))
                if warning:
                    st.error(warning)
                if final:
                    st.dataframe(
                        pd.DataFrame({"value": {k: str(v) for k, v in final.items()}}),
                    )
                with st.expander("config, seed, versions"):
                    st.code(
                        json.dumps(
                            {k: info.get(k) for k in ("config", "seed", "device", "versions", "created")},
                            indent=2,
                        ),
                        language="json",
                    )
                _manage(selected, info)
                st.markdown("**Download tables (CSV)**")
                for table_name in ("layers", "evals", "events", "population"):
                    try:
                        data = cache.table_csv(selected, stamp, table_name)
                    except FullSpectrumError as error:
                        widgets.error_box(error, what=table_name)
                        continue
                    st.download_button(
                        f"{table_name}.csv",
                        data=data,
                        file_name=f"{Path(selected).name}_{table_name}.csv",
                        mime="text/csv",
                        key=f"download_{table_name}",
                    )
            with right:
                if info.get("kind") == "analysis":
                    _analysis_details(selected, stamp, info)
                elif evals.empty:
                    st.caption("No evaluations recorded in this run.")
                else:
                    st.plotly_chart(evals_figure(evals))

# -- upload a checkpoint -------------------------------------------------------------------------------
st.subheader("Analyse a checkpoint")
st.caption(
    f"Up to {UPLOAD_LIMIT_MB} MB. Read with `weights_only=True` (pickled code never runs) and "
    f"analysed by a job process into an analysis run in `{cache.workspace_root()}`."
)
upload = st.file_uploader("Checkpoint file", type=UPLOAD_TYPES, key="runs_upload")
if upload is not None and st.button("Analyse checkpoint", key="runs_analyse"):
    stored = widgets.save_upload(upload)  # this session's own folder, by content
    if stored is not None:
        run_dir = None
        try:
            name = run_folder_name("upload", Path(stored.name).stem or "checkpoint")
            run_dir = uploads.claim_folder(cache.workspace_root(), name)
            jobs.start_ingest(stored.path, run_dir)
        except (FullSpectrumError, OSError) as error:
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            widgets.error_box(
                widgets.refuse_upload(stored, error, what=f"{stored.name} could not be analysed")
            )
        else:
            st.session_state.setdefault(_INGESTS, {})[str(run_dir)] = stored


def _job_error(job, stored) -> str:
    """A failed job's last line, with the stored upload's path as the user's file name."""
    text = (job.error or job.status).strip()
    for prefix in ("fullspectrum: error: ", "fullspectrum: "):
        text = text.removeprefix(prefix)
    return stored.message(text)


def _ingest_panel() -> None:
    """Poll the upload jobs; when one ends, drop its upload (the run keeps a copy) and rerun the page.

    A failed one leaves nothing: its upload and the folder made for its run are removed."""
    pending = st.session_state.get(_INGESTS, {})
    still = {}
    for run_dir, stored in pending.items():
        job = jobs.job_state(run_dir)
        if job.active:
            st.info(f"Analysing {stored.name}…")
            still[run_dir] = stored
        elif job.status == "finished":
            widgets.release_upload(stored)
            st.session_state.setdefault(_RESULTS, {})[run_dir] = (
                "finished",
                f"{stored.name} ({Path(run_dir).name})",
            )
            widgets.select_run(run_dir)  # its details show at once, and every page opens on it
            cache.run_table.clear()
        else:
            line = widgets.refuse_upload(
                stored, _job_error(job, stored), what=f"{stored.name} could not be analysed"
            )
            shutil.rmtree(run_dir, ignore_errors=True)
            st.session_state.setdefault(_RESULTS, {})[run_dir] = (job.status, line)
    if len(still) != len(pending):
        st.session_state[_INGESTS] = still
        st.rerun()


def _show_jobs(results_key: str, pending_key: str, panel) -> None:
    """The outcomes of finished analyses, then the panel that polls the running ones (if any)."""
    for status, text in st.session_state.get(results_key, {}).values():
        if status == "finished":
            st.success(f"{text}: analysed and selected; its details are above.")
        else:
            widgets.error_box(text)
    if st.session_state.get(pending_key):
        st.fragment(panel, run_every=widgets.POLL_S)()


_show_jobs(_RESULTS, _INGESTS, _ingest_panel)

# -- analyse a model folder ----------------------------------------------------------------------------
st.subheader("Analyse a model folder")
st.caption(
    "A Hugging Face model folder (`model.safetensors.index.json` and its shards, or one `model.safetensors`) "
    "under one of the run folders: read layer by layer from memory-mapped files, never copied or written to, "
    f"and analysed by a worker process into an analysis run in `{cache.workspace_root()}`."
)
folder_roots = widgets.run_roots()
found_folders = cache.model_folders(tuple(folder_roots), cache.roots_stamp(tuple(folder_roots)))
picked_folder = st.selectbox(
    "Model folder", [*found_folders, OTHER_FOLDER], key="runs_folder_pick",
    help="Model folders found under the run folders (up to three levels down); or type another one's path.",
)  # fmt: skip
if picked_folder == OTHER_FOLDER:
    picked_folder = st.text_input(
        "Folder path (absolute, or relative to a run folder)", key="runs_folder_path",
        placeholder="Llama-2-7b-wanda-50",
    )  # fmt: skip
layer_pattern = st.text_input(
    "Layers (optional regular expression)", key="runs_folder_layers", placeholder=r"layers\.(0|31)\.",
    help="Analyse only the layers whose name it matches (as `fullspectrum analyze --layers`).",
).strip()  # fmt: skip


def _start_folder(typed: str, pattern: str | None) -> None:
    """Check the folder and the pattern (index and headers only), then start its worker; one line if refused."""
    try:
        folder = model_folders.resolve_model_folder(typed, folder_roots)
    except FullSpectrumError as error:
        widgets.error_box(error)
        return
    try:
        model_folders.planned_layers(folder, pattern)
    except (FullSpectrumError, OSError) as error:
        widgets.error_box(error, what=f"{typed} cannot be analysed")
        return
    run_dir = None
    try:
        run_dir = uploads.claim_folder(cache.workspace_root(), run_folder_name("model", folder.name))
        model_folders.start_analysis(folder, run_dir, pattern)
    except (FullSpectrumError, OSError) as error:
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        widgets.error_box(error, what=f"{typed} could not be analysed")
    else:
        st.session_state.setdefault(_FOLDERS, {})[str(run_dir)] = typed


if st.button("Analyse folder", key="runs_folder_analyse", disabled=not picked_folder.strip()):
    _start_folder(picked_folder.strip(), layer_pattern or None)


def _folder_panel() -> None:
    """Progress of the model-folder workers; when one ends, select its run (or remove its folder) and rerun."""
    pending = st.session_state.get(_FOLDERS, {})
    results = st.session_state.setdefault(_FOLDER_RESULTS, {})
    still = {}
    for run_dir, typed in pending.items():
        state = model_folders.analysis_state(run_dir)
        if state.active:
            of = f"{state.done} of {state.total} layers" if state.total else "reading its index"
            st.progress(state.done / state.total if state.total else 0.0, text=f"Analysing {typed}: {of}")
            still[run_dir] = typed
        elif state.status == "finished":
            results[run_dir] = ("finished", f"{typed} ({Path(run_dir).name})")
            widgets.select_run(run_dir)  # its details show at once, and every page opens on it
            cache.run_table.clear()
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            results[run_dir] = (state.status, f"{typed} could not be analysed: {state.error or state.status}")
    if len(still) != len(pending):
        st.session_state[_FOLDERS] = still
        st.rerun()


_show_jobs(_FOLDER_RESULTS, _FOLDERS, _folder_panel)
