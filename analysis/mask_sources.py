"""Where the masks of a comparison or an inspection come from: a run snapshot, a PAGS candidate, an upload.

A *mask source* is a small hashable tuple, so a caller can cache on it:

* ``("run", path, step)``: the masks a run stored at ``step``, with the weights
  that snapshot kept (a training run keeps them at its first and last
  snapshots), else the weights its masks were made for (a PAGS run's
  ``base_mask.pt``), else none;
* ``("candidate", path, index)``: member ``index`` of a PAGS run's population
  (FS23 §5). The base mask (``BASE``) and the assembled mask (``ASSEMBLED``)
  are read from the run's snapshots; a drawn candidate is regenerated from the
  run's seed and its index (:func:`fullspectrum.sampling.regenerate_candidate`).
  All carry the weights the population was sampled at;
* ``("upload", path)``: a checkpoint file, read with
  :func:`fullspectrum.checkpoints.load_sparse_checkpoint` (tensors only: pickled
  code never runs), with its weights where it has them.

:func:`load_mask_source` resolves any of them into :class:`SourceMasks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from fullspectrum.checkpoints import load_sparse_checkpoint
from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.layers.names import layer_name, parameter_name
from fullspectrum.runs import RunStore
from fullspectrum.sampling import BASE_MASK_FILE, STORED_STEPS, candidate_label, regenerate_candidate

SOURCE_KINDS = ("run", "candidate", "upload")
"""The first element of a mask source tuple."""


@dataclass(frozen=True)
class SourceMasks:
    """The masks of one mask source, the weights that go with them, and how to name them."""

    masks: dict[str, Tensor]
    """Parameter name (``fc1.weight``) -> bool mask, in layer order."""
    weights: dict[str, Tensor]
    """Parameter name -> the weights the masks go with; empty when the source has none."""
    label: str
    """How a reader names the source: ``run_3 @ step 10``, ``b_pags: candidate 1``, ``model.pt``."""

    def layers(self) -> list[str]:
        """Layer names (module paths, ``fc1``), in layer order."""
        return [layer_name(name) for name in self.masks]

    def parameter(self, layer: str) -> str:
        """The parameter name of ``layer``; an unknown layer fails with the list of known ones."""
        by_layer = {layer_name(name): name for name in self.masks}
        if layer not in by_layer:
            raise unknown_name("layer", layer, list(by_layer))
        return by_layer[layer]

    def mask(self, layer: str) -> Tensor:
        """The mask of ``layer``."""
        return self.masks[self.parameter(layer)]

    def weight(self, layer: str) -> Tensor | None:
        """The weights of ``layer``, or None when the source has none for it."""
        return self.weights.get(self.parameter(layer))


def sampled_weights(path: str | Path) -> dict[str, Tensor]:
    """The weights a run's masks were made for, when the run carries them (a PAGS run's
    ``base_mask.pt``), else ``{}``."""
    artifact = RunStore.open(path).artifact_path(BASE_MASK_FILE)
    return dict(load_mask_checkpoint(artifact).state_dict) if artifact.is_file() else {}


def snapshot_masks(path: str | Path, step: int) -> SourceMasks:
    """``("run", path, step)``: a run's masks at ``step``, with the weights of that snapshot or, where
    it kept none, those of :func:`sampled_weights`."""
    store = RunStore.open(path)
    masks = store.load_masks(int(step))
    weights = store.load_weights(int(step)) or sampled_weights(path)
    return SourceMasks(masks, weights, f"{Path(path).name} @ step {step}")


def candidate_masks(path: str | Path, index: int) -> SourceMasks:
    """``("candidate", path, index)``: member ``index`` of a PAGS run's population, with the weights
    the population was sampled at."""
    index = int(index)
    if index in STORED_STEPS:  # the base and the assembled mask are the run's own snapshots
        masks = RunStore.open(path).load_masks(STORED_STEPS[index])
    else:
        masks = regenerate_candidate(path, index).masks
    return SourceMasks(masks, sampled_weights(path), f"{Path(path).name}: {candidate_label(index)}")


def upload_masks(path: str | Path) -> SourceMasks:
    """``("upload", path)``: the masks and weights of a checkpoint file (any format ``analyze`` reads)."""
    checkpoint = load_sparse_checkpoint(path)
    masks = {parameter_name(layer.name): layer.mask for layer in checkpoint.layers}
    weights = {
        parameter_name(layer.name): layer.weight for layer in checkpoint.layers if layer.weight is not None
    }
    return SourceMasks(masks, weights, Path(path).name)


def load_mask_source(source: tuple) -> SourceMasks:
    """The masks of a mask source tuple (see the module docstring)."""
    kind = source[0] if source else None
    if kind not in SOURCE_KINDS:
        raise unknown_name("mask source", str(kind), SOURCE_KINDS)
    expected = 2 if kind == "upload" else 3
    if len(source) != expected:
        raise FullSpectrumError(
            f"mask source {source!r}: a {kind!r} source has {expected} parts, "
            + ("(kind, path)" if kind == "upload" else "(kind, path, step or index)")
        )
    if kind == "run":
        return snapshot_masks(source[1], source[2])
    if kind == "candidate":
        return candidate_masks(source[1], source[2])
    return upload_masks(source[1])
