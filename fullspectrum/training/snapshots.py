"""Spectral snapshots written off the training loop's critical path (SPEC §8).

A snapshot needs every layer's ``layer_spectrum`` (FS23's full-spectrum
metrics): CPU work that, for a ResNet-18, takes seconds, while a GPU trains on.
So a snapshot captures what it needs at its step (masks, masked weights,
exploration rates, evaluations, mask-update events and the serialised training
checkpoint), hands the spectra to a worker process
(:mod:`fullspectrum.spectrum.worker`; :mod:`.spectra_worker` says when), and is
*written* later, in step order, once its spectra are back: layer rows,
evaluations and events in one transaction, then the mask snapshot, then the
checkpoint. A checkpoint is therefore on disk only when every row up to its
step is, and a run killed with snapshots still pending resumes from the last
written one (rows after it are deleted). Without a worker the same path runs inline.

A snapshot's layers go to the engine in one ``layer_spectra`` call (which
batches them itself), inline or in the worker alike, so both give the same
values. ``device`` (a CUDA run's GPU, see :mod:`.spectra_worker`) is where the
engine runs; None is the CPU.

With a ``paths`` recorder (``fullspectrum.topology.PathsRecorder`` of the model, SPEC §7) every
snapshot also records each layer's effective weights and the network's effective density. They
are computed on the loop's thread when the snapshot is taken (tens of milliseconds for a
ResNet-18: bit-packed sweeps, no unrolled edges built); without a recorder the columns are NaN.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import layer_name
from fullspectrum.spectrum import full_spectrum_vector, moving_distance
from fullspectrum.spectrum.worker import LayerJob, PendingSpectra, SpectraProcess, compute_layers
from fullspectrum.training import checkpoint as ckpt

MAX_PENDING = 64
"""Snapshots allowed in flight before the loop waits for the oldest."""
MAX_PENDING_BYTES = 256 << 20
"""...and the checkpoint bytes they may hold together (a ResNet-18's is ~90 MB): a slow
worker start is absorbed by small runs, while big ones keep memory bounded."""


def layer_jobs(masks: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]) -> list[LayerJob]:
    """The worker's input: ``(parameter name, layer name, mask, masked weight)`` per layer."""
    return [(name, layer_name(name), mask, weights[name]) for name, mask in masks.items()]


def compute_spectra(
    masks: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], *, device: str | None = None
) -> dict[str, dict]:
    """``layer_spectrum`` of every layer as a dict of fields, keyed by parameter name (one engine call)."""
    return compute_layers(layer_jobs(masks, weights), device=device)


@dataclass
class _Pending:
    step: int
    spectra: PendingSpectra | ComputedSpectra | None
    rates: dict[str, float]
    evals: list[dict]
    events: list[dict]
    masks: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor] | None
    checkpoint: bytes | None
    paths: dict[str, float] | None = None
    """Effective weights per layer name, and the network's effective density under :data:`NETWORK`."""


NETWORK = ""
"""The key of the network's effective density in ``_Pending.paths``."""


def effective_columns(paths) -> dict[str, float]:
    """``{layer: effective weights, NETWORK: effective density}`` of an ``EffectivePaths``."""
    found = {row["layer"]: float(row["effective"]) for row in paths.as_dict()["layers"]}
    found[NETWORK] = float(paths.effective_density)
    return found


class ComputedSpectra:
    """Spectra computed inline, behind the same ``done()`` / ``result()`` as a worker's."""

    def __init__(self, value: dict[str, dict]) -> None:
        self._value = value

    def done(self) -> bool:
        return True

    def result(self) -> dict[str, dict]:
        return self._value


