"""PAGS and PEGS: pruning at initialisation as graph sampling (SPEC §5; Hoang et al., NeurIPS 2023).

``run_pags(SamplingConfig(...), out_dir)`` draws a population of candidate
masks from a pruning-at-initialisation generator, each with the base mask's
per-layer budgets, scores every layer by its full-spectrum vector and
assembles the best layer of each into one mask; ``warmup_iters > 0`` is PEGS
(after a dense warm-up). ``resume_pags(out_dir)`` continues an interrupted or
killed one to the run an uninterrupted sampling writes. Modules:
:mod:`~fullspectrum.sampling.config` (the config),
:mod:`~fullspectrum.sampling.setup` (base mask and budgets),
:mod:`~fullspectrum.sampling.candidates` (one candidate),
:mod:`~fullspectrum.sampling.selection` (per-layer rules),
:mod:`~fullspectrum.sampling.workers` (parallel population),
:mod:`~fullspectrum.sampling.warmup` (PEGS's warm-up),
:mod:`~fullspectrum.sampling.result` (the result, its tables and the names of
its members), :mod:`~fullspectrum.sampling.members` (any member alone: a candidate
regenerated, a mask checkpoint), :mod:`~fullspectrum.sampling.embedding` (the
population's 2-D map, ``embedding.csv``), :mod:`~fullspectrum.sampling.journal`
(the scored candidates of an unfinished sampling, ``scored/``),
:mod:`~fullspectrum.sampling.pags` (``run_pags``: a whole sampling written into a
run) and :mod:`~fullspectrum.sampling.resume` (``resume_pags``). The
``fullspectrum pags`` command (:mod:`fullspectrum.cli.pags`) and the app's PAGS lab page run it.
"""

from fullspectrum.sampling.candidates import (
    CandidateResult,
    PopulationContext,
    candidate_seeds,
    generator_kind,
)
from fullspectrum.sampling.config import SCORE_ORIGINS, SamplingConfig
from fullspectrum.sampling.embedding import (
    EMBEDDING_COLUMNS,
    EMBEDDING_FILE,
    Embedding,
    embed_population,
    embedding_table,
    load_embedding,
    save_embedding,
)
from fullspectrum.sampling.members import (
    STORED_MASKS,
    Candidate,
    regenerate_candidate,
    save_candidate_checkpoint,
)
from fullspectrum.sampling.pags import STORED_STEPS, run_pags, sample
from fullspectrum.sampling.result import (
    ASSEMBLED,
    BASE,
    NAMED_MEMBERS,
    SamplingResult,
    candidate_label,
    candidate_slug,
)
from fullspectrum.sampling.resume import resume_pags
from fullspectrum.sampling.selection import SELECTION_RULES, LayerPoint, LayerWinners, get_rule, select
from fullspectrum.sampling.setup import (
    BASE_MASK_FILE,
    PAGS_MASK_FILE,
    SamplingSetup,
    load_network,
    prepare,
    restore,
    setup_from_run,
)
from fullspectrum.sampling.warmup import warm_up

__all__ = [
    "ASSEMBLED",
    "BASE",
    "BASE_MASK_FILE",
    "EMBEDDING_COLUMNS",
    "EMBEDDING_FILE",
    "NAMED_MEMBERS",
    "PAGS_MASK_FILE",
    "SCORE_ORIGINS",
    "SELECTION_RULES",
    "Candidate",
    "CandidateResult",
    "Embedding",
    "LayerPoint",
    "LayerWinners",
    "PopulationContext",
    "SamplingConfig",
    "SamplingResult",
    "SamplingSetup",
    "candidate_label",
    "candidate_seeds",
    "candidate_slug",
    "embed_population",
    "embedding_table",
    "generator_kind",
    "get_rule",
    "load_embedding",
    "load_network",
    "prepare",
    "regenerate_candidate",
    "restore",
    "resume_pags",
    "save_candidate_checkpoint",
    "save_embedding",
    "STORED_MASKS",
    "STORED_STEPS",
    "run_pags",
    "sample",
    "select",
    "setup_from_run",
    "warm_up",
]
