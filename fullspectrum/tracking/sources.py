"""Where a tracked loop's masks come from: a dict of tensors, a callable, or the model itself.

A loop this package does not drive keeps its masks its own way. Three forms cover the
common ones (sparselearning's ``Masking.masks`` dict, a RigL/SET scheduler object, a
model pruned with ``torch.nn.utils.prune``):

* a **dict** ``{name: mask}``, read at each snapshot; the loop may change its tensors in
  place or replace its entries;
* a **callable** returning such a dict, called at each snapshot (dynamic sparse training
  changes its masks, ITOP21/RigL);
* **nothing**: each layer's ``weight_mask`` buffer where ``torch.nn.utils.prune`` put one,
  else the non-zeros of its weight.

Names may be parameter names (``layer1.0.conv1.weight``), module paths (``layer1.0.conv1``)
or either with a ``module.`` prefix; the layers are those of SPEC §1
(:func:`fullspectrum.layers.find_layers`), a given dict or callable tracks only the layers it
names. Masks and weights are handed on in *analysis* space: one entry per analysed layer,
keyed by :func:`~fullspectrum.layers.parameter_name` of its layer name, so a fused q/k/v
projection is three ``(d, d)`` layers and an input-major weight (HF ``Conv1D``) is
transposed, as everywhere else.

Between snapshots :meth:`MaskSource.fingerprint` tells cheaply (tensor identities and
in-place version counters, no data read) whether the masks may have changed, so a
mask update is recorded at the step it happens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fullspectrum.errors import MaskError
from fullspectrum.layers import LayerParameter, find_layers, layer_views, parameter_name
from fullspectrum.layers.names import strip_wrappers, weight_key

MasksArgument = Mapping[str, object] | Callable[[], Mapping[str, object]] | None
"""What ``Tracker(masks=...)`` takes."""
_SHOWN = 5  # layer names listed in an error


@dataclass(frozen=True)
class _Tracked:
    """One tracked weight of the model: its key (parameter name) and how the rule found it."""

    key: str
    entry: LayerParameter

    def weight(self) -> torch.Tensor:
        return self.entry.param  # ``weight_orig`` under torch.nn.utils.prune

    def prune_mask(self) -> torch.Tensor | None:
        return self.entry.module._buffers.get(f"{self.entry.attribute}_mask")


class MaskSource:
    """The masks of a model's tracked layers, read in one of the three forms."""

    def __init__(self, model: nn.Module, masks: MasksArgument) -> None:
        if not isinstance(model, nn.Module):
            raise MaskError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        found, _ = find_layers(model)
        layers = {weight_key(strip_wrappers(entry.name)): entry for entry in found}
        if not layers:
            raise MaskError(f"model {type(model).__name__}: no Conv/Linear layer to track (SPEC §1)")
        self._layers = layers
        self._masks = masks
        if masks is None:
            self.form = "prune buffers" if any(entry.pruned for entry in found) else "weights"
            keys = list(layers)
        elif callable(masks):
            self.form = "callable"
            keys = None  # the first call names them
        elif isinstance(masks, Mapping):
            self.form = "dict"
            keys = self._keys_of(masks)
        else:
            raise MaskError(
                f"masks: expected a dict of mask tensors, a callable returning one, or None; "
                f"got {type(masks).__name__}"
            )
        self._tracked: list[_Tracked] | None = None if keys is None else self._track(keys)
        self._given: dict[str, object] = {}  # key -> the tensor last read (callable, dict)

    # -- which layers ------------------------------------------------------------------------------------
    def _keys_of(self, masks: Mapping[str, object]) -> dict[str, str]:
        """Given name -> the parameter name of the model's layer it names (a bad name: MaskError)."""
        if not masks:
            raise MaskError("masks: the dict is empty; give one mask per tracked layer, or masks=None")
        keys = {}
        for name in masks:
            key = weight_key(str(name))
            if key not in self._layers:
                shown = ", ".join(list(self._layers)[:_SHOWN]) + (
                    " ..." if len(self._layers) > _SHOWN else ""
                )
                raise MaskError(f"masks: {name!r} is not a layer of the model (its layers: {shown})")
            if key in keys.values():
                raise MaskError(f"masks: {name!r} names the layer {key} a second time")
            keys[name] = key
        return keys

    def _track(self, keys) -> list[_Tracked]:
        """The tracked weights, in the model's module order."""
        wanted = set(keys.values() if isinstance(keys, dict) else keys)
        return [_Tracked(key, entry) for key, entry in self._layers.items() if key in wanted]

    # -- reading -----------------------------------------------------------------------------------------
    def _raw(self) -> dict[str, object]:
        """Parameter name -> the mask as given (a tensor, an array, or for ``weights`` None)."""
        if self._masks is None:
            if self._tracked is None:  # pragma: no cover - set in __init__
                raise AssertionError
            return {t.key: t.prune_mask() for t in self._tracked}
        given = self._masks() if callable(self._masks) else self._masks
        if not isinstance(given, Mapping):
            raise MaskError(
                f"masks callable: returned {type(given).__name__}, expected a dict of mask tensors"
            )
        keys = self._keys_of(given)
        if self._tracked is None:
            self._tracked = self._track(keys)
        elif set(keys.values()) != {t.key for t in self._tracked}:
            before = {t.key for t in self._tracked}
            missing, extra = sorted(before - set(keys.values())), sorted(set(keys.values()) - before)
            raise MaskError(
                f"masks: the tracked layers changed (missing {missing[:3]}, new {extra[:3]}); "
                "give the same layers every time"
            )
        return {keys[name]: mask for name, mask in given.items()}

    def read(self) -> dict[str, torch.Tensor]:
        """Every tracked layer's bool mask in analysis space (a fresh copy, on the weight's device)."""
        raw = self._raw()
        self._given = raw
        out: dict[str, torch.Tensor] = {}
        for tracked in self._tracked:
            weight = tracked.weight()
            mask = raw[tracked.key]
            mask = weight.detach() != 0 if mask is None else _as_mask(tracked.key, mask, weight)
            out.update(self._views(tracked, mask.clone()))
        return out

    def weights(self) -> dict[str, torch.Tensor]:
        """Every tracked layer's weight in analysis space (views of the parameters, not copies)."""
        out: dict[str, torch.Tensor] = {}
        for tracked in self._tracked:
            out.update(self._views(tracked, tracked.weight().detach()))
        return out

    @staticmethod
    def _views(tracked: _Tracked, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        entry = tracked.entry
        views = layer_views(tracked.key, tensor, fused=entry.fused, input_major=entry.input_major)
        return [(parameter_name(layer), view) for layer, view in views]

    def fingerprint(self) -> tuple | None:
        """A cheap token that changes when a mask may have (None: the masks are the weights' non-zeros,
        which every optimiser step moves, so only a snapshot can tell)."""
        if self.form == "weights" or self._tracked is None:
            return None
        if self.form == "dict":
            current = [self._masks.get(name) for name in self._masks]  # entries may be replaced
        elif self.form == "prune buffers":
            current = [t.prune_mask() for t in self._tracked]
        else:  # a callable's tensors of its last call: in-place updates show, new tensors at the next snapshot
            current = list(self._given.values())
        return tuple(_version(tensor) for tensor in current)

    @property
    def keys(self) -> list[str]:
        """Parameter names of the tracked weights (known once the masks were read)."""
        return [t.key for t in self._tracked or ()]


def _version(tensor) -> tuple[int, int]:
    """Identity and in-place version of a tensor (-1 where torch keeps none: inference tensors)."""
    if not isinstance(tensor, torch.Tensor):
        return id(tensor), -1
    try:
        return id(tensor), tensor._version
    except RuntimeError:
        return id(tensor), -1


def _as_mask(key: str, mask, weight: torch.Tensor) -> torch.Tensor:
    """A given mask as a bool tensor on the weight's device, checked against the weight."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor):
        raise MaskError(f"mask of {key}: expected a tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(weight.shape):
        raise MaskError(f"mask of {key}: shape {tuple(mask.shape)}, the weight's is {tuple(weight.shape)}")
    mask = mask.detach()
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise MaskError(f"mask of {key}: values other than 0 and 1 (dtype {mask.dtype})")
        mask = mask != 0
    return mask.to(weight.device)
