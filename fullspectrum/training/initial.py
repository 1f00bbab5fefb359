"""Where a training run starts: its data, its resolved config, its initial masks and weights (SPEC §6).

Without a mask file a sparse run draws uniformly random masks with the
layer-wise densities of ``--init`` (uniform, ER or ERK, Evci et al. 2020) from
the run's mask stream, and a dense run keeps every weight. With ``--mask FILE``
(SPEC §8's mask checkpoint, e.g. PAGS/PEGS's ``pags_mask.pt``, FS23) the run
starts from the file's masks *and* the weights they were made for. Either way
the start (ITOP, ICML 2021) is built and checked against the model before the run folder exists,
so a file that does not fit (missing or unknown weights, wrong shapes,
non-finite weights, no kept weight at all) is refused in one line and nothing
is written.

With ``config.sparse_init`` the weights the run starts from, drawn or loaded,
are then rescaled for the fan-in each unit's mask keeps (Evci et al. 2020; see
:mod:`fullspectrum.training.sparse_init`). Left unset it is on for models
without normalisation layers, except when a mask file brings its own weights:
those (a generator's initial weights, PEGS's warmed-up ones, rewound
lottery-ticket ones) are kept exactly as saved unless ``sparse_init=True`` is
given.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fullspectrum.checkpoints.mask_file import MaskCheckpoint
from fullspectrum.data import load_dataset, make_loader
from fullspectrum.errors import MaskError
from fullspectrum.seeds import TRAIN_MASK_STREAM, derived_seed
from fullspectrum.training.config import TrainConfig
from fullspectrum.training.rewire import get_method
from fullspectrum.training.sparse import SparseState, layer_densities, random_masks
from fullspectrum.training.sparse_init import default_sparse_init, rescale_for_masks_


def load_splits(config: TrainConfig):
    """The train/validation/test splits of ``config.data`` (an unknown or missing dataset fails here)."""
    return load_dataset(config.data, data_dir=config.data_dir, split_seed=config.split_seed)


def resolved_config(config: TrainConfig, splits) -> TrainConfig:
    """``config`` with every preset filled in for the iterations per epoch of ``splits``."""
    batch_size = config.batch_size or config.preset.batch_size
    iters = len(make_loader(splits.train, batch_size, shuffle=True, seed=0))
    return config.resolved(iters)


def mask_file_density(path: str, mask_file: MaskCheckpoint) -> float:
    """The density of a run from ``mask_file``: its own kept fraction (a mask keeping nothing is refused)."""
    kept = sum(int(mask.sum()) for mask in mask_file.masks.values())
    if kept == 0:
        raise MaskError(
            f"{path}: the mask file keeps no weights (every mask is all zeros); give one that keeps some"
        )
    return kept / sum(mask.numel() for mask in mask_file.masks.values())


def initial_state(
    config: TrainConfig,
    model: nn.Module,
    weights: dict[str, nn.Parameter],
    mask_file: MaskCheckpoint | None = None,
) -> SparseState:
    """The masks of step 0 for ``model`` (whose maskable ``weights`` are given), checked against it.

    With ``config.mask`` (read as ``mask_file``) the file's weights are loaded into ``model`` too.
    With ``config.sparse_init`` (``None``: its preset for ``model``, see :func:`with_sparse_init`)
    the kept weights are rescaled for each unit's kept fan-in.
    """
    if config.mask is not None:
        if mask_file is None:
            raise MaskError(f"{config.mask}: the mask file was not read")
        load_mask_file_weights(config.mask, mask_file, model, weights, model_name=config.model)
        state = SparseState.from_masks(dict(mask_file.masks))
    elif get_method(config.method).rewires or config.method == "static":
        shapes = {name: tuple(w.shape) for name, w in weights.items()}
        densities = layer_densities(shapes, config.density, config.init)
        generator = torch.Generator().manual_seed(derived_seed(config.seed, TRAIN_MASK_STREAM))
        state = SparseState.from_masks(random_masks(shapes, densities, generator))
    else:
        state = SparseState.dense(weights)
    state.check(weights, source=config.mask or "initial mask")
    if with_sparse_init(config, model, mask_file).sparse_init:
        rescale_for_masks_(weights, state.masks)
    return state


def with_sparse_init(
    config: TrainConfig, model: nn.Module, mask_file: MaskCheckpoint | None = None
) -> TrainConfig:
    """``config`` with ``sparse_init`` resolved: an unset one is on for a sparse run of a model
    without normalisation layers, unless the run starts from the weights of a mask file (the
    weights that file's mask was made for, kept exactly as saved unless asked otherwise)."""
    if config.sparse_init is not None:
        return config
    from_file_weights = config.mask is not None and mask_file is not None and bool(mask_file.state_dict)
    preset = default_sparse_init(model, config.method) and not from_file_weights
    return dataclasses.replace(config, sparse_init=preset)


def load_mask_file_weights(
    path: str,
    mask_file: MaskCheckpoint,
    model: nn.Module,
    weights: dict[str, nn.Parameter],
    *,
    model_name: str,
) -> None:
    """Load the weights ``mask_file`` was made for (e.g. PEGS's warmed-up ones) into ``model``.

    Every maskable weight must be there, nothing unknown may be, and all must be finite.
    """
    for name, tensor in mask_file.state_dict.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            raise MaskError(f"{path}: its state_dict's {name} holds NaN or Inf; train from finite weights")
    if not mask_file.state_dict:
        return
    try:
        result = model.load_state_dict(mask_file.state_dict, strict=False)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise MaskError(f"{path}: its state_dict does not fit model {model_name!r} ({first})") from None
    missing = [name for name in weights if name in result.missing_keys]
    if result.unexpected_keys or missing:
        raise MaskError(
            f"{path}: its state_dict does not fit model {model_name!r} "
            f"(unknown {result.unexpected_keys[:3]}, missing weights {missing[:3]})"
        )
