"""The app's cache: where run folders are, file stamps, and bounded Streamlit caches over the library.

Every cached function takes plain hashable arguments (paths as strings, mask
source tuples) plus a *stamp* of the run's files (:func:`run_stamp`:
modification times and sizes), so a running job's new rows invalidate the
cache while finished runs are read once. Each is a thin wrapper around one
call of the run store or of ``analysis`` and is bounded (``max_entries``, or
``ttl`` for listings). Cached functions never read widgets. Errors
(``FullSpectrumError``) are not cached; pages catch them and show the
one-line message.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from analysis.compare import MaskComparison, compare_masks
from analysis.correlation import CrossRunStudy, cross_run_study, run_points
from analysis.embedding import embed_population, layer_winners, load_embedding, network_points
from analysis.evidence import evidence_table, mask_digest, measured_accuracy
from analysis.graphon_studies import (
    TrainabilityStudy,
    WidthStudy,
    load_trainability_study,
    load_width_study,
    mask_ntk_spectrum,
    mlp_fingerprint,
)
from analysis.layer_view import LayerView, inspect_layer
from analysis.mask_sources import SourceMasks, load_mask_source
from analysis.predictors import PredictorStudy, predictor_studies
from analysis.reproduction_view import ReproductionView, load_reproduction
from analysis.run_features import run_features
from analysis.unrolled_view import UnrolledView, network_graph, read_unrolled
from analysis.verdict import MaskPair, Verdict, mask_verdict
from fullspectrum.cli.app import RUNS_ENV
from fullspectrum.errors import FullSpectrumError
from fullspectrum.fingerprints import Fingerprint
from fullspectrum.ntk import NTKSpectrum
from fullspectrum.runs import RunError, RunStore, jobs, list_runs, uploads
from fullspectrum.spectrum import network_summary_by_step
from fullspectrum.spectrum.graphon import graphon_estimate

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE_ENV = "FULLSPECTRUM_WORKSPACE"
"""Where the app writes new runs (live training, uploads); default ``<checkout>/app_runs``."""
RUN_FILES = ("run.json", "metrics.sqlite", "metrics.sqlite-wal", jobs.JOB_FILE)
"""The files of a run whose changes :func:`run_stamp` sees."""


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


@st.cache_resource(ttl=3600, max_entries=4, show_spinner=False)
def clean_uploads(root: str) -> int:
    """Remove the uploads under ``root`` that no session touched for a day (``runs.uploads.clean_uploads``):
    at the app's first script run, then at most once an hour. Returns how many files went."""
    return len(uploads.clean_uploads(root))


# -- stamps --------------------------------------------------------------------------------------------


def run_stamp(path: str) -> tuple:
    """Modification times and sizes of a run's files: a cache key that changes when the run does."""
    stamp = []
    for name in RUN_FILES:
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
    """Every run under ``roots`` as a table (``SUMMARY_COLUMNS``) and the roots that are not readable folders.

    A short ``ttl`` keeps running jobs' status and steps fresh.
    """
    rows, missing = [], []
    for root in roots:
        if not Path(root).is_dir():
            missing.append(root)
            continue
        try:
            rows.extend({**summary.as_dict(), "root": root} for summary in list_runs(root))
        except RunError:  # a folder that cannot be read lists like a missing one
            missing.append(root)
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)).drop_duplicates("path")
    return frame.reset_index(drop=True), tuple(missing)


# -- one run -------------------------------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def run_info(path: str, stamp: tuple) -> dict:
    """``run.json`` of a run."""
    return RunStore.open(path).info


