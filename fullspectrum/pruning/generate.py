"""The mask-generator registry: ``generate_masks`` and ``compute_scores`` (SPEC §6b).

A generator is a scoring rule plus how its scores become a mask: *global*
generators keep the top ``round(d·N)`` scores over all layers (ties: layer
order, then index); *layer-wise* ones (``random``, ``er``, ``erk``) keep a
uniformly random subset of each layer, its size from the layer's density,
rounded so that the total is still exactly ``round(d·N)`` (each layer within
one weight of its density); the one *group* generator, ``nm`` (magnitude N:M,
:mod:`~fullspectrum.pruning.nm`), keeps ``N`` of every ``M`` consecutive input
weights, so its density is ``N/M``. ``compute_scores`` stops before thresholding: PAGS
(SPEC §5) re-thresholds each candidate's scores per layer to a base budget.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
>>> result = generate_masks(net, "erk", 0.25, seed=0)
>>> result.kept, result.total, result.masks["0.weight"].dtype
(48, 192, torch.bool)
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from torch import Tensor, nn

from fullspectrum.errors import MaskError, unknown_name
from fullspectrum.layers import maskable_parameters
from fullspectrum.pruning import scores as rules
from fullspectrum.pruning.budget import check_density, target_count
from fullspectrum.pruning.densities import erk_densities
from fullspectrum.pruning.nm import DEFAULT_NM, check_nm_density, nm_layer_counts, nm_scores
from fullspectrum.pruning.scoring import Progress, ScoringContext, scoring_mode, seeded_rng, take_examples
from fullspectrum.pruning.topk import apportion, top_k_global, top_k_per_layer


class LayerCollapseWarning(UserWarning):
    """A layer was left with no kept weight (layer collapse)."""


def _uniform_density(shapes: Mapping[str, tuple[int, ...]], density: float) -> dict[str, float]:
    return {name: density for name in shapes}


@dataclass(frozen=True)
class MaskGenerator:
    """One registered generator: a scoring rule and how it is thresholded."""

    name: str
    """Registry key."""
    score: Callable[[ScoringContext], dict[str, Tensor]]
    """``ctx -> {parameter name: scores}``, higher = keep."""
    scope: Literal["global", "layer", "group"]
    """``global``: top ``round(d·N)`` over all layers; ``layer``: per-layer counts from ``layer_densities``;
    ``group``: a structured pattern whose scores fix each layer's count (``nm``: density ``N/M``)."""
    uses_data: bool = False
    """Whether it needs minibatches (a budget of examples)."""
    options: Mapping[str, object] = field(default_factory=dict)
    """Accepted options and their defaults."""
    layer_densities: Callable[[Mapping[str, tuple[int, ...]], float], dict[str, float]] | None = None
    """For layer-wise generators: layer shapes and global density -> density per layer."""


# n_examples None: 10 x n_classes (SPEC §6b), "all": every batch given; scoring in eval mode by default
_DATA_OPTIONS = {"n_examples": None, "train_mode": False}

GENERATORS: Mapping[str, MaskGenerator] = types.MappingProxyType(
    {
        "random": MaskGenerator("random", rules.uniform_scores, "layer", layer_densities=_uniform_density),
        "er": MaskGenerator(
            "er", rules.uniform_scores, "layer", layer_densities=partial(erk_densities, kind="er")
        ),
        "erk": MaskGenerator(
            "erk", rules.uniform_scores, "layer", layer_densities=partial(erk_densities, kind="erk")
        ),
        "magnitude": MaskGenerator("magnitude", rules.magnitude_scores, "global"),
        "snip": MaskGenerator("snip", rules.snip_scores, "global", True, _DATA_OPTIONS),
        # 20 rounds: at d = 0.01 each round keeps 79% of the last, close to IMP's 80% per round
        "iter_snip": MaskGenerator(
            "iter_snip", rules.iter_snip_scores, "global", True, {**_DATA_OPTIONS, "rounds": 20}
        ),
        # temperature 200 on the logits: GraSP's published setting
        "grasp": MaskGenerator(
            "grasp", rules.grasp_scores, "global", True, {**_DATA_OPTIONS, "temperature": 200.0}
        ),
        # 100 rounds and float64: SynFlow's published settings; input_shape when no data gives it
        "synflow": MaskGenerator(
            "synflow",
            rules.synflow_scores,
            "global",
            options={"rounds": 100, "float64": True, "input_shape": None},
        ),
        # magnitude N:M (2:4 by default: sparse tensor cores); the density is N/M, not chosen
        "nm": MaskGenerator("nm", nm_scores, "group", options={"nm": DEFAULT_NM}),
    }
)
"""Every mask generator by name (SPEC §6b)."""

