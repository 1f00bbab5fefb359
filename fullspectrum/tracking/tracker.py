"""``Tracker``: an ordinary run folder (SPEC §8) written beside any PyTorch training loop.

Researchers train with their own loops (sparselearning's RigL/SET, ITOP21's code, a lab's
own), so the tracker is shaped like TensorBoard's ``SummaryWriter`` or a ``wandb`` run::

    with fullspectrum.Tracker(model, "runs/mine", masks=masks, every=500, config=vars(args)) as tracker:
        for step, (inputs, targets) in enumerate(loader):
            ...                                   # the loop's own forward, backward, masks
            tracker.step(step, loss=loss.item())  # scalars always, a snapshot every `every` steps
        tracker.finish(test_accuracy=accuracy)

A **snapshot** records each tracked layer's full-spectrum row (FS23: ``layer_spectrum``, its
moving distance from step 0, ITOP's exploration rate) and its mask under ``masks/``. There is
one when the tracker is made (step 0), at every step divisible by ``every``, on
:meth:`Tracker.snapshot` and at :meth:`Tracker.finish`, labelled with the last step passed to
:meth:`Tracker.step`; the first and last keep the kept weights too. A snapshot's masks and
weights are copied on the loop's thread; their spectra are computed by the trainer's
:class:`~fullspectrum.training.snapshots.SnapshotWriter` in its spectra worker process
(:mod:`fullspectrum.training.spectra_worker`), and written in step order once back, by a writer
thread (:mod:`.background`) that also commits the logged rows, so the loop waits only for the
copies, never for a disk sync. A small network (:data:`INLINE_MAX_WEIGHTS`) on a CPU is
solved inline instead: its snapshot takes milliseconds, less than the worker's start.

Between snapshots a change of the masks (seen from their tensors' identities and in-place
versions, :mod:`.sources`, or announced with :meth:`Tracker.masks_changed`) is recorded as a
mask-update event: weights pruned and grown per layer, as the trainer records its updates.
Scalars become ``evals`` rows (:mod:`.scalars`). The run reads as ``running`` while its
heartbeat is fresh (the app's *Live training* page watches it); it ends ``finished``,
``failed`` (an exception in the ``with`` block, with the error), ``interrupted`` (Ctrl-C, or
a script that ended without :meth:`~Tracker.finish`), and a process killed outright leaves a
heartbeat that goes stale, so readers see it as interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import operator
import sys
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fullspectrum.checkpoints.atomic import json_safe
from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.layers import layer_name
from fullspectrum.runs import RunStore
from fullspectrum.runs.database import EVAL_SPLITS
from fullspectrum.tracking.background import BackgroundSnapshots, BackgroundWrites
from fullspectrum.tracking.scalars import SCALARS, RowBuffer, eval_rows, finite, scalar_value
from fullspectrum.tracking.sources import MasksArgument, MaskSource
from fullspectrum.training.loop import HEARTBEAT_S
from fullspectrum.training.sparse import SparseState
from fullspectrum.training.spectra_worker import spectra_device, use_worker

DEFAULT_EVERY = 500
"""Steps between snapshots unless ``every`` says otherwise."""
INLINE_MAX_WEIGHTS = 100_000
"""Tracked weights up to which a CPU run's spectra are solved inline by default: a snapshot of such a
net costs milliseconds of CPU (8 ms for the digits MLP, 50 k weights at density 0.1), less than
starting the worker process (about a CPU-second of imports, which a busy CPU takes from the loop)."""


def run_config(config) -> dict:
    """``config`` as ``run.json`` stores it: a dict, ``vars()`` of an ``argparse.Namespace`` or a
    dataclass's fields, made JSON-safe (paths and other objects as strings)."""
    if config is None:
        return {}
    if isinstance(config, Namespace):
        config = vars(config)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise FullSpectrumError(
            f"config: expected a dict, an argparse.Namespace or a dataclass, got {type(config).__name__}"
        )
    return json_safe(dict(config))