class SnapshotWriter:
    """Writes snapshots to a run store in step order; spectra inline or in one worker process.

    ``device`` is where the spectra are solved (None: the CPU; a CUDA run passes its GPU).
    """

    def __init__(
        self,
        store,
        *,
        worker: bool,
        record_spectra: bool = True,
        device: str | None = None,
        paths: Callable | None = None,
    ) -> None:
        self.store = store
        self.paths = paths
        """``paths(masks) -> EffectivePaths`` (a ``PathsRecorder``), or None to record none."""
        self.record_spectra = record_spectra
        self.device = device
        self.start: dict[str, np.ndarray] = {}
        """Step-0 vectors ``u(0)`` per parameter name (set when step 0 is written, or by resume)."""
        self._pending: deque[_Pending] = deque()
        self._worker = SpectraProcess(device) if worker and record_spectra else None

    def submit(
        self,
        step: int,
        state,
        weights: Mapping[str, torch.Tensor],
        evals,
        events,
        checkpoint: bytes | None,
        *,
        keep_weights: bool = False,
    ):
        """Capture a snapshot at ``step``; it is written once its spectra are computed.

        With ``keep_weights`` its mask file also keeps the masked weights (float32); a ``checkpoint``
        of None writes none (a loop this package does not drive, :mod:`fullspectrum.tracking`).
        """
        masks = {name: mask.detach().cpu().clone() for name, mask in state.masks.items()}
        masked = None
        if self.record_spectra or keep_weights:
            masked = {name: weights[name].detach().float().cpu() * masks[name] for name in masks}
        spectra = None
        if self.record_spectra:
            mask_arrays = {name: mask.numpy() for name, mask in masks.items()}
            weight_arrays = {name: weight.numpy() for name, weight in masked.items()}
            if self._worker is not None:
                spectra = self._worker.submit(layer_jobs(mask_arrays, weight_arrays))
            else:
                spectra = ComputedSpectra(compute_spectra(mask_arrays, weight_arrays, device=self.device))
        rates = state.layer_exploration_rates()
        kept = masked if keep_weights else None
        paths = None
        if self.paths is not None:
            try:
                paths = effective_columns(self.paths(masks))
            except FullSpectrumError as error:  # a mask the traced model does not take: record no more
                self.paths = None
                self.store.update_info(effective_paths=f"not recorded from step {step}: {error}")
        self._pending.append(
            _Pending(step, spectra, rates, list(evals), list(events), masks, kept, checkpoint, paths)
        )
        while len(self._pending) > 1 and (
            len(self._pending) > MAX_PENDING
            or sum(len(item.checkpoint or b"") for item in self._pending) > MAX_PENDING_BYTES
        ):
            self._write(self._pending.popleft())
        self.poll()

    def poll(self) -> None:
        """Write every snapshot at the front of the queue whose spectra are ready."""
        while self._pending and (self._pending[0].spectra is None or self._pending[0].spectra.done()):
            self._write(self._pending.popleft())

    def flush(self) -> None:
        """Wait for and write every pending snapshot."""
        while self._pending:
            self._write(self._pending.popleft())

    def close(self) -> None:
        """Drop pending snapshots (a crash path: their checkpoint was never written) and stop the worker."""
        self._pending.clear()
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None

    def _write(self, item: _Pending) -> None:
        rows = []
        if item.spectra is not None:
            spectra = item.spectra.result()
            if item.step == 0:
                self.start = {name: full_spectrum_vector(row) for name, row in spectra.items()}
            for name, spectrum in spectra.items():
                distance = moving_distance(full_spectrum_vector(spectrum), self.start[name])
                layer = layer_name(name)
                row = {
                    "layer": layer,
                    **spectrum,
                    "moving_distance": distance,
                    "exploration_rate": item.rates[name],
                }
                if item.paths is not None:
                    row["effective_weights"] = item.paths.get(layer)
                    row["network_effective_density"] = item.paths[NETWORK]
                rows.append(row)
        self.store.add_snapshot(item.step, rows, item.evals, item.events)
        self.store.save_masks(item.step, item.masks, item.weights)
        if item.checkpoint is not None:
            ckpt.write_bytes(self.store.artifact_path(ckpt.CHECKPOINT_NAME), item.checkpoint)

    def load_start(self, parameter_names) -> None:
        """``u(0)`` of every layer from the store's step-0 rows (for a resumed run)."""
        if not self.record_spectra:
            return
        layers = self.store.layers()
        start = layers[layers.step == 0].set_index("layer")
        self.start = {name: full_spectrum_vector(start.loc[layer_name(name)]) for name in parameter_names}
