"""Configuration of a training run, with the defaults of ITOP (Liu et al., ICML 2021) and SPEC §6.

Fields left ``None`` are *presets*: they are filled in by :meth:`TrainConfig.resolved`
once the number of iterations per epoch is known, and the resolved config (not
the user's) is what a run directory stores, so every run says exactly how it
was trained.

* CIFAR (ITOP21's README): 250 epochs, batch 128, lr 0.1, ``ΔT`` 1500 for
  ITOP-Rand/SET and 4000 for RigL.
* Offline datasets (``digits``, ``mnist1d``: 10–30 iterations per epoch) and any
  short run: ``ΔT`` and the snapshot interval shrink with the run's length,
  so a default run has at least 20 mask updates and
  20 snapshots: a long-run interval is kept while it fits ``MIN_EVENTS`` times
  into the run, else it becomes ``T // 25``.
* ``sparse_init`` (sparse-aware initialisation, Evci et al. 2020;
  :mod:`fullspectrum.training.sparse_init`): on for sparse runs of models without
  normalisation layers (``mlp``, ``lenet5``, ``conv6``), which otherwise start with a
  vanishing signal (a sparse LeNet-5 stays at chance); off with BatchNorm (ResNets,
  VGG: ITOP21's setting) and for the weights a mask file brings, which are kept as
  saved unless ``sparse_init=True``. Resolved once the model is built
  (:func:`fullspectrum.training.initial.with_sparse_init`); a stored config without
  the key (a run from before the option) reads as ``False``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from fullspectrum.devices import DEVICE_CHOICES
from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.training.rewire import METHODS, get_method
from fullspectrum.training.sparse import INITS

MIN_EVENTS = 20
"""A preset run has at least this many mask updates and snapshots."""
SHORT_RUN_PIECES = 25
"""A run too short for the long-run interval is cut into this many pieces (margin over MIN_EVENTS)."""
SNAPSHOT_DEFAULT = 1500
"""Snapshot interval of long runs: ITOP-Rand's ΔT, so snapshots and mask updates coincide."""


@dataclass(frozen=True)
class DataPreset:
    """Per-dataset defaults for the fields a user may leave ``None``."""

    epochs: int
    """Training epochs."""
    batch_size: int
    """Minibatch size."""
    lr: float
    """Initial learning rate."""


PRESETS: Mapping[str, DataPreset] = {
    "cifar10": DataPreset(epochs=250, batch_size=128, lr=0.1),  # ITOP21's README
    "cifar100": DataPreset(epochs=250, batch_size=128, lr=0.1),  # ITOP21's README
    "digits": DataPreset(epochs=40, batch_size=64, lr=0.05),  # ~20 it/epoch: 800 iterations, seconds on CPU
    "mnist1d": DataPreset(epochs=60, batch_size=128, lr=0.05),  # ~30 it/epoch: 1800 iterations
    "synthetic": DataPreset(epochs=5, batch_size=64, lr=0.05),  # smoke tests and benchmarks
}
FALLBACK_PRESET = DataPreset(epochs=30, batch_size=128, lr=0.05)


