"""One PAGS / PEGS candidate: its masks and its scored layers (SPEC §5 steps 2–3; FS23).

Candidate ``i`` of a sampling with seed ``s`` depends only on ``(s, i)``: three
independent seeds are drawn from ``np.random.SeedSequence([s, CANDIDATE_STREAM, i])``,
one for the generator's own randomness, one for the minibatches it is scored on
and one for score noise. How the generator is reseeded depends on its kind:

* data-driven (``snip``, ``iter_snip``, ``grasp``): scored on
  ``iters_per_candidate`` random minibatches of the training batch size, drawn
  without replacement by a ``torch.Generator`` with the candidate's data seed;
* ``random`` / ``er`` / ``erk``: i.i.d. uniform scores from the score seed, so
  the top ``k_j`` is a fresh random subset of each layer;
* ``synflow`` / ``magnitude`` (deterministic): the generator's scores times
  ``1 + 1e-3·N(0, 1)`` from the noise seed (the noise-free scores are computed
  once per sampling and shared).

Every candidate layer ``j`` keeps the top ``k_j`` of its own scores (ties by
index), ``k_j`` being the base mask's count, and is scored with the
full-spectrum vector ``u = (delta_r, lambda_w, delta_r_imdb, lambda_imsg)``
(NaN -> 0) of its mask at the sampling's weights: score ``||u - u_ref||``, with
``u_ref = 0`` (FS23) or the base mask's ``u``.

A candidate's layers are scored together (:func:`score_layers`: one
``layer_spectra`` call, which solves them in its own batches by kept weights),
on the sampling's device (a CUDA sampling uses the engine's torch backend
there). Those batches depend only on the base budgets ``k_j``, the same for
every candidate, so a candidate's rows depend only on its masks, whatever the
number of workers or a resume. Candidates are not batched with each other: the
engine's values of a graph may move in the last bits with the batch it is
solved in (its Lanczos start vector is drawn for the whole batch), and the rows
must not depend on how candidates are grouped (nor, on the CPU, where a
candidate's generation costs more than its scoring, would it pay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from fullspectrum.layers.names import layer_name
from fullspectrum.models import build_model
from fullspectrum.pruning import GENERATORS, compute_scores, top_k_per_layer
from fullspectrum.seeds import CandidateSeeds, candidate_seeds
from fullspectrum.spectrum import VECTOR_AXES, full_spectrum_vector, layer_spectra, load_compiled_kernels

NOISE_SCALE = 1e-3
"""Relative score noise of the deterministic generators (SPEC §5)."""


def generator_kind(name: str) -> str:
    """``data`` (scored on minibatches), ``uniform`` (reseeded) or ``noisy`` (deterministic + noise)."""
    generator = GENERATORS[name]
    if generator.uses_data:
        return "data"
    return "uniform" if generator.scope == "layer" else "noisy"


def candidate_batches(
    dataset: Dataset, batch_size: int, iters: int, data_seed: int
) -> list[tuple[Tensor, Tensor]]:
    """``iters`` minibatches of exactly ``batch_size`` examples, drawn without replacement while the
    split lasts (a split smaller than ``iters * batch_size`` is walked through again in a new order)."""
    generator = torch.Generator().manual_seed(data_seed)
    size = len(dataset)
    batches = []
    order = torch.randperm(size, generator=generator)
    for start in range(0, iters * batch_size, batch_size):
        while len(order) < start + batch_size:  # a split smaller than the draw: a fresh pass over it
            order = torch.cat([order, torch.randperm(size, generator=generator)])
        indices = order[start : start + batch_size].tolist()
        if hasattr(dataset, "__getitems__"):  # one gather per batch (ArrayDataset)
            examples = dataset.__getitems__(indices)
        else:
            examples = [dataset[i] for i in indices]
        batches.append(torch.utils.data.default_collate(examples))
    return [(x, y) for x, y in batches]


@dataclass(frozen=True)
class PopulationContext:
    """What every candidate of one sampling shares (sent once to each worker process)."""

    model: str
    """Architecture name, rebuilt with ``build_model`` in each worker."""
    num_classes: int
    """Classes of the dataset (the model's output size)."""
    input_shape: tuple[int, ...]
    """Shape of one example."""
    model_options: dict
    """Extra ``build_model`` options."""
    state_dict: dict[str, Tensor]
    """The weights every candidate is drawn at (initial or warmed up), on the CPU."""
    device: str
    """Where candidates are scored (``cpu``, ``cuda``)."""
    generator: str
    """Generator name."""
    density: float
    """Global density (iterative generators need it for their schedule)."""
    counts: dict[str, int]
    """Kept weights ``k_j`` of every layer (parameter name), from the base mask."""
    generator_options: dict
    """The generator's options."""
    fixed_scores: dict[str, Tensor] | None = None
    """Noise-free scores of a deterministic generator (``synflow``, ``magnitude``), else ``None``."""
    reference: dict[str, np.ndarray] | None = None
    """``u`` of the base mask per layer when scores are distances from it, else ``None`` (origin)."""


@dataclass(frozen=True)
class CandidateResult:
    """One generated and scored candidate."""

    index: int
    """Candidate index ``i``."""
    rows: dict[str, dict[str, float]]
    """Parameter name -> the four components of ``u`` (raw, NaN kept) and ``score``."""
    packed_masks: dict[str, tuple[np.ndarray, tuple[int, ...]]]
    """Parameter name -> ``(np.packbits of the flat mask, shape)``; see ``masks()``."""

    def masks(self, names=None) -> dict[str, Tensor]:
        """The bool masks (all layers, or those in ``names``) as CPU tensors."""
        wanted = self.packed_masks if names is None else names
        return {name: unpack_mask(*self.packed_masks[name]) for name in wanted}


def pack_mask(mask: Tensor) -> tuple[np.ndarray, tuple[int, ...]]:
    """A bool mask as packed bits (8 weights per byte) and its shape."""
    return np.packbits(mask.detach().cpu().numpy().reshape(-1)), tuple(mask.shape)


def unpack_mask(bits: np.ndarray, shape: tuple[int, ...]) -> Tensor:
    """The inverse of ``pack_mask``."""
    count = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(bits, count=count).astype(bool)).reshape(shape)


