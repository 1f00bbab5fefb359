"""Small widgets every page shares: the sidebar's run picker, error boxes, job progress, uploads.

Session-state keys every page reads: ``run_roots`` (list of folders),
``selected_run`` (path of the chosen run, or ``None``), ``upload_session`` (the
random id of this browser session's upload folder, drawn once).

Uploads (:func:`save_upload`, :func:`upload_picker`) are kept by content in the
session's own folder (:mod:`fullspectrum.runs.uploads`): another session's file
of the same name is never overwritten, a new file under an old name is a new
cache key, and a file that is refused, replaced or cleared is removed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import cache
from fullspectrum.cli.app import UPLOAD_LIMIT_MB, any_folder_allowed, folder_allowed
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import uploads
from fullspectrum.runs.uploads import StoredUpload
from fullspectrum.sampling import ASSEMBLED, BASE, STORED_MASKS, candidate_label
from fullspectrum.training import METHODS

POLL_S = 2.0
"""How often pages poll a running job."""
REWIRING_METHODS = [name for name, method in METHODS.items() if method.rewires]
"""Dynamic sparse training methods (their masks move): the sidebar picks one of their runs first."""
_PICKER_KEY = "_run_picker"
UPLOAD_SESSION_KEY = "upload_session"
_UPLOADS = "_uploads"  # uploader file id -> its StoredUpload, or the line that refused it
_HELD = "_uploads_held"  # upload_picker key -> the StoredUpload it shows now


def error_box(error: BaseException | str, *, what: str | None = None) -> None:
    """A readable one-line error, never a traceback."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    st.error(f"{what}: {text}" if what else text)


def run_roots() -> list[str]:
    """The folders whose runs the app shows (initialised from ``FULLSPECTRUM_RUNS``)."""
    if "run_roots" not in st.session_state:
        st.session_state["run_roots"] = cache.default_roots()
    return list(st.session_state["run_roots"])


def load_runs() -> pd.DataFrame:
    """All runs under the current roots (cached); missing roots are reported once in the sidebar."""
    roots = tuple(run_roots())
    table, _ = cache.run_table(roots, cache.roots_stamp(roots))
    return table


def run_label(row: pd.Series | dict, roots: list[str] | None = None) -> str:
    """``name · kind · method@density · status`` for pickers."""
    path = Path(str(row["path"]))
    bits = [path.name, str(row.get("kind") or "?")]
    method, density = row.get("method"), row.get("density")
    if method is not None and isinstance(method, str):
        bits.append(f"{method}@{density:g}" if _finite(density) else method)
    bits.append(str(row.get("status")))
    return " · ".join(bits)


def _finite(value) -> bool:
    try:
        return value is not None and float(value) == float(value)
    except (TypeError, ValueError):
        return False


def select_run(path: str | None) -> None:
    """Make ``path`` the selected run everywhere (call ``st.rerun()`` after, if the sidebar is drawn)."""
    st.session_state["selected_run"] = path


def run_picker(label: str, runs, *, preferred: str | None, key: str) -> str:
    """A selectbox over ``runs`` (a run table) labelled like the sidebar, starting at ``preferred``."""
    paths = runs["path"].tolist()
    labels = {row["path"]: run_label(row) for row in runs.to_dict("records")}
    if st.session_state.get(key) not in paths:  # first drawn, or its run is gone: start at ``preferred``
        st.session_state[key] = preferred if preferred in paths else paths[0]
    return st.selectbox(label, paths, format_func=labels.get, key=key)


def _picked() -> None:
    st.session_state["selected_run"] = st.session_state[_PICKER_KEY]