@st.cache_data(max_entries=32, show_spinner=False)
def run_layers(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``layers`` table (``LAYER_COLUMNS``)."""
    return RunStore.open(path).layers()


@st.cache_data(max_entries=32, show_spinner=False)
def run_evals(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``evals`` table (``EVAL_COLUMNS``)."""
    return RunStore.open(path).evals()


@st.cache_data(max_entries=32, show_spinner=False)
def run_events(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``events`` table (``EVENT_COLUMNS``)."""
    return RunStore.open(path).events()


@st.cache_data(max_entries=32, show_spinner=False)
def run_population(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``population`` table (``POPULATION_COLUMNS``)."""
    return RunStore.open(path).population()


@st.cache_data(max_entries=32, show_spinner=False)
def run_mask_steps(path: str, stamp: tuple) -> list[int]:
    """Steps at which a run stored its masks."""
    return RunStore.open(path).mask_steps()


@st.cache_data(max_entries=32, show_spinner=False)
def network_means(path: str, stamp: tuple) -> pd.DataFrame:
    """Network-level values at every snapshot (``network_summary_by_step``), with ``step``."""
    return network_summary_by_step(run_layers(path, stamp))


@st.cache_data(max_entries=32, show_spinner=False)
def table_csv(path: str, stamp: tuple, table: str) -> bytes:
    """One of a run's tables (``layers``, ``evals``, ``events``, ``population``) as CSV bytes."""
    loaders = {"layers": run_layers, "evals": run_evals, "events": run_events, "population": run_population}
    return loaders[table](path, stamp).to_csv(index=False).encode()


@st.cache_data(max_entries=16, show_spinner=False)
def correlation_studies(
    paths: tuple[str, ...], stamps: tuple, *, include_chance: bool = False
) -> CrossRunStudy:
    """FS23 Fig. 3 with MGE24's density controls over the given runs, per dataset and model
    (``analysis.correlation.cross_run_study``)."""
    return cross_run_study(run_points(paths), include_chance=include_chance)


@st.cache_data(max_entries=16, show_spinner=False)
def population_views(path: str, stamp: tuple) -> dict:
    """A PAGS run's ``population``, its ``points`` (network means), ``winners`` and stored ``embedding``."""
    population = run_population(path, stamp)
    embedding = load_embedding(path)
    if embedding is None and len(population):  # not mapped yet (or sampled before maps were stored)
        status = run_info(path, stamp).get("status")
        words = ("the job is drawing the UMAP map; PCA for now" if status == "running"
                 else "this run stored no map; PCA drawn by the app")  # fmt: skip
        embedding = replace(embed_population(population, method="pca"), note=words)
    return {
        "population": population,
        "points": network_points(population) if len(population) else population,
        "winners": layer_winners(population) if len(population) else population,
        "embedding": embedding,
    }


# -- masks (Graph inspector, PAGS lab, Compare masks) ----------------------------------------------------


@st.cache_data(max_entries=16, show_spinner=False)
def mask_source(source: tuple, stamp: tuple) -> SourceMasks:
    """The masks, weights and label of a mask source (``analysis.mask_sources``): ``("run", path, step)``,
    ``("candidate", path, index)`` or ``("upload", path)``."""
    return load_mask_source(source)


@st.cache_data(max_entries=16, show_spinner=False)
def layer_view(path: str, step: int, layer: str, stamp: tuple) -> LayerView:
    """One layer of a run's masks at ``step``, analysed (``analysis.layer_view.inspect_layer``)."""
    source = mask_source(("run", path, int(step)), stamp)
    return inspect_layer(source.masks, source.weights, layer)


@st.cache_data(max_entries=8, show_spinner=False)
def mask_comparison(source_a: tuple, source_b: tuple, stamps: tuple) -> tuple[MaskComparison, str, str]:
    """``analysis.compare.compare_masks`` of two mask sources, with their labels."""
    a, b = mask_source(source_a, stamps[0]), mask_source(source_b, stamps[1])
    return compare_masks(a.masks, b.masks, weights_a=a.weights, weights_b=b.weights), a.label, b.label


@st.cache_data(max_entries=16, show_spinner=False)
def graphon_pair(source_a: tuple, source_b: tuple, layer: str, stamps: tuple) -> tuple[np.ndarray, ...]:
    """G25 graphon estimates (block values) of one layer of two mask sources."""
    return tuple(
        graphon_estimate(mask_source(source, stamp).mask(layer), name=layer).values
        for source, stamp in zip((source_a, source_b), stamps, strict=True)
    )


# -- evidence and verdicts (Compare masks, PAGS lab) -------------------------------------------------------


@st.cache_data(max_entries=512, show_spinner=False)
def first_mask_digest(path: str, stamp: tuple) -> str | None:
    """``analysis.evidence.mask_digest`` of a run's first stored masks (None without masks or unreadable)."""
    try:
        store = RunStore.open(path)
        steps = store.mask_steps()
        return mask_digest(store.load_masks(steps[0])) if steps else None
    except (FullSpectrumError, OSError):
        return None


@st.cache_data(max_entries=32, show_spinner=False)
def source_digest(source: tuple, stamp: tuple) -> str:
    """The digest of a mask source's masks."""
    return mask_digest(mask_source(source, stamp).masks)


def evidence_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished training runs of a run table with the digests of their step-0 masks
    (``analysis.evidence.evidence_table``); each digest is cached by the run's stamp."""
    if runs.empty:
        return evidence_table(runs, {})
    finished = runs[
        (runs["kind"] == "train") & runs["final_accuracy"].notna() & (runs["status"] != "corrupt")
    ]
    digests = {path: first_mask_digest(path, run_stamp(path)) for path in finished["path"]}
    return evidence_table(finished, digests)


@st.cache_data(max_entries=8, show_spinner=False)
def verdict(source_a: tuple, source_b: tuple, stamps: tuple, evidence: pd.DataFrame) -> tuple[Verdict, tuple]:
    """``analysis.verdict.mask_verdict`` of two mask sources against the runs of ``evidence``
    (:func:`evidence_runs`), with both masks' cross-layer dead links ``(links_a, links_b)``."""
    a, b = mask_source(source_a, stamps[0]), mask_source(source_b, stamps[1])
    comparison, _, _ = mask_comparison(source_a, source_b, stamps)
    pair = MaskPair.of(a.masks, b.masks, weights_a=a.weights, weights_b=b.weights, comparison=comparison)
    measured = [
        measured_accuracy(source, source_digest(source, stamp), evidence)
        for source, stamp in zip((source_a, source_b), stamps, strict=True)
    ]
    return mask_verdict(pair, *measured), (pair.links_a, pair.links_b)


# -- Unrolled view, Graphon & NTK, Reproductions ----------------------------------------------------------


def folder_stamp(path: str, pattern: str = "*") -> tuple:
    """Names, modification times and sizes of the files matching ``pattern`` under ``path`` (recursively)."""
    try:
        return tuple(
            (str(p.relative_to(path)), p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(Path(path).rglob(pattern))
            if p.is_file()
        )
    except OSError:
        return ()


def _model_options(source: tuple, stamp: tuple) -> dict:
    """The zoo model's options a run was made with (an upload: none)."""
    return (
        (run_info(source[1], stamp).get("config") or {}).get("model_options") or {}
        if source[0] != "upload"
        else {}
    )


@st.cache_resource(max_entries=4, show_spinner=False)
def unrolled_graph_of(source: tuple, stamp: tuple, network: tuple, skips: str, compat: bool):
    """``analysis.unrolled_view.network_graph`` of a mask source on ``network`` = ``(model, data, data_dir)``
    (a resource: large, read-only, never copied)."""
    masks = mask_source(source, stamp)
    model, data, data_dir = network
    return network_graph(
        masks.masks, masks.weights, model, data, model_options=_model_options(source, stamp), data_dir=data_dir,
        skips=skips, mge24_compat=compat,
    )  # fmt: skip


@st.cache_data(max_entries=8, show_spinner=False)
def unrolled(source: tuple, stamp: tuple, network: tuple, skips: str, compat: bool) -> UnrolledView:
    """``analysis.unrolled_view.read_unrolled`` of :func:`unrolled_graph_of`: effective paths, live units,
    topometrics."""
    return read_unrolled(unrolled_graph_of(source, stamp, network, skips, compat))


@st.cache_data(max_entries=8, show_spinner=False)
def predictor_study_of(
    paths: tuple[str, ...], stamps: tuple
) -> tuple[dict[tuple[str, str], PredictorStudy], int]:
    """``predictor_studies(run_features(paths))`` (one study per model and dataset) and how many runs had features."""
    table = run_features(paths)
    return predictor_studies(table), len(table)


@st.cache_data(max_entries=4, show_spinner=False)
def width_study(folder: str, stamp: tuple) -> WidthStudy:
    """The cached width-limit study of ``folder`` (``analysis.graphon_studies.load_width_study``)."""
    return load_width_study(folder)


@st.cache_data(max_entries=4, show_spinner=False)
def trainability_study(folder: str, stamp: tuple) -> TrainabilityStudy:
    """The cached trainability study of ``folder``."""
    return load_trainability_study(folder)


@st.cache_data(max_entries=16, show_spinner=False)
def fingerprint(
    generator: str, data: str, density: float, width: int, seeds: tuple[int, ...], K: int
) -> Fingerprint:
    """``analysis.graphon_studies.mlp_fingerprint``: a generator's mean graphon estimate over seeds."""
    return mlp_fingerprint(generator, data, density, width, seeds, K)


@st.cache_data(max_entries=32, show_spinner=False)
def ntk_spectrum_of(source: tuple, stamp: tuple, network: tuple, inputs: int) -> NTKSpectrum:
    """The empirical NTK's spectral summary of a mask source on ``network`` = ``(model, data, data_dir)``."""
    masks = mask_source(source, stamp)
    model, data, data_dir = network
    options = (
        run_info(source[1], stamp).get("config", {}).get("model_options") if source[0] != "upload" else {}
    )
    return mask_ntk_spectrum(
        masks.masks, masks.weights, model, data, inputs=inputs, model_options=options or {}, data_dir=data_dir
    )


@st.cache_data(max_entries=8, show_spinner=False)
def reproduction(path: str, stamp: tuple) -> ReproductionView:
    """A reproduction folder read back (``analysis.reproduction_view.load_reproduction``), partial while it runs."""
    return load_reproduction(path)


# -- model folders and block × projection views (Runs page, Graph inspector) ------------------------------


@st.cache_data(max_entries=32, show_spinner=False)
def grouped_run_layers(path: str, stamp: tuple) -> pd.DataFrame:
    """The ``layers`` table with ``block``, ``projection`` and ``nm_pattern`` (``app.layer_groups``)."""
    from app.layer_groups import grouped_layers  # noqa: PLC0415 - appended helper; the imports above are shared

    return grouped_layers(run_layers(path, stamp), run_info(path, stamp))


@st.cache_data(ttl=10, max_entries=8, show_spinner=False)
def model_folders(roots: tuple[str, ...], stamp: tuple) -> list[str]:
    """Hugging Face model folders under ``roots`` (``app.model_folders.find_model_folders``)."""
    from app.model_folders import find_model_folders  # noqa: PLC0415 - appended helper

    return find_model_folders(roots)


@st.cache_data(max_entries=16, show_spinner=False)
def trajectory_chart_base(path: str, stamp: tuple, layers: tuple[str, ...], with_network: bool):
    """The run's 3-D trajectory without its step (``app.charts.trajectories.trajectory_base``, animated,
    the camera kept per run): the step slider only places the marker (``place_marker``)."""
    from app.charts.trajectories import trajectory_base  # noqa: PLC0415 - appended helper

    network = network_means(path, stamp) if with_network else None
    return trajectory_base(
        run_layers(path, stamp), selected_layers=list(layers), network=network, animate=True, revision=path
    )


@st.cache_data(max_entries=16, show_spinner=False)
def metrics_chart_base(path: str, stamp: tuple, layers: tuple[str, ...]) -> dict:
    """The run's distance / exploration / accuracy rows without the step line (``metrics_base``)."""
    from app.charts.trajectories import metrics_base  # noqa: PLC0415 - appended helper

    return metrics_base(
        run_layers(path, stamp),
        run_evals(path, stamp),
        selected_layers=list(layers),
        network=network_means(path, stamp),
    )
