"""Configurations of an IMP lineage and of an Early-Bird search (SPEC §9), stored in their folder's ``run.json``.

Both wrap the :class:`~fullspectrum.training.TrainConfig` every training of the
search shares (model, data, epochs, seed...): the method fixes the rest, so its
``method``, ``init``, ``mask`` and ``sparse_init`` are set per training (dense
first; then static training from a mask file whose weights are kept exactly as
saved), and ``density`` is the target. The stored form is flat, the training
options beside the search's own, so ``fullspectrum runs`` lists model, data and
density like any run.

>>> config = LotteryConfig(TrainConfig(epochs=2), density=0.1, rewind_iters=5)
>>> LotteryConfig.from_dict(config.as_dict()) == config, config.as_dict()["method"]
(True, 'lottery')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fullspectrum.errors import FullSpectrumError
from fullspectrum.tickets.early_bird import THRESHOLD, WINDOW
from fullspectrum.tickets.schedule import PRUNE_FRACTION
from fullspectrum.training import TrainConfig

SET_PER_TRAINING = ("method", "init", "mask", "sparse_init", "density")
"""``TrainConfig`` fields a search sets itself for each of its trainings."""


def _check_density(density: float) -> None:
    if not (isinstance(density, int | float) and math.isfinite(density) and 0.0 < density < 1.0):
        raise FullSpectrumError(f"density must be a number in (0, 1) (the fraction kept), got {density!r}")


def _shared_train(train: TrainConfig) -> TrainConfig:
    """``train`` checked, with the fields set per training back at their defaults (so equal searches
    compare equal and the stored form reads back as it was)."""
    if not isinstance(train, TrainConfig):
        raise FullSpectrumError(f"train must be a TrainConfig, got {type(train).__name__}")
    if train.mask is not None:
        raise FullSpectrumError("a ticket search starts from the model's own initialisation; drop the mask")
    if train.sparse_init:
        raise FullSpectrumError("a ticket keeps its weights exactly as found; sparse_init must be off")
    defaults = TrainConfig()
    return dataclasses.replace(train, **{name: getattr(defaults, name) for name in SET_PER_TRAINING})


def _stored(train: TrainConfig, method: str, own: dict) -> dict:
    shared = {key: value for key, value in train.as_dict().items() if key not in SET_PER_TRAINING}
    return {**shared, "method": method, **own}


def _split(values: Mapping, own: tuple[str, ...], method: str) -> tuple[TrainConfig, dict]:
    values = dict(values)
    stored = values.pop("method", method)
    if stored != method:
        raise FullSpectrumError(f"not a {method} config (method {stored!r})")
    mine = {key: values.pop(key) for key in own if key in values}
    return TrainConfig.from_dict(values), mine


@dataclass(frozen=True)
class LotteryConfig:
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020; open_lth)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    """How every level trains (model, data, epochs, lr, seed...)."""
    density: float = 0.01
    """Target fraction of the prunable weights kept at the last level (FS23's 99% sparsity)."""
    rewind_iters: int = 0
    """Iteration ``k`` of the dense run the survivors rewind to (0: the original LTH)."""
    keep_classifier_dense: bool = False
    """Leave the output layer unpruned (open_lth prunes it for ResNets, the default here)."""
    prune_fraction: float = PRUNE_FRACTION
    """Share of the remaining prunable weights each level removes (open_lth: 0.2)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", _shared_train(self.train))
        _check_density(self.density)
        if (
            isinstance(self.rewind_iters, bool)
            or not isinstance(self.rewind_iters, int)
            or self.rewind_iters < 0
        ):
            raise FullSpectrumError(f"rewind_iters must be a whole number >= 0, got {self.rewind_iters!r}")
        if not isinstance(self.keep_classifier_dense, bool):
            raise FullSpectrumError(
                f"keep_classifier_dense must be true or false, got {self.keep_classifier_dense!r}"
            )
        if not 0.0 < self.prune_fraction < 1.0:
            raise FullSpectrumError(f"prune_fraction must be in (0, 1), got {self.prune_fraction}")

    def as_dict(self) -> dict:
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "train"}
        return _stored(self.train, "lottery", own)

    @classmethod
    def from_dict(cls, values: Mapping) -> LotteryConfig:
        own = tuple(f.name for f in dataclasses.fields(cls) if f.name != "train")
        train, mine = _split(values, own, "lottery")
        return cls(train=train, **mine)


@dataclass(frozen=True)
class EarlyBirdConfig:
    """Unstructured Early-Bird tickets (You et al., ICLR 2020) drawn from a dense run."""

    train: TrainConfig = field(default_factory=TrainConfig)
    """How the dense search and the ticket's training run (model, data, epochs, lr, seed...)."""
    density: float = 0.01
    """Fraction of the maskable weights the ticket keeps."""
    window: int = WINDOW
    """Previous epochs each epoch's mask is compared with."""
    threshold: float = THRESHOLD
    """Largest kept-set distance to each of them at which the ticket is drawn."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", _shared_train(self.train))
        _check_density(self.density)
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise FullSpectrumError(f"window must be a whole number >= 1, got {self.window!r}")
        if not 0.0 < self.threshold <= 1.0:
            raise FullSpectrumError(f"threshold must be in (0, 1], got {self.threshold}")

    def as_dict(self) -> dict:
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "train"}
        return _stored(self.train, "earlybird", own)

    @classmethod
    def from_dict(cls, values: Mapping) -> EarlyBirdConfig:
        own = tuple(f.name for f in dataclasses.fields(cls) if f.name != "train")
        train, mine = _split(values, own, "earlybird")
        return cls(train=train, **mine)