def sidebar() -> None:
    """Draw the shared sidebar once per script run: run folders and the run picker."""
    with st.sidebar:
        st.markdown("### Runs")
        roots = run_roots()
        runs = load_runs()
        _, missing = cache.run_table(tuple(roots), cache.roots_stamp(tuple(roots)))
        if runs.empty:
            st.caption("No runs yet in the folders below.")
            st.session_state["selected_run"] = None
        else:
            paths = runs["path"].tolist()
            labels = {row["path"]: run_label(row) for row in runs.to_dict("records")}
            wanted = st.session_state.get("selected_run")
            if wanted not in paths:  # default: a readable dynamic sparse run (its mask moves), else any
                readable = runs.loc[runs["status"] != "corrupt"]
                training = readable.loc[readable["kind"] == "train"]
                dynamic = training.loc[training["method"].isin(REWIRING_METHODS), "path"].tolist()
                wanted = (dynamic or training["path"].tolist() or readable["path"].tolist() or paths)[0]
            if st.session_state.get(_PICKER_KEY) != wanted:
                st.session_state[_PICKER_KEY] = wanted
            st.session_state["selected_run"] = wanted
            st.selectbox(
                "Run",
                paths,
                format_func=lambda path: labels.get(path, path),
                key=_PICKER_KEY,
                on_change=_picked,
            )
        with st.expander("Run folders", expanded=False):
            for root in roots:
                note = " (missing)" if root in missing else ""
                st.caption(f"`{root}`{note}")
            added = st.text_input("Add a folder", key="_add_root", placeholder="/path/to/runs")
            if st.button("Add folder", key="_add_root_button") and added.strip():
                folder = str(Path(added.strip()).expanduser().absolute())
                refusal = folder_refusal(folder)
                if refusal:
                    error_box(refusal)
                elif folder not in roots:
                    st.session_state["run_roots"] = [*roots, folder]
                    st.rerun()


def folder_refusal(folder: str) -> str | None:
    """Why "Add a folder" may not show ``folder`` (one line), or None: it must exist and, unless the app
    was started with ``--allow-any-folder``, lie under the workspace or the app's run folders."""
    if not Path(folder).is_dir():
        return f"{folder}: no such folder"
    if any_folder_allowed() or folder_allowed(folder, cache.default_roots()):
        return None
    return (
        f"{folder}: only folders under the workspace or the app's run folders can be added; to show it, "
        f"start the app with `fullspectrum app --runs {folder}` (or with --allow-any-folder)"
    )


def job_progress(job) -> None:
    """Status line and progress bar of a :class:`fullspectrum.runs.jobs.JobState`."""
    fraction = job.fraction
    steps = f"step {job.step} of {job.total_steps}" if job.total_steps else f"step {job.step or 0}"
    text = f"{job.status} · {steps}"
    if fraction is not None:
        st.progress(fraction, text=text)
    else:
        st.caption(text)
    if job.status == "failed" and job.error:
        error_box(job.error, what="The job failed")


# -- uploads -------------------------------------------------------------------------------------------


def upload_session() -> str:
    """This browser session's upload folder id (drawn once, kept in ``st.session_state``)."""
    if UPLOAD_SESSION_KEY not in st.session_state:
        st.session_state[UPLOAD_SESSION_KEY] = uploads.new_session_id()
    return st.session_state[UPLOAD_SESSION_KEY]


def save_upload(file) -> StoredUpload | None:
    """Keep ``file`` (from ``st.file_uploader``) in this session's folder, by content; reuse it on later
    runs. A file too large, or refused before (:func:`refuse_upload`), gets its one line and None."""
    known = st.session_state.setdefault(_UPLOADS, {})
    entry = known.get(file.file_id)
    if entry is None and file.size > UPLOAD_LIMIT_MB * 2**20:
        entry = known[file.file_id] = (
            f"{uploads.safe_file_name(file.name)}: {file.size / 2**20:.0f} MB is over the "
            f"{UPLOAD_LIMIT_MB} MB limit"
        )
    if isinstance(entry, str):
        error_box(entry)
        return None
    if entry is None or not entry.path.is_file():
        entry = uploads.store_upload(
            cache.workspace_root() / uploads.UPLOADS_DIR, upload_session(), file.name, file.getbuffer()
        )
        known[file.file_id] = entry
    else:
        entry.touch()
    return entry


