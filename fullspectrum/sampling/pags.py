"""PAGS and PEGS: pruning at initialisation as graph sampling (SPEC §5; Hoang et al., NeurIPS 2023).

FS23 turn any pruning-at-initialisation generator ``g`` into a sampler: make
the base mask with ``g``, draw ``N`` cheap candidates from ``g`` that keep the
base mask's per-layer budgets, score every candidate layer by the length of
its full-spectrum vector ``u = (Δr, λ, Δr_imdb, λ_imsg)`` and keep, per layer,
the best mask seen (``fs23``: Δr_imdb and ``||u||`` both not worse). PEGS does
the same after a short dense warm-up, and its mask trains on from the
warmed-up weights.

* :func:`sample` runs a prepared sampling (``prepare(config)``) and returns a
  :class:`SamplingResult`; nothing is written.
* :func:`run_pags` does the whole job into a run directory (SPEC §8): the
  scored population, the base and assembled masks' spectra (steps 0 and 1),
  their mask snapshots, ``final`` numbers, and the mask checkpoints
  ``pags_mask.pt`` / ``base_mask.pt`` that ``train --mask`` and ``analyze`` read.
* :func:`regenerate_candidate` rebuilds candidate ``i`` alone, from a config or
  a run directory, exactly as it was in the population.
* :func:`save_candidate_checkpoint` writes any member of a run's population
  as a mask checkpoint.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

import fullspectrum
from fullspectrum.checkpoints.mask_file import load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import layer_name
from fullspectrum.runs import RunStore
from fullspectrum.sampling.candidates import (
    CandidateEvaluator,
    candidate_batches,
    candidate_seeds,
    generator_kind,
    layer_table,
)
from fullspectrum.sampling.config import SamplingConfig
from fullspectrum.sampling.embedding import Embedding, save_embedding
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
    prepare,
    resolve_device,
    setup_from_run,
)
from fullspectrum.sampling.workers import evaluate_population, single_threaded

Progress = Callable[[int, int], None]
Embed = Callable[[pd.DataFrame], Embedding | pd.DataFrame]
"""Maps a population table to its 2-D map (e.g. ``embedding.embedding_table``)."""
PROGRESS_WRITE_S = 1.0
"""At most one ``run.json["progress"]`` update per this many seconds (readers poll it)."""
STORED_STEPS = {BASE: 0, ASSEMBLED: 1}
"""The run-store steps whose snapshot (spectra and masks) is the base mask and the assembled mask."""


def _batches_of(setup: SamplingSetup) -> Callable[[int], list | None]:
    config = setup.config
    if generator_kind(config.generator) != "data":
        return lambda index: None
    return lambda index: candidate_batches(
        setup.splits.train,
        config.batch_size,
        config.iters_per_candidate,
        candidate_seeds(config.seed, index).data,
    )


def sample(setup: SamplingSetup, *, progress: Progress | None = None) -> SamplingResult:
    """Draw, score and select the population of a prepared sampling (SPEC §5 steps 2–5).

    ``progress(done, total)`` is called after each candidate. The result does
    not depend on ``setup.config.workers``.
    """
    config = setup.config
    started = time.perf_counter()
    layer_of = {name: layer_name(name) for name in setup.base_masks}
    base = {row["param"]: LayerPoint(BASE, row["delta_r_imdb"], row["score"]) for row in setup.base_layers}
    selection = LayerWinners(base, config.rule)
    kept = dict(setup.base_masks)
    rows = population_rows(BASE, {row["param"]: row for row in setup.base_layers}, layer_of)
    results = evaluate_population(
        setup.context,
        config.seed,
        range(config.population),
        _batches_of(setup),
        workers=config.workers,
        progress=progress,
    )
    for result in results:
        points = {
            name: LayerPoint(result.index, row["delta_r_imdb"], row["score"])
            for name, row in result.rows.items()
        }
        kept.update(result.masks(selection.offer(points)))
        rows.extend(population_rows(result.index, result.rows, layer_of))
    assembled = {name: kept[name] for name in setup.base_masks}  # layer order
    assembled_layers = layer_table(assembled, setup.state_dict, setup.context.reference)
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
        seconds=time.perf_counter() - started,
    )


def _meta(result: SamplingResult, which: str) -> dict:
    config = result.config
    masks = result.assembled_masks if which == "assembled" else result.base_masks
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
        "layers_replaced": result.layers_replaced if which == "assembled" else 0,
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
    ``embedding.csv`` in the run. Ctrl-C leaves an ``interrupted`` run
    (sampling is not resumable: run it again); any other error a ``failed`` one.
    """
    config = config.resolved()
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

    device = str(resolve_device(config.device))  # a missing GPU fails before the run exists
    store = RunStore.create(out_dir, kind="pags", config=config.as_dict(), seed=config.seed, device=device)
    try:
        with store.heartbeat_thread():
            setup = prepare(config, progress=report(0))
            result = sample(setup, progress=report(config.warmup_iters))
            result = _record(store, result)
            save_mask_checkpoint(
                store.artifact_path(PAGS_MASK_FILE),
                result.assembled_masks,
                result.state_dict,
                _meta(result, "assembled"),
            )
            save_mask_checkpoint(
                store.artifact_path(BASE_MASK_FILE),
                result.base_masks,
                result.state_dict,
                _meta(result, "base"),
            )
            if embed is not None:
                _store_embedding(store, embed, result.population)
    except KeyboardInterrupt:
        store.finish("interrupted")
        raise
    except BaseException:
        store.finish("failed")
        raise
    store.finish("finished", final=result.summary())
    return result


