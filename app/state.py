"""The app's one caching module: where run folders are, and bounded cached loaders over the run store.

Every loader takes plain hashable arguments (paths as strings) plus a *stamp*
of the run's files (:func:`run_stamp`: modification times and sizes), so a
running job's new rows invalidate the cache while finished runs are read once.
Loaders never read widgets. Errors (``FullSpectrumError``) are not cached; pages
catch them and show the one-line message.

Both app helpers add their loaders here (additive edits only).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS_ENV = "FULLSPECTRUM_RUNS"
"""Default run folders (``os.pathsep``-separated); set by ``fullspectrum app --runs``."""
WORKSPACE_ENV = "FULLSPECTRUM_WORKSPACE"
"""Where the app writes new runs (live training, uploads); default ``<checkout>/app_runs``."""
UPLOAD_LIMIT_MB = 200
"""Largest checkpoint accepted for upload (also Streamlit's ``server.maxUploadSize``)."""
POLL_S = 2.0
"""How often pages poll a running job."""


# -- where runs are ------------------------------------------------------------------------------------


def default_roots() -> list[str]:
    """``FULLSPECTRUM_RUNS`` if set, else the checkout's ``cached_runs/``; the workspace is always added."""
    value = os.environ.get(RUNS_ENV, "")
    roots = [part for part in value.split(os.pathsep) if part] or [str(REPO_ROOT / "cached_runs")]
    workspace = str(workspace_root())
    return roots if workspace in roots else [*roots, workspace]


def workspace_root() -> Path:
    """The folder the app writes new runs into."""
    return Path(os.environ.get(WORKSPACE_ENV) or REPO_ROOT / "app_runs").absolute()


def run_stamp(path: str) -> tuple:
    """Modification times and sizes of a run's files: a cache key that changes when the run does."""
    stamp = []
    for name in ("run.json", "metrics.sqlite", "metrics.sqlite-wal", "worker.json"):
        try:
            info = (Path(path) / name).stat()
            stamp.append((name, info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append((name, None, None))
    return tuple(stamp)


def roots_stamp(roots: tuple[str, ...]) -> tuple:
    """A coarse key for run listings: the roots' modification times (new run folders)."""
    stamp = []
    for root in roots:
        try:
            stamp.append(Path(root).stat().st_mtime_ns)
        except OSError:
            stamp.append(None)
    return tuple(stamp)


# -- run listings --------------------------------------------------------------------------------------

SUMMARY_COLUMNS = (
    "kind", "model", "data", "method", "density", "seed", "status", "final_accuracy", "steps", "path",
    "created", "error", "root",
)  # fmt: skip


@st.cache_data(ttl=3, max_entries=16, show_spinner=False)
def run_table(roots: tuple[str, ...], stamp: tuple = ()) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Every run under ``roots`` as a table (``SUMMARY_COLUMNS``) and the roots that are not folders.

    A short ``ttl`` keeps running jobs' status and steps fresh.
    """
    from fullspectrum.runs import list_runs

    rows, missing = [], []
    for root in roots:
        if not Path(root).is_dir():
            missing.append(root)
            continue
        for summary in list_runs(root):
            rows.append({**summary.as_dict(), "root": root})
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).drop_duplicates("path")
    return frame.reset_index(drop=True), tuple(missing)


# -- one run -------------------------------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def run_info(path: str, stamp: tuple) -> dict:
    """``run.json`` of a run."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).info


@st.cache_data(max_entries=32, show_spinner=False)
def run_layers(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``layers`` table (``LAYER_COLUMNS``)."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).layers()


@st.cache_data(max_entries=32, show_spinner=False)
def run_evals(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``evals`` table (``EVAL_COLUMNS``)."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).evals()


@st.cache_data(max_entries=32, show_spinner=False)
def run_events(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``events`` table (``EVENT_COLUMNS``)."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).events()


@st.cache_data(max_entries=32, show_spinner=False)
def run_population(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``population`` table (``POPULATION_COLUMNS``)."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).population()


@st.cache_data(max_entries=32, show_spinner=False)
def network_means(path: str, stamp: tuple) -> pd.DataFrame:
    """Network-level values at every snapshot (``network_summary`` of each step's layers), with ``step``."""
    from fullspectrum.spectrum import network_summary

    layers = run_layers(path, stamp)
    rows = [
        {"step": int(step), **network_summary(group.drop(columns=["step", "layer"])).to_dict()}
        for step, group in layers.groupby("step", sort=True)
    ]
    return pd.DataFrame(rows)


@st.cache_data(max_entries=16, show_spinner=False)
def correlation_study(paths: tuple[str, ...], stamps: tuple):
    """FS23 Fig. 3 with MGE24's density controls over the given runs (``analysis.correlation``)."""
    from analysis.correlation import distance_accuracy_study, run_points

    return distance_accuracy_study(run_points(paths))


@st.cache_data(max_entries=32, show_spinner=False)
def table_csv(path: str, stamp: tuple, table: str) -> bytes:
    """One of a run's tables (``layers``, ``evals``, ``events``, ``population``) as CSV bytes."""
    loaders = {"layers": run_layers, "evals": run_evals, "events": run_events, "population": run_population}
    return loaders[table](path, stamp).to_csv(index=False).encode()
