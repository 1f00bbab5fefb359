"""Everything a PAGS / PEGS sampling fixes before drawing candidates (SPEC §5 step 1; FS23).

``prepare(config)`` builds the model at its seeded initialisation (the same
initialisation ``fullspectrum prune`` and ``fullspectrum train`` make for that
seed), warms it up densely for PEGS, makes the base mask with the generator on
its normal data budget (10 × classes examples, SPEC §6b; the same call, loader
and seed as ``fullspectrum prune``) and reads off the per-layer budgets
``k_j``. ``load_network(config)`` is its first part alone (the dataset and the
model, where bad names and missing data files show up), so a run folder is made
only once it has succeeded. ``restore(config, base_mask_file)`` rebuilds the
same setup from ``base_mask.pt``, which a run writes as soon as the base mask
exists, without warming up or pruning again: a resumed sampling and
``setup_from_run(run_dir)`` (any candidate regenerated later) start from it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.data import load_dataset, make_loader
from fullspectrum.devices import resolve_device
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import build_model
from fullspectrum.pruning import LayerCollapseWarning, compute_scores, generate_masks
from fullspectrum.runs import RunStore
from fullspectrum.sampling.candidates import (
    PopulationContext,
    candidate_batches,
    candidate_seeds,
    generator_kind,
    layer_table,
)
from fullspectrum.sampling.config import SamplingConfig
from fullspectrum.sampling.warmup import warm_up
from fullspectrum.spectrum import full_spectrum_vector

BASE_MASK_FILE = "base_mask.pt"
PAGS_MASK_FILE = "pags_mask.pt"


@dataclass(frozen=True)
class SamplingSetup:
    """A prepared sampling: data, weights, base mask, budgets and what every candidate shares."""

    config: SamplingConfig
    """The resolved config (``batch_size`` and ``warmup_lr`` filled in)."""
    splits: object
    """The dataset's ``DatasetSplits`` (candidates draw minibatches from ``splits.train``)."""
    state_dict: dict[str, Tensor]
    """The weights candidates are drawn at (initial, or warmed up for PEGS), on the CPU."""
    base_masks: dict[str, Tensor]
    """The base mask (parameter name -> bool CPU tensor), in layer order."""
    base_layers: list[dict]
    """``layer_spectrum`` fields, ``score`` and ``param`` of every base-mask layer."""
    context: PopulationContext
    """What the candidate evaluators need (budgets ``k_j``, weights, reference vectors)."""
    warmup_loss: float = float("nan")
    """Last warm-up minibatch loss (NaN for PAGS or a setup rebuilt from a run)."""
    base_meta: dict | None = None
    """The base ``MaskResult.meta()`` (generator, examples used, options), when just generated."""

    @property
    def counts(self) -> dict[str, int]:
        """Per-layer budgets ``k_j`` (parameter name -> kept weights)."""
        return self.context.counts

    def batches(self, index: int) -> list | None:
        """Candidate ``index``'s minibatches (``None`` for a data-free generator), from its seed alone."""
        config = self.config
        if generator_kind(config.generator) != "data":
            return None
        seed = candidate_seeds(config.seed, index).data
        return candidate_batches(self.splits.train, config.batch_size, config.iters_per_candidate, seed)


class Network(NamedTuple):
    """The dataset and the model at its seeded initialisation, before any sampling work."""

    splits: object
    """The dataset's ``DatasetSplits``."""
    model: torch.nn.Module
    """The model built for it, at the initialisation seeded by ``config.seed``, on the CPU."""