def refuse_upload(stored: StoredUpload, error: BaseException | str, *, what: str | None = None) -> str:
    """Remove a saved upload that cannot be used and remember why, so that it is not saved again;
    returns the one line to show (the user's file name, never the stored path)."""
    text = stored.message(error)
    line = f"{what}: {text}" if what else text
    known = st.session_state.setdefault(_UPLOADS, {})
    for file_id, entry in list(known.items()):
        if entry == stored:
            known[file_id] = line
    held = st.session_state.setdefault(_HELD, {})
    for key, entry in list(held.items()):
        if entry == stored:
            held[key] = None
    stored.remove()
    return line


def release_upload(stored: StoredUpload) -> None:
    """Remove a saved upload that is no longer needed, unless an :func:`upload_picker` still shows it."""
    if stored not in st.session_state.get(_HELD, {}).values():
        stored.remove()


def upload_picker(label: str, *, key: str, types: list[str]) -> StoredUpload | None:
    """A file uploader whose file is kept by :func:`save_upload`; a file replaced or cleared is removed."""
    file = st.file_uploader(label, type=types, key=key)
    stored = save_upload(file) if file is not None else None
    held = st.session_state.setdefault(_HELD, {})
    previous, held[key] = held.get(key), stored
    if previous is not None and previous != stored:
        release_upload(previous)
    return stored


# -- mask sources (Unrolled view, Graphon & NTK) -----------------------------------------------------------

MASK_SOURCE_KINDS = {"run": "Run snapshot", "candidate": "PAGS candidate", "upload": "Upload"}
"""Mask source kinds (``analysis.mask_sources``) and how the pickers name them."""
CHECKPOINT_TYPES = ["pt", "pth", "bin", "safetensors"]


def mask_source_picker(runs: pd.DataFrame, *, key: str) -> tuple[tuple, tuple] | None:
    """Pick a run snapshot, a PAGS candidate or an uploaded checkpoint: ``(source, stamp)`` for the
    ``cache`` loaders, or None when nothing is chosen yet (an unreadable upload is refused in one line)."""
    kind_label = st.radio("Source", list(MASK_SOURCE_KINDS.values()), horizontal=True, key=f"{key}_kind")
    kind = next(k for k, v in MASK_SOURCE_KINDS.items() if v == kind_label)
    if kind == "upload":
        stored = upload_picker(
            f"Checkpoint (≤ {UPLOAD_LIMIT_MB} MB; read with weights_only, never executed)",
            key=f"{key}_upload",
            types=CHECKPOINT_TYPES,
        )
        if stored is None:
            return None
        source, stamp = ("upload", str(stored.path)), (stored.digest,)
        try:
            cache.mask_source(source, stamp)
        except (FullSpectrumError, OSError, KeyError, RuntimeError) as error:
            error_box(refuse_upload(stored, error, what="The checkpoint cannot be read"))
            return None
        return source, stamp
    readable = runs[runs["status"] != "corrupt"] if not runs.empty else runs
    if not readable.empty:  # a candidate comes from a PAGS run; a snapshot from any run that stores masks
        readable = (
            readable[readable["kind"] == "pags"]
            if kind == "candidate"
            else readable[readable["kind"].isin(["train", "pags", "analysis"])]
        )
    choices = readable
    if choices.empty:
        st.info(
            "No PAGS runs yet: start one on the **PAGS lab** page." if kind == "candidate" else "No runs yet."
        )
        return None
    path = run_picker("Run", choices, preferred=st.session_state.get("selected_run"), key=f"{key}_{kind}_run")
    stamp = cache.run_stamp(path)
    if kind == "run":
        steps = cache.run_mask_steps(path, stamp)
        if not steps:
            st.info("This run stored no masks.")
            return None
        step = st.selectbox("Step", steps, index=len(steps) - 1, key=f"{key}_step_{path}")
        return ("run", path, int(step)), stamp
    population = cache.run_population(path, stamp)
    candidates = sorted(int(c) for c in population["candidate"].unique()) or [ASSEMBLED, BASE]
    index = st.selectbox(
        "Candidate",
        candidates,
        index=candidates.index(ASSEMBLED) if ASSEMBLED in candidates else 0,
        format_func=lambda c: (
            candidate_label(c) + ("" if c in STORED_MASKS else " (regenerated from its seed)")
        ),
        key=f"{key}_cand_{path}",
    )
    return ("candidate", path, int(index)), stamp