def _step_number(step, *, after: int | None) -> int:
    try:
        number = operator.index(step)
    except TypeError:
        number = None
    if number is None or isinstance(step, bool):
        if isinstance(step, float) and step.is_integer():
            number = int(step)
        else:
            raise FullSpectrumError(f"tracker.step: step must be an int, got {step!r}")
    if number < 0:
        raise FullSpectrumError(f"tracker.step: step {number} is negative")
    if after is not None and number < after:
        raise FullSpectrumError(
            f"tracker.step: step {number} comes after step {after}; pass a count that never goes back "
            "(e.g. epoch * len(loader) + i)"
        )
    return number


def _status_after(error: BaseException) -> str:
    """How an error ends a run: Ctrl-C or ``sys.exit`` stopped the loop (``interrupted``), anything
    else broke it (``failed``)."""
    return "interrupted" if isinstance(error, KeyboardInterrupt | SystemExit) else "failed"


def _one_line(error: BaseException) -> str:
    """``run.json``'s ``error``: a FullSpectrumError's message, else ``Type: message`` (first line)."""
    text = str(error).strip()
    if not isinstance(error, FullSpectrumError):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text.splitlines()[0] if text else type(error).__name__


def _spectra_in_worker(requested: bool | None, device: torch.device, weights: Mapping) -> bool:
    """Whether snapshot spectra go to the worker process: as ``requested``, else on CUDA and for
    networks above :data:`INLINE_MAX_WEIGHTS` (see :mod:`fullspectrum.training.spectra_worker`)."""
    if requested is None:
        requested = device.type == "cuda" or sum(w.numel() for w in weights.values()) > INLINE_MAX_WEIGHTS
    return use_worker(requested, device, weights)


