"""Any member of a PAGS / PEGS population on its own: a candidate regenerated, a mask checkpoint (SPEC §5, §8).

A run stores the scores of every candidate but the masks of two members only:
the base mask and the assembled mask (``base_mask.pt``, ``pags_mask.pt`` and
their snapshots). Candidate ``i`` depends only on the sampling's seed and
``i`` (FS23's candidates are cheap: one or two forward/backward passes), so
:func:`regenerate_candidate` rebuilds it exactly as it was in the population,
from a config, a prepared setup or the run directory, and
:func:`save_candidate_checkpoint` writes any member as the mask checkpoint
``fullspectrum train --mask`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import Tensor

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import layer_name
from fullspectrum.sampling.candidates import CandidateEvaluator
from fullspectrum.sampling.config import SamplingConfig
from fullspectrum.sampling.result import ASSEMBLED, BASE, population_rows, population_table
from fullspectrum.sampling.setup import BASE_MASK_FILE, PAGS_MASK_FILE, SamplingSetup, prepare, setup_from_run
from fullspectrum.sampling.workers import single_threaded

STORED_MASKS = {BASE: BASE_MASK_FILE, ASSEMBLED: PAGS_MASK_FILE}
"""Masks a PAGS run keeps as files: the base mask and the assembled mask."""


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
        result = CandidateEvaluator(setup.context).evaluate(setup.config.seed, index, setup.batches(index))
    layer_of = {name: layer_name(name) for name in setup.base_masks}
    table = population_table(population_rows(index, result.rows, layer_of), {})
    return Candidate(index=index, masks=result.masks(), population=table)


def regenerate_masks(setup: SamplingSetup, holders: dict[str, int]) -> dict[str, Tensor]:
    """The masks of some layers, each from the candidate that holds it (parameter name -> index).

    Every candidate named is regenerated once, and only its masks are made
    (no spectra): what a resumed sampling needs for the layers that candidates
    scored before the interruption still hold.
    """
    masks: dict[str, Tensor] = {}
    if not holders:
        return masks
    with single_threaded():  # as in the population's workers
        evaluator = CandidateEvaluator(setup.context)
        for index in sorted(set(holders.values())):
            layers = evaluator.masks(setup.config.seed, index, setup.batches(index))
            masks.update({name: layers[name] for name, holder in holders.items() if holder == index})
    return masks


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
