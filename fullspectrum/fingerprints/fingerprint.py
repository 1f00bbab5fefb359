"""A generator's graphon fingerprint: the mean estimate over seeds, per layer (G25, SPEC §7b).

G25 call the graphon a pruning method's masks converge to its *fingerprint*: constant for
Random, smooth and non-uniform for SNIP/GraSP, blocky for SynFlow. At a finite width one
mask's estimate carries sampling noise, so the fingerprint here is the block-wise mean of
the estimates of masks drawn with several seeds, each at resolution ``K`` (``K = 64`` is
this project's default, not G25's: they state none).

``model`` is a network or a factory ``seed -> network``: with a factory every seed draws
fresh initial weights (what a method's masks vary over in G25), with a network only the
generator's own randomness varies (a data-driven or magnitude mask of fixed weights is
then the same for every seed).

The generator draws from ``mask_seed(seed)`` (the trainer's initial-mask stream,
:data:`fullspectrum.seeds.TRAIN_MASK_STREAM`), never from ``seed`` itself: a factory that
seeds torch with ``seed`` initialises the weights from the same uniform stream that a
``random``/``er``/``erk`` generator seeded with ``seed`` draws its scores from, and the
"random" mask would keep exactly the most positive first-layer weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fullspectrum.data import load_dataset
from fullspectrum.errors import MaskError
from fullspectrum.fingerprints.estimates import DEFAULT_K, LayerGraphons, layer_graphons
from fullspectrum.pruning import LayerCollapseWarning, generate_masks
from fullspectrum.seeds import TRAIN_MASK_STREAM, derived_seed

ModelSource = nn.Module | Callable[[int], nn.Module]
"""A network, or a factory that builds one (fresh initial weights) for a seed."""


@dataclass(frozen=True)
class Fingerprint:
    """A generator's mean graphon estimate over seeds, per layer."""

    generator: str
    """Mask generator name (:data:`fullspectrum.pruning.GENERATOR_NAMES`)."""
    density: float
    """Global density the masks were drawn at."""
    seeds: tuple[int, ...]
    """The seeds whose estimates are averaged."""
    K: int
    """Resolution: at most ``K`` blocks per side."""
    layers: tuple[str, ...]
    """Layer names, in the model's order."""
    mean: dict[str, np.ndarray]
    """Per layer: the block-wise mean of the seeds' estimates (the fingerprint)."""
    std: dict[str, np.ndarray]
    """Per layer: the block-wise standard deviation over seeds (``ddof=1``; zeros for one seed)."""
    layer_densities: dict[str, float]
    """Per layer: the mask density, averaged over seeds."""
    per_seed: tuple[LayerGraphons, ...]
    """Each seed's estimates, in ``seeds`` order."""

    def as_dict(self) -> dict:
        """Plain JSON-able values (the per-seed estimates left out: see ``per_seed``)."""
        return {
            "generator": self.generator,
            "density": self.density,
            "seeds": list(self.seeds),
            "K": self.K,
            "layers": {
                name: {
                    "mean": self.mean[name].tolist(),
                    "std": self.std[name].tolist(),
                    "density": self.layer_densities[name],
                }
                for name in self.layers
            },
        }


def mean_estimates(estimates: Sequence[LayerGraphons]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Block-wise mean and standard deviation (``ddof=1``) of several estimates of the same layers."""
    if not estimates:
        raise MaskError("no estimates to average")
    layers = estimates[0].layers
    mean, std = {}, {}
    for name in layers:
        shapes = {e.values(name).shape for e in estimates}
        if len(shapes) != 1:
            raise MaskError(f"layer {name!r} has estimates of different shapes {sorted(shapes)}; use one K")
        stack = np.stack([e.values(name) for e in estimates])  # (seeds, K_out, K_in)
        mean[name] = stack.mean(axis=0)
        std[name] = stack.std(axis=0, ddof=1) if len(estimates) > 1 else np.zeros_like(stack[0])
    return mean, std


def mask_seed(seed: int) -> int:
    """The generator's seed for study seed ``seed``: a stream apart from the one that may initialise the weights."""
    return derived_seed(seed, TRAIN_MASK_STREAM)


def draw_masks(
    generator: str, model: ModelSource, data: Iterable | None, density: float, seed: int, **options
) -> dict[str, torch.Tensor]:
    """One seed's masks from ``generator`` (seeded ``mask_seed(seed)``) on ``model`` (built for ``seed`` if a factory)."""
    net = model(seed) if callable(model) and not isinstance(model, nn.Module) else model
    with warnings.catch_warnings():
        # a collapsed layer is part of what a fingerprint shows (an all-zero estimate)
        warnings.simplefilter("ignore", LayerCollapseWarning)
        return generate_masks(net, generator, density, data=data, seed=mask_seed(seed), **options).masks


def draw_estimates(
    generator: str,
    model: ModelSource,
    data: Iterable | None,
    density: float,
    seed: int,
    K: int = DEFAULT_K,
    **options,
) -> LayerGraphons:
    """One seed's masks (:func:`draw_masks`) estimated at ``K``."""
    return layer_graphons(draw_masks(generator, model, data, density, seed, **options), K=K)


def generator_fingerprint(
    generator: str,
    model: ModelSource,
    data: Iterable | None,
    density: float,
    seeds: Sequence[int] = (0, 1, 2),
    K: int = DEFAULT_K,
    **options,
) -> Fingerprint:
    """The fingerprint of ``generator``: the mean of its masks' graphon estimates over ``seeds``, per layer.

    ``data`` yields ``(x, y)`` minibatches for the data-driven generators (SNIP, GraSP, ...;
    :func:`dataset_batch` gives one from a built-in dataset), ``None`` for the others.
    ``K = 64`` is this project's default resolution, not G25's (they state none).

    Example:
        >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        >>> fp = generator_fingerprint("random", net, None, 0.5, seeds=(0, 1), K=4)
        >>> fp.mean["0.weight"].shape, fp.layer_densities["0.weight"]
        ((4, 4), 0.5)
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise MaskError("a fingerprint needs at least one seed")
    estimates = tuple(draw_estimates(generator, model, data, density, s, K, **options) for s in seeds)
    mean, std = mean_estimates(estimates)
    layers = estimates[0].layers
    return Fingerprint(
        generator=generator,
        density=float(density),
        seeds=seeds,
        K=int(K),
        layers=layers,
        mean=mean,
        std=std,
        layer_densities={name: float(np.mean([e.densities[name] for e in estimates])) for name in layers},
        per_seed=estimates,
    )


def dataset_batch(name: str = "digits", examples: int = 100, *, flatten: bool = True) -> list[tuple]:
    """One ``(x, y)`` minibatch of the first ``examples`` training examples of a built-in dataset.

    What the data-driven generators score on (SNIP, GraSP: 10 × classes examples by default);
    ``flatten`` for the MLP.
    """
    splits = load_dataset(name, flatten=flatten)
    x, y = splits.split("train").tensors(examples)
    return [(x.to(torch.float32), y)]