def preset_interval(long_run: int, total_steps: int) -> int:
    """``long_run`` if it fits ``MIN_EVENTS`` times into the run, else ``total_steps // 25`` (at least 1)."""
    if total_steps // long_run > MIN_EVENTS:  # updates at ΔT, 2ΔT, ... < T: at least MIN_EVENTS
        return long_run
    return max(1, total_steps // SHORT_RUN_PIECES)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``None`` means "the preset for this dataset and run length"."""

    model: str = "mlp"
    """Architecture name (``fullspectrum.models``); the MLP trains in seconds on a CPU."""
    data: str = "digits"
    """Dataset name (``fullspectrum.data``); digits ships with scikit-learn, no download."""
    method: str = "itop"
    """``dense``, ``static`` (a fixed mask), ``itop`` (random growth, FS23's setting) or ``rigl``."""
    density: float = 0.05
    """Fraction of maskable weights kept; ITOP21's CIFAR setting (FS23 also use 0.01)."""
    init: str = "erk"
    """Initial layer-wise densities: ``uniform``, ``er`` or ``erk`` (ITOP21's default)."""
    sparse_init: bool | None = None
    """Rescale each unit's initial weights by ``sqrt(fan_in / kept fan-in)`` (Evci et al. 2020; see
    ``fullspectrum.training.sparse_init``). Preset: on for models without normalisation layers
    (sparse LeNet/MLP otherwise start with a vanishing signal), off with BatchNorm (ITOP21) and
    for the weights a mask file brings (kept as saved unless this is True)."""
    epochs: int | None = None
    """Training epochs (preset: 250 on CIFAR, fewer offline)."""
    batch_size: int | None = None
    """Minibatch size (preset: 128 on CIFAR)."""
    lr: float | None = None
    """Initial SGD learning rate (preset: 0.1 on CIFAR)."""
    momentum: float = 0.9
    """SGD momentum, as in ITOP21."""
    nesterov: bool = True
    """Nesterov momentum, as in ITOP21."""
    weight_decay: float = 5e-4
    """L2 weight decay, as in ITOP21."""
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    """Fractions of the epochs after which the lr is multiplied by ``lr_gamma`` (ITOP21)."""
    lr_gamma: float = 0.1
    """Learning-rate decay factor at each milestone (ITOP21)."""
    delta_t: int | None = None
    """Iterations between mask updates (preset: 1500 ITOP / 4000 RigL, or T // 25 in short runs)."""
    snapshot_every: int | None = None
    """Iterations between spectral snapshots + checkpoints (preset: 1500, or T // 25 in short runs)."""
    eval_every: int | None = None
    """Iterations between validation evaluations (preset: one epoch)."""
    p_0: float = 0.5
    """Initial prune rate of the cosine schedule (ITOP21)."""
    p_min: float = 0.005
    """Final prune rate of the cosine schedule (ITOP21)."""
    mask: str | None = None
    """SPEC §8 mask checkpoint giving the initial mask and weights (``static``; optional for itop/rigl)."""
    seed: int = 0
    """Seed of weights, masks, data order and growth; a CPU run is bit-reproducible from it."""
    split_seed: int = 0
    """Seed of the train/validation split, kept apart so runs of several seeds share one split."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``."""
    data_dir: str | None = None
    """Where datasets that need files (CIFAR) live."""
    model_options: dict = field(default_factory=dict)
    """Extra keyword arguments of ``build_model`` (e.g. ``{"widths": [256, 128]}`` for the MLP)."""
    record_spectra: bool = True
    """Record per-layer spectra at snapshots; False only to measure their overhead."""
    spectra_worker: bool | None = None
    """Compute snapshot spectra in a worker process beside the loop (None: on CUDA, and on a
    multi-core CPU for fully-connected models; see ``fullspectrum.training.spectra_worker``)."""

    def __post_init__(self) -> None:
        get_method(self.method)
        if self.sparse_init is not None and not isinstance(self.sparse_init, bool):
            raise FullSpectrumError(f"sparse_init must be true, false or unset, got {self.sparse_init!r}")
        if self.init not in INITS:
            raise unknown_name("init", self.init, INITS)
        if self.device not in DEVICE_CHOICES:
            raise unknown_name("device", self.device, DEVICE_CHOICES)
        if not 0.0 < float(self.density) <= 1.0:
            raise FullSpectrumError(
                f"density must be in (0, 1] (fraction of weights kept), got {self.density}"
            )
        if self.method == "dense" and self.mask is not None:
            raise FullSpectrumError("method 'dense' takes no --mask; use 'static' to train a fixed mask")
        for name in ("epochs", "batch_size", "delta_t", "snapshot_every", "eval_every"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise FullSpectrumError(f"{name} must be a positive integer, got {value}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise FullSpectrumError(f"lr must be a finite positive number, got {self.lr}")
        if not 0.0 <= self.p_min <= self.p_0 <= 1.0:
            raise FullSpectrumError(f"need 0 <= p_min <= p_0 <= 1, got p_0={self.p_0}, p_min={self.p_min}")

    @property
    def preset(self) -> DataPreset:
        return PRESETS.get(self.data, FALLBACK_PRESET)

    def resolved(self, iters_per_epoch: int) -> TrainConfig:
        """Every preset filled in for a training set of ``iters_per_epoch`` minibatches."""
        preset = self.preset
        epochs = self.epochs or preset.epochs
        total = epochs * max(1, iters_per_epoch)
        method_delta = METHODS[self.method].default_delta_t or SNAPSHOT_DEFAULT
        return dataclasses.replace(
            self,
            epochs=epochs,
            batch_size=self.batch_size or preset.batch_size,
            lr=self.lr or preset.lr,
            delta_t=self.delta_t or preset_interval(method_delta, total),
            snapshot_every=self.snapshot_every or preset_interval(SNAPSHOT_DEFAULT, total),
            eval_every=self.eval_every or max(1, iters_per_epoch),
        )

    def lr_at(self, epoch: int) -> float:
        """Learning rate during ``epoch`` (0-based): ×``lr_gamma`` after each milestone epoch."""
        if self.lr is None or self.epochs is None:
            raise FullSpectrumError("lr_at needs a resolved config (call resolved() first)")
        passed = sum(epoch >= math.floor(fraction * self.epochs) for fraction in self.lr_milestones)
        return self.lr * self.lr_gamma**passed

    def as_dict(self) -> dict:
        """Plain JSON-able values (what ``run.json['config']`` holds)."""
        values = dataclasses.asdict(self)
        values["lr_milestones"] = list(self.lr_milestones)
        return values

    @classmethod
    def from_dict(cls, values: Mapping) -> TrainConfig:
        """The config of a run directory (unknown keys are refused with their names)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FullSpectrumError(f"training config has unknown keys {unknown}")
        values = dict(values)
        values.setdefault("sparse_init", False)  # recorded before the option existed: trained without it
        if "lr_milestones" in values:
            values["lr_milestones"] = tuple(values["lr_milestones"])
        return cls(**values)
