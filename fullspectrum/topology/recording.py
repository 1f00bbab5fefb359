"""Effective paths of one model at many masks: traced once, swept per mask (SPEC §7, training snapshots).

A training run asks for the effective paths (Vysogorets & Kempe 2021) of the same network at every
snapshot, with a new mask each time. Tracing (``torch.fx`` and one forward pass for the shapes) is
the same every time, so :class:`PathsRecorder` traces once, keeping a template of the partitions,
readers and conv geometries without any edge, and each call only builds the few blocks that read
through pooling and runs the bit-packed sweeps of
:func:`~fullspectrum.topology.paths.effective_paths`. A model that cannot be traced raises
:class:`~fullspectrum.errors.TopologyError` when the recorder is made, once, so a run can record
the reason and go on without the column.

>>> import torch
>>> from torch import nn
>>> recorder = PathsRecorder(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), (2,))
>>> recorder({"1.weight": torch.tensor([[True, False]])}).effective_weights
3
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fullspectrum.errors import MaskError
from fullspectrum.layers.names import parameter_name, weight_key
from fullspectrum.topology.graph import LayerBlock, UnrolledGraph
from fullspectrum.topology.paths import EffectivePaths, effective_paths
from fullspectrum.topology.patterns import conv_edge_count, conv_incidence, linear_incidence
from fullspectrum.topology.unrolled import trace_graph


class PathsRecorder:
    """``recorder(masks)`` = ``effective_paths(unrolled_graph(model, masks, input_shape, skips))``,
    the model traced once (its structure only: later weight changes do not matter, masks do)."""

    def __init__(self, model: nn.Module, input_shape, skips: str = "identity") -> None:
        self.template: UnrolledGraph = trace_graph(model, None, input_shape, skips, False, edges="none")
        self.parameters = {parameter_name(block.layer) for block in self.template.layers}

    def __call__(self, masks: Mapping[str, torch.Tensor | np.ndarray] | None) -> EffectivePaths:
        masks = {weight_key(name): mask for name, mask in (masks or {}).items()}
        unknown = sorted(set(masks) - self.parameters)
        if unknown:
            raise MaskError(
                f"mask {unknown[0]!r} matches no Conv/Linear layer on the traced path of the model"
            )
        blocks = tuple(
            self._block(block, masks.get(parameter_name(block.layer))) for block in self.template.layers
        )
        return effective_paths(dataclasses.replace(self.template, layers=blocks))

    @staticmethod
    def _block(block: LayerBlock, mask) -> LayerBlock:
        if mask is None:
            mask = block.mask  # dense, or a torch.nn.utils.prune module's own mask
        else:
            mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
            mask = mask.astype(bool, copy=False)
            if mask.shape != block.mask.shape:
                raise MaskError(
                    f"mask {parameter_name(block.layer)!r}: shape {mask.shape} does not match the weight's "
                    f"{block.mask.shape}"
                )
        g = block.geometry
        common = {} if g is None else {"stride": g.stride, "padding": g.padding, "dilation": g.dilation}
        if block.reader is not None:  # pooled input: the block's edges go through the windows
            incidence = (
                linear_incidence(mask, None)
                if g is None
                else conv_incidence(mask, None, g.in_size, g.out_size, **common)
            )
            return dataclasses.replace(
                block, mask=mask, matrix=(block.reader @ incidence).tocsr(), edge_count=-1
            )
        count = int(mask.sum()) if g is None else conv_edge_count(mask, g.in_size, g.out_size, **common)
        return dataclasses.replace(block, mask=mask, matrix=None, edge_count=count)
