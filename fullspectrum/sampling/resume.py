"""Continuing an interrupted or killed PAGS / PEGS sampling to the run an uninterrupted one writes (SPEC §5, §8).

A sampling's work is its candidates, and candidate ``i`` depends only on the
seed and ``i`` (FS23's candidates need no training), so a sampling stopped by
Ctrl-C, a killed process or a full disk loses nothing it cannot redo exactly.
:func:`resume_pags`:

1. opens the run as its writer (a sampling another process still writes is
   refused) and removes what an end cut short wrote after the population (the
   snapshots of steps 0 and 1; the population table is one transaction, whole
   or absent);
2. rebuilds the setup from ``base_mask.pt`` (the base mask and the weights the
   candidates are drawn at, PEGS's warmed-up ones) or, when the run stopped
   before the base mask existed, prepares it again from the seed;
3. reads the candidates scored so far (:mod:`~fullspectrum.sampling.journal`),
   replays the per-layer selection over them in index order, draws the rest and
   ends the run as :func:`~fullspectrum.sampling.pags.run_pags` does.

The population rows, the winners, the masks, the mask checkpoints and the
embedding are those of an uninterrupted sampling, for any number of workers
before and after. A finished run is left alone: its result is read back from
its files, with ``already_finished`` set.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.layers.names import layer_name
from fullspectrum.runs import RunError, RunStore
from fullspectrum.sampling.config import SamplingConfig
from fullspectrum.sampling.journal import discard_scored, read_scored
from fullspectrum.sampling.pags import (
    STORED_STEPS,
    Embed,
    Progress,
    finish_sampling,
    progress_reporter,
    save_base_mask,
)
from fullspectrum.sampling.result import ASSEMBLED, BASE, SamplingResult
from fullspectrum.sampling.setup import (
    BASE_MASK_FILE,
    PAGS_MASK_FILE,
    load_network,
    prepare,
    resolve_device,
    restore,
)
from fullspectrum.spectrum import SPECTRUM_FIELDS


def resume_pags(
    run_dir: str | Path,
    *,
    progress: Progress | None = None,
    embed: Embed | None = None,
    workers: int | None = None,
) -> SamplingResult:
    """Continue the PAGS / PEGS run ``run_dir`` from its last scored candidate.

    ``progress`` and ``embed`` as in :func:`~fullspectrum.sampling.pags.run_pags`
    (``done`` starts at what the run had done); ``workers`` overrides the run's
    number of worker processes, which changes no result. A finished run is not
    touched (the result read back has ``already_finished=True``). Until the
    sampling starts again, any error leaves the run as it was.
    """
    reader = RunStore.open(run_dir)  # read-only: a finished run (say, a cached one) stays untouched
    info = reader.info
    if info.get("kind") != "pags":
        raise RunError(f"{run_dir}: a {info.get('kind')!r} run, not a PAGS sampling")
    if info.get("status") == "finished":
        return finished_result(reader)
    config = SamplingConfig.from_dict(info["config"])
    if workers is not None:
        config = dataclasses.replace(config, workers=workers)
    config = config.resolved()
    resolve_device(config.device)  # a missing GPU, the dataset and the model fail before the run is taken
    network = load_network(config)
    store = RunStore.open(run_dir, readonly=False)
    report = progress_reporter(store, config, progress)
    try:
        with store.heartbeat_thread():
            base_mask = store.artifact_path(BASE_MASK_FILE)
            if base_mask.is_file():
                setup = restore(config, base_mask, network=network)
                setup = dataclasses.replace(setup, warmup_loss=_number(store.info.get("warmup_loss")))
                scored = read_scored(store.path, list(setup.base_masks))
            else:  # stopped during the warm-up or the base mask: both again, from the seed
                discard_scored(store.path)
                setup = prepare(config, progress=report(0), network=network)
                save_base_mask(store, setup)
                scored = []
            store.truncate_after(-1)
            store.update_info(status="running")
    except BaseException:
        store.close()  # the run stays as it was: still resumable once the problem is fixed
        raise
    return finish_sampling(store, setup, scored, report, embed)


def finished_result(store: RunStore) -> SamplingResult:
    """The result of a finished PAGS run, read back from its files (nothing is written)."""
    info = store.info
    base = load_mask_checkpoint(store.artifact_path(BASE_MASK_FILE))
    assembled = load_mask_checkpoint(store.artifact_path(PAGS_MASK_FILE))
    population = store.population()
    won = population[population["won"]]
    holders = dict(zip(won["layer"], won["candidate"].astype(int), strict=True))
    layers = store.layers()
    final = info.get("final") or {}
    return SamplingResult(
        config=SamplingConfig.from_dict(info["config"]),
        base_masks=base.masks,
        assembled_masks=assembled.masks,
        population=population,
        winners={layer_name(name): holders.get(layer_name(name), BASE) for name in base.masks},
        base_layers=_spectra(layers, population, BASE),
        assembled_layers=_spectra(layers, population, ASSEMBLED),
        state_dict=base.state_dict,
        warmup_loss=_number(final.get("warmup_loss")),
        seconds=_number(final.get("seconds")),
        run_dir=store.path,
        already_finished=True,
    )


def _spectra(layers: pd.DataFrame, population: pd.DataFrame, member: int) -> pd.DataFrame:
    """``layer``, every ``LayerSpectrum`` field and ``score`` of the base or the assembled mask."""
    rows = layers[layers["step"] == STORED_STEPS[member]]
    scores = population[population["candidate"] == member].set_index("layer")["score"]
    frame = rows[["layer", *SPECTRUM_FIELDS]].reset_index(drop=True)
    return frame.assign(score=frame["layer"].map(scores).to_numpy(dtype=float))


def _number(value) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else float("nan")
