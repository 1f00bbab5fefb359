"""Small widgets every page shares: the sidebar's run picker, error boxes, job progress.

Session-state keys every page reads: ``run_roots`` (list of folders),
``selected_run`` (path of the chosen run, or ``None``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import cache
from fullspectrum.training import METHODS

POLL_S = 2.0
"""How often pages poll a running job."""
REWIRING_METHODS = [name for name, method in METHODS.items() if method.rewires]
"""Dynamic sparse training methods (their masks move): the sidebar picks one of their runs first."""
_PICKER_KEY = "_run_picker"


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
    index = paths.index(preferred) if preferred in paths else 0
    return st.selectbox(label, paths, index=index, format_func=labels.get, key=key)


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
                if not Path(folder).is_dir():
                    st.error(f"{folder}: no such folder")
                elif folder not in roots:
                    st.session_state["run_roots"] = [*roots, folder]
                    st.rerun()


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