def score_layer(
    name: str, mask: Tensor, weight: np.ndarray, reference: np.ndarray | None = None, *, device=None
) -> tuple[dict, float]:
    """``layer_spectrum`` of one layer as a dict, and its score ``||u - u_ref||``."""
    return score_layers(
        {name: mask}, {name: weight}, None if reference is None else {name: reference}, device
    )[name]


def score_layers(
    masks: Mapping[str, Tensor],
    weights: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray] | None = None,
    device=None,
) -> dict[str, tuple[dict, float]]:
    """Every layer's ``layer_spectrum`` fields and score ``||u - u_ref||``, solved together.

    ``masks`` (parameter name -> mask, in layer order) and ``weights`` (float64 arrays) are solved in
    one ``layer_spectra`` call on ``device`` (None or ``cpu``: numpy; ``cuda``: the torch backend).
    """
    names = list(masks)
    layers = [(masks[name].detach().cpu().numpy(), weights[name], layer_name(name)) for name in names]
    spectra = layer_spectra(layers, device=device)
    scored = {}
    for name, spectrum in zip(names, spectra, strict=True):
        u = full_spectrum_vector(spectrum)
        score = float(np.linalg.norm(u if reference is None else u - reference[name]))
        scored[name] = (spectrum.as_dict(), score)
    return scored


class CandidateEvaluator:
    """Generates and scores candidates of one sampling; built once per worker process."""

    def __init__(self, context: PopulationContext) -> None:
        self.context = context
        self.kind = generator_kind(context.generator)
        model = build_model(context.model, context.num_classes, context.input_shape, **context.model_options)
        model.load_state_dict(context.state_dict)
        self.model = model.to(torch.device(context.device))
        # (out, in, *kernel) float64 weights for the spectra, in layer order
        self.weights = {name: context.state_dict[name].double().numpy() for name in context.counts}
        load_compiled_kernels()  # a population is many solves: numba's load pays for itself

    def scores(self, index_seeds: CandidateSeeds, batches) -> dict[str, Tensor]:
        """The candidate's per-weight scores (higher = keep)."""
        context = self.context
        if self.kind == "noisy":
            noise = torch.Generator().manual_seed(index_seeds.noise)
            scores = {}
            for name, fixed in context.fixed_scores.items():  # layer order: the noise draws are fixed
                factor = 1.0 + NOISE_SCALE * torch.randn(fixed.shape, generator=noise, dtype=torch.float64)
                scores[name] = fixed.detach().double().cpu() * factor
            return scores
        options = dict(context.generator_options)
        if self.kind == "data":
            options["n_examples"] = "all"  # exactly the candidate's minibatches
        return compute_scores(
            self.model,
            context.generator,
            batches if self.kind == "data" else None,
            index_seeds.score,
            density=context.density,
            **options,
        )

    def masks(self, seed: int, index: int, batches) -> dict[str, Tensor]:
        """Candidate ``index``'s masks: each layer's top ``k_j`` of its own scores (CPU bool tensors)."""
        scores = self.scores(candidate_seeds(seed, index), batches)
        masks = top_k_per_layer({name: scores[name] for name in self.context.counts}, self.context.counts)
        return {name: mask.cpu() for name, mask in masks.items()}

    def evaluate(self, seed: int, index: int, batches) -> CandidateResult:
        """Generate candidate ``index`` and score every layer."""
        masks = self.masks(seed, index, batches)
        scored = score_layers(masks, self.weights, self.context.reference, self.context.device)
        rows = {
            name: {**{key: float(spectrum[key]) for key in VECTOR_AXES}, "score": score}
            for name, (spectrum, score) in scored.items()
        }
        packed = {name: pack_mask(mask) for name, mask in masks.items()}
        return CandidateResult(index=index, rows=rows, packed_masks=packed)


def layer_table(
    masks: Mapping[str, Tensor], weights: Mapping[str, Tensor], reference=None, device=None
) -> list[dict]:
    """Full ``layer_spectrum`` rows (plus ``score`` and ``param``) of a whole mask, in layer order.

    Scored as a candidate is (``score_layers``, on ``device``), so a mask's rows are the same here
    and in a population.
    """
    arrays = {name: weights[name].detach().double().cpu().numpy() for name in masks}
    scored = score_layers(masks, arrays, reference, device)
    return [{**spectrum, "score": score, "param": name} for name, (spectrum, score) in scored.items()]