GENERATOR_NAMES: tuple[str, ...] = tuple(GENERATORS)
"""Names accepted by ``generate_masks`` / ``compute_scores`` / ``fullspectrum prune --method``."""


@dataclass(frozen=True)
class MaskResult:
    """A generated mask and how it was made."""

    masks: dict[str, Tensor]
    """Parameter name (``layer1.0.conv1.weight``) -> bool mask of the weight's shape and device."""
    method: str
    """Generator name."""
    density: float
    """Requested global density; exactly ``round(density * total)`` weights are kept (``nm``: ``N/M``,
    exact unless a layer had to be left dense)."""
    layer_densities: dict[str, float]
    """Achieved density of every layer."""
    collapsed_layers: tuple[str, ...]
    """Layers left with no kept weight (also warned about with ``LayerCollapseWarning``)."""
    examples_used: int
    """Examples the scores were computed on (0 for data-free generators)."""
    settings: dict[str, object]
    """Seed and every option, defaults filled in."""
    rounds_kept: tuple[int, ...] = ()
    """Iterative generators: weights kept after each round (``round(d^{t/T}·N)``); empty otherwise."""

    @property
    def kept(self) -> int:
        """Kept weights over all layers."""
        return sum(int(mask.sum()) for mask in self.masks.values())

    @property
    def total(self) -> int:
        """Maskable weights over all layers."""
        return sum(mask.numel() for mask in self.masks.values())

    def meta(self) -> dict[str, str | int | float]:
        """Strings and numbers describing the mask, for a SPEC §8 checkpoint's ``meta``."""
        meta: dict[str, str | int | float] = {
            "generator": self.method,
            "density": self.density,
            "kept": self.kept,
            "total": self.total,
            "examples_used": self.examples_used,
            "collapsed_layers": ",".join(self.collapsed_layers),
        }
        for key, value in self.settings.items():
            if value is not None:  # an option left at "automatic" (e.g. the default budget) is omitted
                meta.setdefault(key, value if isinstance(value, (str, int, float)) else str(value))
        return meta


def _resolve_options(generator: MaskGenerator, options: Mapping[str, object]) -> dict[str, object]:
    for key in options:
        if key not in generator.options:
            if not generator.options:
                raise MaskError(f"mask generator {generator.name!r} takes no options, got {key!r}")
            raise unknown_name(f"option of mask generator {generator.name!r}:", key, generator.options)
    return {**generator.options, **options}


def get_generator(method: str) -> MaskGenerator:
    """The registered generator called ``method``, or the unknown-name error listing the valid ones."""
    if method not in GENERATORS:
        raise unknown_name("mask generator", method, GENERATORS)
    return GENERATORS[method]


def _score(
    model: nn.Module,
    method: str,
    density: float | None,
    data: Iterable | None,
    seed: int,
    progress: Progress | None,
    options: Mapping[str, object],
) -> tuple[dict[str, Tensor], ScoringContext]:
    generator = get_generator(method)
    options = _resolve_options(generator, options)
    layers = maskable_parameters(model)
    if not layers:
        raise MaskError(f"model {type(model).__name__} has no Conv/Linear weight to mask")
    device = layers[0].param.device
    batches, input_shape = [], options.get("input_shape")
    with seeded_rng(seed, device), scoring_mode(model, train=bool(options.get("train_mode", False))):
        if generator.uses_data:
            if data is None:
                raise MaskError(f"mask generator {method!r} needs data: pass data=(x, y) minibatches")
            batches, input_shape = take_examples(model, data, options["n_examples"], device)
        elif method == "synflow" and input_shape is None and data is not None:
            first = next(iter(data), None)  # only the shape is read: SynFlow is data-free
            input_shape = None if first is None else tuple(first[0].shape[1:])
        ctx = ScoringContext(
            model=model,
            layers=layers,
            batches=batches,
            seed=seed,
            density=density,
            options=options,
            input_shape=None if input_shape is None else tuple(input_shape),
            progress=progress,
        )
        return generator.score(ctx), ctx


