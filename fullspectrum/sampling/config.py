"""The configuration of a PAGS / PEGS sampling (SPEC §5; Hoang et al., NeurIPS 2023, "FS23").

``SamplingConfig`` says which network is pruned (model, data, initialisation
seed), which generator makes the base mask and the candidates, how many
candidates are drawn and how a layer is chosen among them. ``warmup_iters = 0``
is PAGS (candidates at the initialisation); ``> 0`` is PEGS (candidates after
that many dense SGD iterations). The config is what a run directory stores in
``run.json["config"]``, so a sampling can be repeated (or one candidate
regenerated) from its run alone.

>>> config = SamplingConfig(generator="snip", density=0.1, population=4)
>>> config.method, SamplingConfig.from_dict(config.as_dict()) == config
('pags', True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fullspectrum.devices import DEVICE_CHOICES
from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.pruning import GENERATORS
from fullspectrum.sampling.selection import SELECTION_RULES
from fullspectrum.training.config import FALLBACK_PRESET, PRESETS

SEED_MAX = 2**63 - 1
"""Largest seed: NumPy's ``SeedSequence`` takes any integer >= 0, torch's generators up to 2**64 - 1,
and SQLite stores signed 64-bit integers."""
BACKENDS = ("local", "ray")
"""Where candidates are scored (``sampling.workers``): this machine's processes or Ray tasks."""
SCORE_ORIGINS = ("origin", "base")
"""What a layer's score ``||u - u_ref||`` is measured from: the origin (FS23) or the base mask's ``u``."""


@dataclass(frozen=True)
class SamplingConfig:
    """One PAGS (``warmup_iters == 0``) or PEGS (``> 0``) sampling."""

    model: str = "mlp"
    """Architecture name (``fullspectrum.models``); the MLP samples in seconds on a CPU."""
    data: str = "digits"
    """Dataset name (``fullspectrum.data``); digits ships with scikit-learn, no download."""
    generator: str = "snip"
    """Mask generator of the base mask and the candidates (SPEC §6b); SNIP is FS23's main generator."""
    density: float = 0.01
    """Fraction of maskable weights kept; FS23's headline setting (99% sparsity)."""
    population: int = 100
    """Candidates ``N`` drawn; FS23 sample 100 (each costs a forward/backward pass or two)."""
    iters_per_candidate: int = 2
    """Minibatches each data-driven candidate is scored on (FS23: 2 iterations)."""
    warmup_iters: int = 0
    """Dense SGD iterations before sampling: 0 = PAGS, > 0 = PEGS (FS23: 100 or 500)."""
    rule: str = "fs23"
    """Per-layer selection rule: ``fs23`` (Δr_imdb and ||u|| both not worse) or ``max-norm``."""
    score_from: str = "origin"
    """Score a layer by ``||u||`` (``origin``, FS23) or by its distance from the base mask's ``u`` (``base``)."""
    seed: int = 0
    """Seeds the initialisation, the base mask, the warm-up and (with the index) every candidate."""
    split_seed: int = 0
    """Seed of the train/validation split, kept apart so samplings of several seeds share one split."""
    batch_size: int | None = None
    """Minibatch size of candidates and warm-up; ``None``: the dataset's training preset (128 on CIFAR)."""
    warmup_lr: float | None = None
    """Warm-up SGD learning rate; ``None``: the dataset's training preset (0.1 on CIFAR, ITOP21)."""
    workers: int = 1
    """Worker processes generating and scoring candidates; the result is identical for any number."""
    backend: str = "local"
    """Where candidates are scored: ``local`` (``workers`` processes) or ``ray`` (Ray tasks, on the
    session's cluster or a local Ray); the result is identical on both."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``."""
    data_dir: str | None = None
    """Where datasets that need files (CIFAR) live."""
    model_options: Mapping = field(default_factory=dict)
    """Extra keyword arguments of ``build_model`` (e.g. ``{"widths": [256, 128]}`` for the MLP)."""
    data_options: Mapping = field(default_factory=dict)
    """Extra keyword arguments of ``load_dataset`` (e.g. ``{"shape": [3, 32, 32]}`` for synthetic)."""
    generator_options: Mapping = field(default_factory=dict)
    """Options of the generator (``GENERATORS[g].options``), e.g. ``{"rounds": 10}`` for SynFlow."""

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise unknown_name("mask generator", self.generator, GENERATORS)
        if self.rule not in SELECTION_RULES:
            raise unknown_name("selection rule", self.rule, SELECTION_RULES)
        if self.score_from not in SCORE_ORIGINS:
            raise unknown_name("score origin", self.score_from, SCORE_ORIGINS)
        if self.backend not in BACKENDS:
            raise unknown_name("backend", self.backend, BACKENDS)
        if self.device not in DEVICE_CHOICES:
            raise unknown_name("device", self.device, DEVICE_CHOICES)
        if not isinstance(self.density, int | float) or not 0.0 < float(self.density) <= 1.0:
            raise FullSpectrumError(
                f"density must be in (0, 1] (fraction of weights kept), got {self.density}"
            )
        _positive_int("population", self.population)
        _positive_int("iters_per_candidate", self.iters_per_candidate)
        _positive_int("workers", self.workers)
        _positive_int("warmup_iters", self.warmup_iters, allow_zero=True)
        if self.batch_size is not None:
            _positive_int("batch_size", self.batch_size)
        if self.warmup_lr is not None and not (
            isinstance(self.warmup_lr, int | float) and math.isfinite(self.warmup_lr) and self.warmup_lr > 0
        ):
            raise FullSpectrumError(f"warmup_lr must be a finite number > 0, got {self.warmup_lr}")
        for name in ("seed", "split_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
                raise FullSpectrumError(f"{name} must be a whole number from 0 to {SEED_MAX}, got {value!r}")
        options = GENERATORS[self.generator].options
        for key in self.generator_options:
            if key not in options or key == "n_examples":  # candidates use exactly their minibatches
                valid = [name for name in options if name != "n_examples"] or ["none"]
                raise unknown_name(f"option of mask generator {self.generator!r}:", key, valid)

    def resolved(self) -> SamplingConfig:
        """``batch_size`` and ``warmup_lr`` filled in from the dataset's training preset (SPEC §6)."""
        preset = PRESETS.get(self.data, FALLBACK_PRESET)
        return dataclasses.replace(
            self, batch_size=self.batch_size or preset.batch_size, warmup_lr=self.warmup_lr or preset.lr
        )

    @property
    def method(self) -> str:
        """``pags`` (sampling at initialisation) or ``pegs`` (after a dense warm-up)."""
        return "pegs" if self.warmup_iters > 0 else "pags"

    def as_dict(self) -> dict:
        """Plain JSON-able values (what ``run.json['config']`` holds), plus the derived ``method``."""
        values = dataclasses.asdict(self)
        for key in ("model_options", "data_options", "generator_options"):
            values[key] = {name: _plain(value) for name, value in values[key].items()}
        return {**values, "method": self.method}

    @classmethod
    def from_dict(cls, values: Mapping) -> SamplingConfig:
        """The config of a run directory (unknown keys are refused with their names)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in values.items() if key != "method"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FullSpectrumError(f"sampling config has unknown keys {unknown}")
        return cls(**values)


def _positive_int(name: str, value, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a non-negative" if allow_zero else "a positive"
        raise FullSpectrumError(f"{name} must be {kind} integer, got {value!r}")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
