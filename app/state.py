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


# -- masks, graphs, comparisons and populations (Graph inspector, PAGS lab, Compare masks) ----------------


@st.cache_data(max_entries=8, show_spinner=False)
def run_masks(path: str, step: int, stamp: tuple) -> dict:
    """Masks of a run at ``step`` (parameter name -> bool tensor)."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).load_masks(int(step))


@st.cache_data(max_entries=32, show_spinner=False)
def run_mask_steps(path: str, stamp: tuple) -> list[int]:
    """Steps at which a run stored its masks."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).mask_steps()


@st.cache_data(max_entries=8, show_spinner=False)
def run_weights(path: str, stamp: tuple) -> dict:
    """The weights a run's masks were made for, when the run carries them (PAGS ``base_mask.pt``), else {}."""
    from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
    from fullspectrum.runs import RunStore

    artifact = RunStore.open(path).artifact_path("base_mask.pt")
    return dict(load_mask_checkpoint(artifact).state_dict) if artifact.is_file() else {}


@st.cache_data(max_entries=8, show_spinner=False)
def run_snapshot_weights(path: str, step: int, stamp: tuple) -> dict:
    """The weights a run kept with its snapshot at ``step`` (a training run's first and last), else {}."""
    from fullspectrum.runs import RunStore

    return RunStore.open(path).load_weights(int(step))


@st.cache_data(max_entries=16, show_spinner=False)
def layer_view(path: str, step: int, layer: str, stamp: tuple) -> dict:
    """One layer of a run's masks: ``mask`` (numpy bool), its ``spectrum`` dict, ``classes`` and top ``sigma``."""
    from fullspectrum.layers.names import layer_name
    from fullspectrum.spectrum import layer_spectrum, regular_subgraphs, top_singular_values

    masks = run_masks(path, step, stamp)
    weights = run_snapshot_weights(path, step, stamp) or run_weights(path, stamp)
    names = {layer_name(name): name for name in masks}
    if layer not in names:
        from fullspectrum.errors import unknown_name

        raise unknown_name("layer", layer, list(names))
    mask = masks[names[layer]].numpy()
    weight = weights.get(names[layer])
    weight = weight.numpy() if weight is not None and tuple(weight.shape) == mask.shape else None
    return {
        "mask": mask,
        "spectrum": layer_spectrum(mask, weight, name=layer).as_dict(),
        "classes": regular_subgraphs(mask, weight),
        "sigma": top_singular_values(mask, k=10),
        "omega": top_singular_values(mask, weight, k=10) if weight is not None else None,
    }


@st.cache_data(max_entries=16, show_spinner=False)
def mask_source(source: tuple, stamp: tuple) -> tuple[dict, dict, str]:
    """``(masks, weights, label)`` of a Compare-masks source: ``("run", path, step)``,
    ``("candidate", path, index)`` (regenerated from the PAGS run's seed and index) or ``("upload", path)``."""
    from pathlib import Path as _Path

    kind = source[0]
    if kind == "run":
        _, path, step = source
        masks = run_masks(path, int(step), stamp)
        weights = run_snapshot_weights(path, int(step), stamp) or run_weights(path, stamp)
        return masks, weights, f"{_Path(path).name} @ step {step}"
    if kind == "candidate":
        from fullspectrum.sampling import regenerate_candidate

        _, path, index = source
        if int(index) < 0:  # base (-1, step 0) or assembled (-2, step 1) are stored as masks
            step = 0 if int(index) == -1 else 1
            label = "base" if int(index) == -1 else "assembled"
            return run_masks(path, step, stamp), run_weights(path, stamp), f"{_Path(path).name}: {label} mask"
        candidate = regenerate_candidate(path, int(index))
        return candidate.masks, run_weights(path, stamp), f"{_Path(path).name}: candidate {index}"
    if kind == "upload":
        from fullspectrum.checkpoints import load_sparse_checkpoint
        from fullspectrum.layers.names import parameter_name

        checkpoint = load_sparse_checkpoint(source[1])
        masks = {parameter_name(layer.name): layer.mask for layer in checkpoint.layers}
        weights = {
            parameter_name(layer.name): layer.weight
            for layer in checkpoint.layers
            if layer.weight is not None
        }
        return masks, weights, _Path(source[1]).name
    from fullspectrum.errors import unknown_name

    raise unknown_name("mask source", str(kind), ["run", "candidate", "upload"])


@st.cache_data(max_entries=8, show_spinner=False)
def mask_comparison(source_a: tuple, source_b: tuple, stamps: tuple):
    """``analysis.compare.compare_masks`` of two mask sources, with their labels."""
    from analysis.compare import compare_masks

    masks_a, weights_a, label_a = mask_source(source_a, stamps[0])
    masks_b, weights_b, label_b = mask_source(source_b, stamps[1])
    return compare_masks(masks_a, masks_b, weights_a=weights_a, weights_b=weights_b), label_a, label_b


@st.cache_data(max_entries=16, show_spinner=False)
def graphon_pair(source_a: tuple, source_b: tuple, layer: str, stamps: tuple) -> tuple:
    """G25 graphon estimates (block values) of one layer of two mask sources."""
    from fullspectrum.layers.names import layer_name
    from fullspectrum.spectrum.graphon import graphon_estimate

    values = []
    for source, stamp in zip((source_a, source_b), stamps, strict=True):
        masks, _, _ = mask_source(source, stamp)
        by_layer = {layer_name(name): mask for name, mask in masks.items()}
        values.append(graphon_estimate(by_layer[layer], name=layer).values)
    return tuple(values)


@st.cache_data(max_entries=16, show_spinner=False)
def population_views(path: str, stamp: tuple) -> dict:
    """A PAGS run's population as ``points`` (network means), ``winners`` and its stored ``embedding``."""
    from analysis.embedding import layer_winners, load_embedding, network_points

    population = run_population(path, stamp)
    return {
        "population": population,
        "points": network_points(population) if len(population) else population,
        "winners": layer_winners(population) if len(population) else population,
        "embedding": load_embedding(path),
    }