def compute_scores(
    model: nn.Module,
    method: str,
    data: Iterable | None = None,
    seed: int = 0,
    *,
    density: float | None = None,
    progress: Progress | None = None,
    **options,
) -> dict[str, Tensor]:
    """Per-weight scores of a generator (higher = keep), before any thresholding.

    ``density`` is needed only by the iterative generators (``iter_snip``,
    ``synflow``), whose scores are those of their last round (weights SynFlow
    pruned earlier score ``-inf``). For ``random``/``er``/``erk`` the scores
    are i.i.d. uniform numbers. The model is left exactly as it was.
    """
    density = None if density is None else check_density(density)
    return _score(model, method, density, data, seed, progress, options)[0]


def implied_density(method: str, density: float | None, options: Mapping[str, object]) -> float | None:
    """The density a generator will keep: ``density`` itself, or for ``nm`` its ``N/M`` (a given
    ``density`` that disagrees is a MaskError)."""
    if method != "nm":
        return None if density is None else check_density(density)
    pattern = _resolve_options(get_generator(method), options)["nm"]
    return check_nm_density(str(pattern), None if density is None else check_density(density))


def generate_masks(
    model: nn.Module,
    method: str,
    density: float | None,
    *,
    data: Iterable | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    **options,
) -> MaskResult:
    """A mask for every Conv/Linear weight of ``model`` keeping exactly ``round(density·N)`` weights.

    ``data`` yields ``(x, y)`` minibatches (a ``DataLoader`` or a list); the
    data-driven generators use the first ``n_examples`` examples (default
    ``10 × n_classes``; ``"all"``: every batch given). Deterministic for a seed and the same batches; never
    changes the model's weights, gradients, buffers or train/eval mode, nor the
    global RNG. Options per generator: ``GENERATORS[method].options``. ``nm`` keeps ``N/M``
    (``density`` may be None; one that disagrees is refused) in every layer whose input dimension
    is a multiple of ``M`` and leaves the others dense (:mod:`~fullspectrum.pruning.nm`).
    """
    generator = get_generator(method)
    density = implied_density(method, density, options)
    if density is None:
        raise MaskError(f"mask generator {method!r} needs a density")
    scores, ctx = _score(model, method, density, data, seed, progress, options)
    total = sum(score.numel() for score in scores.values())
    kept = target_count(density, total)
    if generator.scope == "global":
        masks = top_k_global(scores, kept)
    elif generator.scope == "group":
        masks = top_k_per_layer(scores, nm_layer_counts(scores))
    else:
        shapes = {name: tuple(score.shape) for name, score in scores.items()}
        layer_density = generator.layer_densities(shapes, density)
        targets = {name: layer_density[name] * math.prod(shape) for name, shape in shapes.items()}
        sizes = {name: math.prod(shape) for name, shape in shapes.items()}
        masks = top_k_per_layer(scores, apportion(targets, sizes, kept))
    collapsed = tuple(name for name, mask in masks.items() if not bool(mask.any()))
    if collapsed:
        warnings.warn(
            f"layer collapse: {method} at density {density} keeps no weight in {', '.join(collapsed)}",
            LayerCollapseWarning,
            stacklevel=2,
        )
    return MaskResult(
        masks=masks,
        method=method,
        density=density,
        layer_densities={name: float(mask.sum()) / mask.numel() for name, mask in masks.items()},
        collapsed_layers=collapsed,
        examples_used=sum(len(x) for x, _ in ctx.batches),
        settings={"seed": seed, **ctx.options},
        rounds_kept=tuple(ctx.rounds_kept),
    )