def _store_embedding(store, embed: Embed, population: pd.DataFrame) -> None:
    """``embed(population)`` as ``embedding.csv``; a failing embedding is noted in run.json, not fatal."""
    try:
        save_embedding(store.path, embed(population))
    except Exception as error:  # an optional view of the population must not fail the sampling
        store.update_info(embedding_error=f"{type(error).__name__}: {error}")


def _record(store, result: SamplingResult) -> SamplingResult:
    """Population, the base (step 0) and assembled (step 1) masks and their spectra, into ``store``."""
    base_step, assembled_step = STORED_STEPS[BASE], STORED_STEPS[ASSEMBLED]
    store.add_population(result.population.to_dict("records"))
    store.add_snapshot(base_step, snapshot_rows(result.base_layers, result.base_layers))
    store.add_snapshot(assembled_step, snapshot_rows(result.assembled_layers, result.base_layers))
    store.save_masks(base_step, result.base_masks)
    store.save_masks(assembled_step, result.assembled_masks)
    store.update_info(snapshots={str(step): candidate_label(index) for index, step in STORED_STEPS.items()})
    return dataclasses.replace(result, run_dir=store.path)


@dataclass(frozen=True)
class Candidate:
    """One candidate regenerated alone."""

    index: int
    """Candidate index ``i``."""
    masks: dict[str, Tensor]
    """Its masks (parameter name -> bool CPU tensor), each layer with the base budget ``k_j``."""
    population: pd.DataFrame
    """Its rows of the population table (``POPULATION_COLUMNS``; ``won`` is False)."""


def regenerate_candidate(source: SamplingConfig | SamplingSetup | str | Path, index: int) -> Candidate:
    """Candidate ``index`` of a sampling, exactly as in its population.

    ``source`` is a run directory (fast: reads ``base_mask.pt``; computed on
    the CPU), a prepared :class:`SamplingSetup`, or a config (prepares it:
    warm-up and base mask included).
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise FullSpectrumError(f"candidate index must be a non-negative int, got {index!r}")
    if isinstance(source, SamplingConfig):
        setup = prepare(source)
    elif isinstance(source, SamplingSetup):
        setup = source
    else:
        setup = setup_from_run(source)
    with single_threaded():  # as in the population's workers
        result = CandidateEvaluator(setup.context).evaluate(
            setup.config.seed, index, _batches_of(setup)(index)
        )
    layer_of = {name: layer_name(name) for name in setup.base_masks}
    table = population_table(population_rows(index, result.rows, layer_of), {})
    return Candidate(index=index, masks=result.masks(), population=table)


STORED_MASKS = {BASE: BASE_MASK_FILE, ASSEMBLED: PAGS_MASK_FILE}
"""Masks a PAGS run keeps as files: the base mask and the assembled mask."""


def save_candidate_checkpoint(run_dir: str | Path, index: int, path: str | Path) -> Path:
    """Write any mask of a PAGS run as a SPEC §8 mask checkpoint ``train --mask`` accepts.

    ``index`` ``BASE`` is the base mask and ``ASSEMBLED`` the assembled one
    (copied from the run); a candidate ``>= 0`` is regenerated from the run's
    seed and index and carries the weights it was sampled at (those of ``base_mask.pt``).
    """
    run_dir = Path(run_dir)
    base = load_mask_checkpoint(run_dir / STORED_MASKS[BASE])
    if index in STORED_MASKS:
        stored = load_mask_checkpoint(run_dir / STORED_MASKS[index])
        return save_mask_checkpoint(path, stored.masks, stored.state_dict, stored.meta)
    candidate = regenerate_candidate(run_dir, index)
    meta = {**base.meta, "candidate": index, "source_run": str(run_dir)}
    return save_mask_checkpoint(path, candidate.masks, base.state_dict, meta)