def load_network(config: SamplingConfig) -> Network:
    """Load the dataset and build the model; an unknown name or a missing data folder fails here.

    A run is created only after this has succeeded, so a bad ``model`` or
    ``data`` leaves no run folder behind.
    """
    splits = load_dataset(
        config.data, data_dir=config.data_dir, split_seed=config.split_seed, **dict(config.data_options)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the initialisation ``prune`` and ``train`` make for this seed
        model = build_model(
            config.model, splits.num_classes, splits.input_shape, **dict(config.model_options)
        )
    return Network(splits, model)


def prepare(
    config: SamplingConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    network: Network | None = None,
) -> SamplingSetup:
    """Initialise (and for PEGS warm up) the model, make the base mask and its budgets.

    ``progress(done, total)`` follows the warm-up iterations. ``network`` is
    ``load_network(config)`` when the caller has it already (it is warmed up in place).
    """
    config = config.resolved()
    device = resolve_device(config.device)
    splits, model = network if network is not None else load_network(config)
    model.to(device)
    warmup_loss = warm_up(
        model,
        splits,
        config.warmup_iters,
        batch_size=config.batch_size,
        lr=config.warmup_lr,
        seed=config.seed,
        progress=progress,
    )
    state_dict = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    loader = make_loader(splits.train, config.batch_size, shuffle=True, seed=config.seed)  # as ``prune``
    options = dict(config.generator_options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerCollapseWarning)  # meta and the summary report it
        base = generate_masks(
            model, config.generator, config.density, data=loader, seed=config.seed, **options
        )
    model.load_state_dict(state_dict)  # exactly the weights and buffers ``restore`` starts from
    fixed = _fixed_scores(config, model, splits)
    masks = {name: mask.detach().cpu() for name, mask in base.masks.items()}
    return _finish(config, splits, state_dict, masks, str(device), fixed, warmup_loss, base.meta())


def setup_from_run(run_dir: str | Path, *, device: str = "cpu") -> SamplingSetup:
    """The setup of a PAGS run rebuilt from ``run.json`` and ``base_mask.pt`` (no warm-up, no pruning)."""
    store = RunStore.open(run_dir)
    info = store.info
    if info.get("kind") != "pags":
        raise FullSpectrumError(f"{run_dir}: a {info.get('kind')!r} run, not a PAGS run")
    config = SamplingConfig.from_dict({**info["config"], "device": device})
    return restore(config, store.artifact_path(BASE_MASK_FILE))


def restore(
    config: SamplingConfig, base_mask_file: str | Path, *, network: Network | None = None
) -> SamplingSetup:
    """The setup ``prepare(config)`` made, rebuilt from the base mask checkpoint it was saved to.

    The checkpoint holds the base mask and the weights candidates are drawn at
    (PEGS's warmed-up ones), so nothing is warmed up or pruned again; ``network``
    as in :func:`prepare`.
    """
    config = config.resolved()
    device = resolve_device(config.device)
    checkpoint = load_mask_checkpoint(base_mask_file)
    splits, model = network if network is not None else load_network(config)
    model.load_state_dict(checkpoint.state_dict)
    model.to(device)
    fixed = _fixed_scores(config, model, splits)
    return _finish(
        config, splits, checkpoint.state_dict, checkpoint.masks, str(device), fixed, float("nan"), None
    )


def _fixed_scores(config: SamplingConfig, model, splits) -> dict[str, Tensor] | None:
    """The noise-free scores of a deterministic generator (``synflow``, ``magnitude``), else None."""
    if generator_kind(config.generator) != "noisy":
        return None
    loader = make_loader(splits.train, config.batch_size, shuffle=True, seed=config.seed)  # as ``prune``
    options = dict(config.generator_options)
    fixed = compute_scores(model, config.generator, loader, config.seed, density=config.density, **options)
    return {name: score.detach().cpu() for name, score in fixed.items()}


def _finish(config, splits, state_dict, masks, device, fixed, warmup_loss, meta) -> SamplingSetup:
    base_layers = layer_table(masks, state_dict, device=device)  # scores from the origin, as candidates
    reference = None
    if config.score_from == "base":
        reference = {row["param"]: full_spectrum_vector(row) for row in base_layers}
        for row in base_layers:
            row["score"] = 0.0  # the base mask's distance from itself
    context = PopulationContext(
        model=config.model,
        num_classes=splits.num_classes,
        input_shape=tuple(splits.input_shape),
        model_options=dict(config.model_options),
        state_dict=state_dict,
        device=device,
        generator=config.generator,
        density=float(config.density),
        counts={name: int(mask.sum()) for name, mask in masks.items()},
        generator_options=dict(config.generator_options),
        fixed_scores=fixed,
        reference=None if reference is None else {k: np.asarray(v) for k, v in reference.items()},
    )
    return SamplingSetup(
        config=config,
        splits=splits,
        state_dict=state_dict,
        base_masks=masks,
        base_layers=base_layers,
        context=context,
        warmup_loss=warmup_loss,
        base_meta=meta,
    )