class Tracker:
    """A run folder for a training loop this package does not drive (see the module docstring).

    ``model``: the ``nn.Module`` being trained. ``run_dir``: a new or empty folder (an existing
    run or a folder of other files is refused in one line). ``masks``: a dict of mask tensors,
    a callable returning one (called at each snapshot), or None (``torch.nn.utils.prune``'s
    ``weight_mask`` buffers, else the weights' non-zeros). ``every``: steps between snapshots.
    ``config``: stored in ``run.json`` as given (``vars(args)`` works). ``seed``: recorded
    (default torch's initial seed). ``total_steps``: lets readers show progress (and a snapshot
    at that step keeps its weights at once).
    ``spectra_worker``: True computes snapshot spectra in the worker process, False inline on the
    loop's thread; by default the worker on CUDA and for networks above :data:`INLINE_MAX_WEIGHTS`.
    """

    def __init__(
        self,
        model: nn.Module,
        run_dir: str | Path,
        masks: MasksArgument = None,
        every: int = DEFAULT_EVERY,
        config=None,
        *,
        seed: int | None = None,
        total_steps: int | None = None,
        spectra_worker: bool | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise FullSpectrumError(f"every: steps between snapshots must be a positive int, got {every!r}")
        if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)):
            raise FullSpectrumError(f"total_steps: expected an int or None, got {total_steps!r}")
        self.every = every
        self.total_steps = total_steps
        """Steps the loop will take, if given: a snapshot there is the last and keeps its weights at once."""
        self.config = run_config(config)
        self.model = model
        self._source = MaskSource(model, masks)
        masks_now = self._source.read()  # a bad mask is refused before the folder exists
        weights = self._source.weights()
        device = next(iter(weights.values())).device
        worker = _spectra_in_worker(spectra_worker, device, weights)
        self._state = SparseState.from_masks(masks_now)
        self._rate = self._state.exploration_rate()
        self._fingerprint = self._source.fingerprint()
        self.last_step = 0
        """The last step passed to :meth:`step` (0 before the first)."""
        self._snapshot_steps: list[int] = []
        self._weights_kept_at: int | None = None  # the last snapshot that kept its weights
        self._ended = False
        self._stack = contextlib.ExitStack()
        seed = torch.initial_seed() if seed is None else int(seed)
        self.store = RunStore.create(run_dir, kind="train", config=self.config, seed=seed, device=str(device))
        """The run store written (``store.path`` is the run folder)."""
        try:
            info = {
                "tracker": {"every": every, "masks": self._source.form, "layers": len(masks_now)},
                "spectra": "worker process" if worker else "inline",
                "spectra_device": spectra_device(device) or "cpu",
            }
            if total_steps is not None:
                info["total_steps"] = total_steps
            self.store.update_info(**info)
            self._writes = BackgroundWrites()
            self._stack.callback(self._writes.close)  # last: after the worker and the heartbeat
            self._writer = BackgroundSnapshots(
                self.store, self._writes, worker=worker, device=spectra_device(device)
            )
            self._stack.callback(self._writer.close)
            self._rows = RowBuffer(self.store, writes=self._writes)
            self._stack.enter_context(self.store.heartbeat_thread(interval_s=HEARTBEAT_S))
            self._submit(0, masks_now, events=[], keep_weights=True)
            self._writes.wait()  # step 0 is on disk when the tracker is made (inline spectra)
        except BaseException as error:
            self._end(_status_after(error), error)
            raise
        atexit.register(self._at_exit)

    @property
    def path(self) -> Path:
        """The run folder."""
        return self.store.path

    # -- the loop's calls ------------------------------------------------------------------------------
    def step(self, step: int, **scalars) -> None:
        """Record ``scalars`` (``loss``, ``accuracy``, ``val_loss``... see :data:`.scalars.SCALARS`) at
        ``step``, a mask update if the masks changed, and a snapshot when ``every`` divides ``step``."""
        self._require_open("step")
        self._writes.raise_error()  # a write that failed on the writer thread ends the run here
        step = _step_number(step, after=self.last_step)
        if scalars:  # checked before anything changes: a refused call records nothing
            self._rows.add(step, "evals", eval_rows(scalars, exploration_rate=self._rate))
        self.last_step = step
        fingerprint = self._source.fingerprint()
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            self._record_update(step, self._source.read())
        if step % self.every == 0 and not self._has_snapshot(step):
            self._snapshot(keep_weights=step == self.total_steps)
        else:
            self._rows.flush_if_due()
            self._writer.poll()

    def masks_changed(self) -> None:
        """Record a mask update at the last step now (the tracker notices in-place changes itself;
        call this when the loop hands the masks over as new tensors)."""
        self._require_open("masks_changed")
        self._fingerprint = self._source.fingerprint()
        self._record_update(self.last_step, self._source.read())

    def snapshot(self) -> None:
        """A snapshot at the last step passed to :meth:`step` (none if that step has one already)."""
        self._require_open("snapshot")
        if not self._has_snapshot(self.last_step):
            self._snapshot(keep_weights=self.last_step == self.total_steps)

    def log_eval(
        self, split: str, *, loss: float | None = None, accuracy: float | None = None, step: int | None = None
    ) -> None:
        """Record an evaluation of ``split`` (``train``, ``val`` or ``test``) at ``step`` (default: the last)."""
        self._require_open("log_eval")
        if split not in EVAL_SPLITS:
            raise unknown_name("split", split, EVAL_SPLITS)
        row = {"split": split, "exploration_rate": self._rate}
        if loss is not None:
            row["loss"] = scalar_value("loss", loss)
        if accuracy is not None:
            row["accuracy"] = scalar_value("accuracy", accuracy)
        self._rows.add(self.last_step if step is None else _step_number(step, after=None), "evals", [row])
        self._rows.flush()  # an evaluation is rare: readers see it at once

    def finish(self, **final) -> None:
        """End the run ``finished``: a last snapshot (with the kept weights) at the last step, and
        ``final`` in ``run.json`` (``test_accuracy=...``; scalar names also become ``evals`` rows)."""
        self._require_open("finish")
        try:
            values = {name: scalar_value(name, value) for name, value in final.items() if name in SCALARS}
            self._rows.add(self.last_step, "evals", eval_rows(values, exploration_rate=self._rate))
            if self._has_snapshot(self.last_step) and self._weights_kept_at != self.last_step:
                self._writer.flush()  # that snapshot is the last: it keeps the weights now
                self._writes.wait()
                step_masks = self.store.load_masks(self.last_step)
                self.store.save_masks(self.last_step, step_masks, self._masked_weights(step_masks))
            elif not self._has_snapshot(self.last_step):
                self._snapshot(keep_weights=True)
            self._writer.flush()
            self._rows.flush()  # and waits for every write handed to the writer thread
            summary = {
                "steps": self.last_step,
                "density": self._state.density(),
                "exploration_rate": self._rate,
                **{name: json_safe(value) for name, value in final.items() if name not in values},
                **{name: finite(value) for name, value in values.items()},
            }
            self._close_background()
            self.store.finish(status="finished", final=summary)
            self._ended = True
        except BaseException as error:
            self._end(_status_after(error), error)
            raise
        finally:
            atexit.unregister(self._at_exit)

    # -- context manager -------------------------------------------------------------------------------
    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._ended:
            return
        if error is None:
            self.finish()
        else:
            self._end(_status_after(error), error)

    # -- inside ----------------------------------------------------------------------------------------
    def _require_open(self, call: str) -> None:
        if self._ended:
            raise FullSpectrumError(f"tracker.{call}: the run {self.path} has ended; start a new Tracker")

    def _has_snapshot(self, step: int) -> bool:
        return bool(self._snapshot_steps) and self._snapshot_steps[-1] == step

    def _snapshot(self, *, keep_weights: bool) -> None:
        masks = self._source.read()
        self._fingerprint = self._source.fingerprint()
        events = self._diff(masks)
        self._submit(self.last_step, masks, events=events, keep_weights=keep_weights)

    def _submit(self, step: int, masks: dict, *, events: list[dict], keep_weights: bool) -> None:
        self._rows.hand_off()  # rows before this step go to the database before its snapshot does
        self._snapshot_steps.append(step)
        if keep_weights:
            self._weights_kept_at = step
        weights = self._source.weights()
        self._writer.submit(step, self._state, weights, (), events, None, keep_weights=keep_weights)

    def _record_update(self, step: int, masks: dict[str, torch.Tensor]) -> None:
        events = self._diff(masks)
        if events:
            self._rows.add(step, "events", events)

    def _diff(self, masks: dict[str, torch.Tensor]) -> list[dict]:
        """Event rows (every layer, as the trainer's) if any mask differs from the last seen; the
        state then holds ``masks`` and their union with the masks before (ITOP's exploration)."""
        counts = {}
        for name, mask in masks.items():
            if self._state.masks[name].device != mask.device:  # the model moved since (model.to(device))
                self._state.masks[name] = self._state.masks[name].to(mask.device)
                self._state.fired[name] = self._state.fired[name].to(mask.device)
            old = self._state.masks[name]
            counts[name] = (int((old & ~mask).sum()), int((mask & ~old).sum()))
        if not any(pruned or grown for pruned, grown in counts.values()):
            return []
        self._state.masks = dict(masks)
        self._state.update_fired()
        self._rate = self._state.exploration_rate()
        return [{"layer": layer_name(name), "pruned": p, "grown": g} for name, (p, g) in counts.items()]

    def _masked_weights(self, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        weights = self._source.weights()
        return {name: weights[name].detach().float().cpu() * masks[name] for name in masks}

    def _close_background(self) -> None:
        """Stop the heartbeat and the spectra worker."""
        self._stack.close()

    def _end(self, status: str, error: BaseException | None) -> None:
        """Leave the run ``status`` (with ``error``'s one line), writing what was already captured."""
        if self._ended:
            return
        self._ended = True
        atexit.unregister(self._at_exit)
        with contextlib.suppress(BaseException):  # a second Ctrl-C or a dead worker: drop the rest
            self._writer.flush()
        with contextlib.suppress(BaseException):
            self._rows.flush()
        self._close_background()
        with contextlib.suppress(FullSpectrumError, OSError):
            if error is not None:
                self.store.update_info(error=_one_line(error))
            self.store.finish(status=status)
        self.store.close()

    def _at_exit(self) -> None:
        """The interpreter is ending with the run open: failed after an uncaught error, else interrupted."""
        error = getattr(sys, "last_value", None)
        if error is None or isinstance(error, KeyboardInterrupt):
            reason = error or FullSpectrumError("the script ended without tracker.finish()")
            self._end("interrupted", reason)
        else:
            self._end("failed", error)

    def __repr__(self) -> str:
        state = "ended" if self._ended else f"step {self.last_step}"
        return f"Tracker({str(self.path)!r}, {state})"
