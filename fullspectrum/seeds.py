"""Derived random streams: every seeded source of randomness in the project, named once.

A run has one user-facing ``seed``. Everything random inside it (data order, augmentation,
the initial mask, ITOP's random growth, PAGS candidates, PEGS's warm-up) draws from its own
stream, an independent seed derived with NumPy's ``SeedSequence``, so changing one part of
a run (say, the number of loader workers or of PAGS workers) never shifts another part's
random numbers. The stream numbers are part of every run's reproducibility: changing one
changes the results of every run made before.

>>> derived_seed(0, LOADER_ORDER_STREAM) == derived_seed(0, 0)
True
>>> derived_seed(0, 1) != derived_seed(1, 0)
True
>>> candidate_seeds(0, 3) == candidate_seeds(0, 3)
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Streams of a loader's seed (fullspectrum.data.loaders).
LOADER_ORDER_STREAM = 0
"""Shuffling order (and worker base seeds) of a ``DataLoader``."""
LOADER_AUGMENT_STREAM = 1
"""Random crops and flips applied to a loader's batches."""

# Streams of a training run's seed (fullspectrum.training).
TRAIN_NUMPY_STREAM = 0
"""NumPy's global generator during training (code that reaches for ``np.random``)."""
TRAIN_MASK_STREAM = 1
"""The initial random mask (``uniform``/``er``/``erk``)."""
TRAIN_GROWTH_STREAM = 2
"""ITOP-Rand / SET random growth."""
TRAIN_DATA_STREAM = 3
"""The seed handed to the training loader (which derives its own order and augmentation streams)."""

# Streams of a sampling's seed (fullspectrum.sampling).
CANDIDATE_STREAM = 7
"""Middle word of every PAGS candidate's seed sequence (three words, apart from the two-word streams)."""
WARMUP_STREAM = 11
"""PEGS's warm-up: its data order and augmentation."""

# Streams of a mask generator's seed (fullspectrum.pruning).
SCORE_STREAM = 13
"""The i.i.d. uniform scores of ``random``/``er``/``erk``: apart from the seed's own stream, which
``torch.manual_seed(seed)`` hands to the model's initialisation (the same numbers would make the
mask keep exactly the largest first-layer weights)."""


def derived_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for sub-stream ``stream`` of ``seed`` (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


class CandidateSeeds(NamedTuple):
    """The independent seeds of one PAGS candidate."""

    score: int
    """Seed of the generator's own randomness (uniform scores, dropout in train mode)."""
    data: int
    """Seed of the minibatches a data-driven generator scores on."""
    noise: int
    """Seed of the multiplicative score noise of deterministic generators."""


def candidate_seeds(seed: int, index: int) -> CandidateSeeds:
    """The seeds of candidate ``index`` of a sampling seeded ``seed`` (63-bit ints).

    They depend on ``(seed, index)`` only, so a population is the same for any number of workers.
    """
    words = np.random.SeedSequence([int(seed), CANDIDATE_STREAM, int(index)]).generate_state(3, np.uint64)
    return CandidateSeeds(*(int(word >> 1) for word in words))
