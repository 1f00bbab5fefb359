"""PAGS and PEGS: pruning at initialisation as graph sampling (SPEC §5; Hoang et al., NeurIPS 2023).

FS23 turn any pruning-at-initialisation generator ``g`` into a sampler: make
the base mask with ``g``, draw ``N`` cheap candidates from ``g`` that keep the
base mask's per-layer budgets, score every candidate layer by the length of
its full-spectrum vector ``u = (Δr, λ, Δr_imdb, λ_imsg)`` and keep, per layer,
the best mask seen (``fs23``: Δr_imdb and ``||u||`` both not worse). PEGS does
the same after a short dense warm-up, and its mask trains on from the
warmed-up weights.

* :func:`sample` runs a prepared sampling (``prepare(config)``) and returns a
  :class:`SamplingResult`; nothing is written. Given the candidates an
  interrupted sampling scored, it replays the selection over them and draws
  only the rest.
* :func:`run_pags` does the whole job into a run directory (SPEC §8): the
  scored population, the base and assembled masks' spectra (steps 0 and 1),
  their mask snapshots, ``final`` numbers, and the mask checkpoints
  ``pags_mask.pt`` / ``base_mask.pt`` that ``train --mask`` and ``analyze`` read.
  While it runs, ``base_mask.pt`` and every scored candidate
  (:mod:`~fullspectrum.sampling.journal`) are saved as soon as they exist, so
  :func:`~fullspectrum.sampling.resume.resume_pags` can continue it from there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

import fullspectrum
from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import layer_name
from fullspectrum.runs import RunStore
from fullspectrum.runs.mask_files import MASK_DIR
from fullspectrum.runs.run_file import DB_FILE, RUN_FILE
from fullspectrum.sampling.candidates import layer_table
from fullspectrum.sampling.config import SamplingConfig
from fullspectrum.sampling.embedding import Embedding, save_embedding
from fullspectrum.sampling.journal import ScoredCandidate, discard_scored, save_scored
from fullspectrum.sampling.members import regenerate_masks
from fullspectrum.sampling.result import (
    ASSEMBLED,
    BASE,
    SamplingResult,
    candidate_label,
    population_rows,
    population_table,
    snapshot_rows,
    spectrum_frame,
)
from fullspectrum.sampling.selection import LayerPoint, LayerWinners
from fullspectrum.sampling.setup import (
    BASE_MASK_FILE,
    PAGS_MASK_FILE,
    SamplingSetup,
    load_network,
    prepare,
    resolve_device,
)
from fullspectrum.sampling.workers import evaluate_population

Progress = Callable[[int, int], None]
Embed = Callable[[pd.DataFrame], Embedding | pd.DataFrame]
"""Maps a population table to its 2-D map (e.g. ``embedding.embedding_table``)."""
PROGRESS_WRITE_S = 1.0
"""At most one ``run.json["progress"]`` update per this many seconds (readers poll it)."""
STORED_STEPS = {BASE: 0, ASSEMBLED: 1}
"""The run-store steps whose snapshot (spectra and masks) is the base mask and the assembled mask."""


def _batches_of(setup: SamplingSetup) -> Callable[[int], list | None]:
    """Candidate index -> its minibatches (``SamplingSetup.batches``; the sampling benchmark uses it)."""
    return setup.batches


def _points(index: int, rows: dict[str, dict]) -> dict[str, LayerPoint]:
    return {name: LayerPoint(index, row["delta_r_imdb"], row["score"]) for name, row in rows.items()}


def sample(
    setup: SamplingSetup,
    *,
    progress: Progress | None = None,
    scored: Sequence[ScoredCandidate] = (),
    record: Callable[[ScoredCandidate], None] | None = None,
) -> SamplingResult:
    """Draw, score and select the population of a prepared sampling (SPEC §5 steps 2–5).

    ``scored`` are candidates ``0 .. k-1`` scored before (an interrupted
    sampling's, :func:`~fullspectrum.sampling.journal.read_scored`): the
    per-layer selection is replayed over them in index order and only
    candidates ``k ..`` are drawn. ``record(candidate)`` receives each newly
    scored one; then ``progress(done, total)`` is called (``done`` counting
    ``scored`` too). The result depends neither on ``setup.config.workers`` nor on ``k``.
    """
    config = setup.config
    if [candidate.index for candidate in scored] != list(range(len(scored))) or len(
        scored
    ) > config.population:
        raise ValueError(f"scored candidates must be 0, 1, ..., k - 1 of {config.population}")
    started = time.perf_counter()
    before = scored[-1].seconds if scored else 0.0
    layer_of = {name: layer_name(name) for name in setup.base_masks}
    base = {row["param"]: LayerPoint(BASE, row["delta_r_imdb"], row["score"]) for row in setup.base_layers}
    selection = LayerWinners(base, config.rule)
    kept = dict(setup.base_masks)
    held: dict[str, int] = {}  # layer -> the candidate of ``scored`` that holds it (masks made at the end)
    rows = population_rows(BASE, {row["param"]: row for row in setup.base_layers}, layer_of)
    for candidate in scored:
        held.update(dict.fromkeys(selection.offer(_points(candidate.index, candidate.rows)), candidate.index))
        rows.extend(population_rows(candidate.index, candidate.rows, layer_of))
    results = evaluate_population(
        setup.context,
        config.seed,
        range(len(scored), config.population),
        setup.batches,
        workers=config.workers,
        backend=config.backend,
    )
    with contextlib.closing(results):  # an interruption shuts the worker pool down here, not later
        for done, result in enumerate(results, start=len(scored) + 1):
            if record is not None:
                record(ScoredCandidate(result.index, result.rows, before + time.perf_counter() - started))
            taken = selection.offer(_points(result.index, result.rows))
            kept.update(result.masks(taken))
            for name in taken:
                held.pop(name, None)
            rows.extend(population_rows(result.index, result.rows, layer_of))
            if progress is not None:
                progress(done, config.population)
    kept.update(regenerate_masks(setup, held))
    assembled = {name: kept[name] for name in setup.base_masks}  # layer order
    assembled_layers = layer_table(assembled, setup.state_dict, setup.context.reference, setup.context.device)
    rows.extend(population_rows(ASSEMBLED, {row["param"]: row for row in assembled_layers}, layer_of))
    winners = {layer_of[name]: index for name, index in selection.winners.items()}
    return SamplingResult(
        config=config,
        base_masks=dict(setup.base_masks),
        assembled_masks=assembled,
        population=population_table(rows, winners),
        winners=winners,
        base_layers=spectrum_frame(setup.base_layers, layer_of),
        assembled_layers=spectrum_frame(assembled_layers, layer_of),
        state_dict=setup.state_dict,
        warmup_loss=setup.warmup_loss,
        seconds=before + time.perf_counter() - started,
    )


def _meta(config: SamplingConfig, masks: dict[str, Tensor], which: str, layers_replaced: int = 0) -> dict:
    return {
        "mask": which,
        "method": config.method,
        "generator": config.generator,
        "density": float(config.density),
        "kept": sum(int(mask.sum()) for mask in masks.values()),
        "total": sum(mask.numel() for mask in masks.values()),
        "model": config.model,
        "data": config.data,
        "seed": config.seed,
        "split_seed": config.split_seed,
        "batch_size": config.batch_size,
        "population": config.population,
        "iters_per_candidate": config.iters_per_candidate,
        "warmup_iters": config.warmup_iters,
        "rule": config.rule,
        "score_from": config.score_from,
        "layers_replaced": layers_replaced,
        "fullspectrum_version": fullspectrum.__version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
    }


def run_pags(
    config: SamplingConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    embed: Embed | None = None,
) -> SamplingResult:
    """Run PAGS (``warmup_iters == 0``) or PEGS and write the run directory ``out_dir`` (SPEC §8).

    ``progress(done, total)`` counts warm-up iterations then candidates
    (``total = warmup_iters + population``); ``run.json["progress"]`` holds
    the same ``{"done", "total"}`` for other processes (updated about every second).
    ``embed``, if given, maps the population table to a 2-D map (e.g.
    :func:`~fullspectrum.sampling.embedding.embedding_table`), which
    :func:`~fullspectrum.sampling.embedding.save_embedding` stores as
    ``embedding.csv`` in the run.

    The device, the dataset and the model are checked before ``out_dir`` is
    made, so a bad name or a missing data folder leaves nothing behind, and
    so does a warm-up that diverges. The base mask (``base_mask.pt``) and
    every scored candidate are saved as soon as they exist: Ctrl-C leaves an
    ``interrupted`` run and a killed process a ``running`` one whose heartbeat
    stops, both continued by :func:`~fullspectrum.sampling.resume.resume_pags`
    to the run an uninterrupted sampling writes; any other error leaves a ``failed`` one.
    """
    config = config.resolved()
    device = str(resolve_device(config.device))  # a missing GPU fails before the run exists
    network = load_network(config)  # so do unknown names and missing data files
    made = _missing_root(Path(out_dir))
    store = RunStore.create(out_dir, kind="pags", config=config.as_dict(), seed=config.seed, device=device)
    report = progress_reporter(store, config, progress)
    try:
        with store.heartbeat_thread():
            setup = prepare(config, progress=report(0), network=network)
            save_base_mask(store, setup)
    except FullSpectrumError:  # bad input found by the work itself (a diverging warm-up)
        store.close()
        _remove_refused_run(store.path, made)
        raise
    except BaseException as error:
        store.finish_after(error)
        raise
    return finish_sampling(store, setup, (), report, embed)


def progress_reporter(store: RunStore, config: SamplingConfig, progress: Progress | None) -> Callable:
    """``report(offset)``: a progress callback that adds ``offset``, calls ``progress`` and stores
    ``run.json["progress"]`` (about once a second, and at the end)."""
    total = config.warmup_iters + config.population
    last_written = [0.0]

    def report(offset: int) -> Progress:
        def callback(done: int, _: int) -> None:
            now = time.monotonic()
            if now - last_written[0] >= PROGRESS_WRITE_S or offset + done == total:
                last_written[0] = now
                store.update_info(progress={"done": offset + done, "total": total})
            if progress is not None:
                progress(offset + done, total)

        return callback

    return report


def save_base_mask(store: RunStore, setup: SamplingSetup) -> None:
    """``base_mask.pt`` (the base mask and the weights candidates are drawn at) and the warm-up's last
    loss in ``run.json["warmup_loss"]``: what a resumed sampling starts from."""
    meta = _meta(setup.config, setup.base_masks, "base")
    save_mask_checkpoint(store.artifact_path(BASE_MASK_FILE), setup.base_masks, setup.state_dict, meta)
    store.update_info(warmup_loss=setup.warmup_loss)  # NaN (PAGS) is stored as null


def finish_sampling(
    store: RunStore,
    setup: SamplingSetup,
    scored: Sequence[ScoredCandidate],
    report: Callable,
    embed: Embed | None,
) -> SamplingResult:
    """Sample the population (each candidate saved as it comes), then write the run's results and finish it."""
    config = setup.config
    with store.ended_on_error():
        with store.heartbeat_thread():
            result = sample(
                setup,
                progress=report(config.warmup_iters),
                scored=scored,
                record=lambda candidate: save_scored(store.path, candidate),
            )
            result = _record(store, result)
            save_mask_checkpoint(
                store.artifact_path(PAGS_MASK_FILE),
                result.assembled_masks,
                result.state_dict,
                _meta(config, result.assembled_masks, "assembled", result.layers_replaced),
            )
            if embed is not None:
                _store_embedding(store, embed, result.population)
    store.finish("finished", final=result.summary())
    discard_scored(store.path)  # the population table holds them now
    return result


def _store_embedding(store, embed: Embed, population: pd.DataFrame) -> None:
    """``embed(population)`` as ``embedding.csv``; a failing embedding is noted in run.json, not fatal."""
    try:
        save_embedding(store.path, embed(population))
    except Exception as error:  # an optional view of the population must not fail the sampling
        store.update_info(embedding_error=f"{type(error).__name__}: {error}")


def _record(store, result: SamplingResult) -> SamplingResult:
    """Population, the base (step 0) and assembled (step 1) masks and their spectra, into ``store``.

    The population is one transaction, written once: a resumed run that was
    stopped after it keeps it (``truncate_after(-1)`` has removed the snapshots).
    """
    base_step, assembled_step = STORED_STEPS[BASE], STORED_STEPS[ASSEMBLED]
    if store.population().empty:
        store.add_population(result.population.to_dict("records"))
    store.add_snapshot(base_step, snapshot_rows(result.base_layers, result.base_layers))
    store.add_snapshot(assembled_step, snapshot_rows(result.assembled_layers, result.base_layers))
    store.save_masks(base_step, result.base_masks)
    store.save_masks(assembled_step, result.assembled_masks)
    store.update_info(snapshots={str(step): candidate_label(index) for index, step in STORED_STEPS.items()})
    return dataclasses.replace(result, run_dir=store.path)


def _missing_root(path: Path) -> Path | None:
    """The highest folder on the way to ``path`` that does not exist yet (``None``: ``path`` exists)."""
    path = path.absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _remove_refused_run(path: Path, made: Path | None) -> None:
    """Remove a run refused before its first candidate: the folders this job made, else its run files."""
    with contextlib.suppress(OSError):
        if made is not None:
            shutil.rmtree(made)
            return
        for name in (
            RUN_FILE,
            DB_FILE,
            f"{DB_FILE}-wal",
            f"{DB_FILE}-shm",
            f"{DB_FILE}-journal",
            BASE_MASK_FILE,
        ):
            (path / name).unlink(missing_ok=True)
        (path / MASK_DIR).rmdir()  # only if empty
