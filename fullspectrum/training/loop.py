"""The training loop: one optimiser step at a time, with snapshots, evaluations and mask updates.

A :class:`Session` holds what a run needs while it trains (model, optimiser,
masks, loaders, the run store) and is what :func:`fullspectrum.training.train`
and :func:`~fullspectrum.training.resume` drive. Each iteration takes one SGD
step (Nesterov momentum and weight decay, ITOP21's setting), re-applies the
masks to the weights and their momentum, and every ``delta_t`` iterations
prunes and regrows (ITOP-Rand/SET: random growth; RigL: gradient growth,
Evci et al. 2020). At step 0, every ``snapshot_every`` iterations, at each mask
update and at the end it records each layer's full-spectrum row (FS23) with the
masks and a checkpoint that holds every tensor and random state, so a restored
session continues bit for bit. A loss or weight that stops being finite ends
the run as *diverged* before anything non-finite is recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fullspectrum.checkpoints.mask_file import MaskCheckpoint, load_mask_checkpoint
from fullspectrum.data import make_loader
from fullspectrum.errors import TopologyError
from fullspectrum.models import build_model
from fullspectrum.runs import RunStore
from fullspectrum.seeds import TRAIN_DATA_STREAM, TRAIN_GROWTH_STREAM, derived_seed
from fullspectrum.topology import PathsRecorder
from fullspectrum.training import checkpoint as ckpt
from fullspectrum.training.config import TrainConfig
from fullspectrum.training.initial import initial_state, with_sparse_init
from fullspectrum.training.recording import DivergenceWatch, autocast, evaluate, finite_or_none
from fullspectrum.training.rewire import get_method, prune_rate, rewire
from fullspectrum.training.snapshots import SnapshotWriter
from fullspectrum.training.sparse import SparseState, maskable_weights
from fullspectrum.training.spectra_worker import spectra_device, use_worker

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after every iteration."""
StepHook = Callable[["Session"], bool | None]
"""``hook(session)``: called at step 0 and after every optimiser step (masks applied), before the step is
recorded, so a checkpoint is never written ahead of it (a resumed run replays every step it missed);
``session.step`` is the step. Returning True ends the run at this step as finished (Early-Bird's stop)."""
EVAL_BATCH = 512
"""Minibatch of the validation and test evaluations."""
HEARTBEAT_S = 5.0
"""How often a training job refreshes its heartbeat."""


@dataclass(frozen=True)
class TrainResult:
    """How a call to ``train`` / ``resume`` ended."""

    run_dir: Path
    """The run directory."""
    status: str
    """``finished`` or ``interrupted`` (then ``resume(run_dir)`` continues it)."""
    step: int
    """Iterations done."""
    total_steps: int
    """Iterations of the whole run."""
    test_accuracy: float | None
    """Accuracy on the test split (finished runs only)."""
    val_accuracy: float | None
    """Latest validation accuracy."""
    exploration_rate: float
    """ITOP's ``R_s`` at the end of this call."""
    already_finished: bool = False
    """True when ``resume`` found the run finished and did nothing."""


def effective_paths_recorder(model, input_shape) -> tuple[PathsRecorder | None, str]:
    """The recorder of effective paths at snapshots (SPEC §7) and what ``run.json`` says of it:
    a model the unrolled-graph tracer cannot encode records none, and the run says why."""
    try:
        return PathsRecorder(model, input_shape), "recorded"
    except TopologyError as error:
        return None, f"not recorded: {error}"


class Session:
    """A run in progress: model, optimiser, masks, loaders and the store (one per train/resume call).

    It is built, and its masks prepared, before its run folder exists (so a bad model or mask
    is refused with nothing written); then :meth:`attach` gives it the store it records into.
    """

    def __init__(self, config: TrainConfig, device: torch.device, splits) -> None:
        self.config, self.device = config, device
        self.store: RunStore | None = None
        self.writer: SnapshotWriter | None = None
        self.method = get_method(config.method)
        self.model = build_model(config.model, splits.num_classes, splits.input_shape, **config.model_options)
        self.model.to(device)
        self.weights = maskable_weights(self.model)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        seed = derived_seed(config.seed, TRAIN_DATA_STREAM)
        self.train_loader = make_loader(
            splits.train, config.batch_size, shuffle=True, seed=seed, augment=splits.augment
        )
        self.val_loader = make_loader(splits.val, EVAL_BATCH, shuffle=False, seed=0)
        self.test_loader = make_loader(splits.test, EVAL_BATCH, shuffle=False, seed=0)
        self.iters_per_epoch = len(self.train_loader)
        self.total_steps = config.epochs * self.iters_per_epoch
        self.growth = torch.Generator().manual_seed(derived_seed(config.seed, TRAIN_GROWTH_STREAM))
        self.step = 0
        self.state: SparseState | None = None
        self.worker = config.record_spectra and use_worker(config.spectra_worker, device, self.weights)
        self.epoch_start_loader_state = self.train_loader.generator.get_state()
        self.iterator = None
        self.val_accuracy: float | None = None
        self.restored = False
        """Continued from a checkpoint: its step's rows are already in the store."""
        self.watch = DivergenceWatch(device)
        self.paths, self.paths_note = effective_paths_recorder(self.model, splits.input_shape)
        self.step_hook: StepHook | None = None
        self.ended_early = False
        """The step hook ended the run before ``total_steps`` (kept in the checkpoint)."""

    def attach(self, store: RunStore) -> None:
        """Record into ``store`` from now on (its snapshot writer starts the spectra worker, if any)."""
        self.store = store
        self.writer = SnapshotWriter(
            store,
            worker=self.worker,
            record_spectra=self.config.record_spectra,
            device=spectra_device(self.device),
            paths=self.paths,
        )
        store.update_info(effective_paths=self.paths_note)

    def close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # -- starting points ---------------------------------------------------------------------------------
    def prepare(self, mask_file: MaskCheckpoint | None = None) -> None:
        """Build the step-0 masks (those of ``config.mask``, read as ``mask_file``) and check them
        against the model; a fresh run does this before its folder exists."""
        if self.config.mask is not None and mask_file is None:
            mask_file = load_mask_checkpoint(self.config.mask)
        self.config = with_sparse_init(self.config, self.model, mask_file)  # its preset needs both
        self.state = initial_state(self.config, self.model, self.weights, mask_file)

    def initialise(self) -> None:
        """Start at step 0: the prepared masks on the device, applied to the weights."""
        if self.state is None:
            self.prepare()
        self.state.to(self.device)
        self.state.apply(self.weights)

    def restore(self, payload: dict) -> None:
        """Continue from a training checkpoint: every tensor and random state as it was."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = SparseState.from_state_dict(payload["sparse"]).to(self.device)
        self.state.check(self.weights, source="training checkpoint")
        self.writer.load_start(self.weights)
        self.step = int(payload["step"])
        self.restored = True
        self.val_accuracy = payload.get("val_accuracy")
        self.ended_early = bool(payload.get("ended_early", False))
        self.growth.set_state(payload["growth_rng"])
        self.epoch_start_loader_state = payload["loader_epoch_start"]
        self.train_loader.generator.set_state(payload["loader_now"])
        within = self.step % self.iters_per_epoch
        if within and self.step < self.total_steps:  # replay this epoch's order up to where it stopped
            self.train_loader.generator.set_state(self.epoch_start_loader_state)
            self.iterator = iter(self.train_loader)
            for _ in range(within):
                next(self.iterator)
        if payload["augment_now"] is not None:
            self.train_loader.augment_generator.set_state(payload["augment_now"])
        ckpt.restore_rng(payload["rng"])

    def checkpoint_bytes(self) -> bytes:
        """The training checkpoint of this moment, serialised (written once its rows are)."""
        payload = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sparse": self.state.state_dict(),
            "val_accuracy": self.val_accuracy,
            "growth_rng": self.growth.get_state(),
            "loader_epoch_start": self.epoch_start_loader_state,
            "loader_now": self.train_loader.generator.get_state(),
            "augment_now": self._augment_state(),
            "rng": ckpt.capture_rng(self.device),
            "ended_early": self.ended_early,
        }
        return ckpt.serialize(payload)

    def _augment_state(self) -> torch.Tensor | None:
        generator = getattr(self.train_loader, "augment_generator", None)
        return generator.get_state() if generator is not None else None

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, progress: Progress | None, stop_event: threading.Event | None) -> TrainResult:
        with self.store.heartbeat_thread(interval_s=HEARTBEAT_S):
            if self.step == 0 and not self.restored:  # a resumed run has its step-0 rows already
                self.call_hook()
                self.record(events=(), snapshot=True, evaluate_val=True, keep_weights=True)
            if progress is not None:
                progress(self.step, self.total_steps)
            while self.step < self.total_steps and not self.ended_early:
                if stop_event is not None and stop_event.is_set():
                    return self.interrupt()
                self.train_step()
                self.writer.poll()
                if progress is not None:
                    progress(self.step, self.total_steps)
            return self.finish()

    def train_step(self) -> None:
        config, step = self.config, self.step
        if step % self.iters_per_epoch == 0 or self.iterator is None:
            self.epoch_start_loader_state = self.train_loader.generator.get_state()
            self.iterator = iter(self.train_loader)
        inputs, targets = next(self.iterator)
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr_at(step // self.iters_per_epoch)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device):
            loss = F.cross_entropy(self.model(inputs), targets)
        loss.backward()
        self.step = step = step + 1
        self.watch.observe(step, loss)
        update = self.method.rewires and step % config.delta_t == 0 and step < self.total_steps
        gradients = None
        if update and self.method.needs_gradient:  # RigL: the dense gradient of this minibatch
            gradients = {name: w.grad.detach().clone() for name, w in self.weights.items()}
        self.optimizer.step()
        self.state.apply(self.weights, self.optimizer)
        events = ()
        if update:
            rate = prune_rate(step, self.total_steps, config.p_0, config.p_min)
            updates = rewire(
                self.state,
                self.weights,
                self.optimizer,
                rate=rate,
                prune=self.method.prune,
                grow=self.method.grow,
                generator=self.growth,
                gradients=gradients,
            )
            events = [{"layer": u.layer, "pruned": u.pruned, "grown": u.grown} for u in updates]
        self.call_hook()
        final = step == self.total_steps or self.ended_early
        snapshot = update or final or step % config.snapshot_every == 0
        evaluate_val = final or step % config.eval_every == 0
        if snapshot or evaluate_val or events:
            self.record(events=events, snapshot=snapshot, evaluate_val=evaluate_val, keep_weights=final)

    def call_hook(self) -> None:
        if self.step_hook is not None and self.step_hook(self) is True:
            self.ended_early = True

    def record(self, *, events, snapshot: bool, evaluate_val: bool, keep_weights: bool = False) -> None:
        """This step's rows: evaluations now; at a snapshot, spectra, masks and checkpoint via the writer.

        The first and last snapshots keep their weights too (the inspector's class-level λ_c).
        A diverged run stops here, before anything non-finite is recorded.
        """
        lr_now = self.optimizer.param_groups[0]["lr"]
        self.watch.check(
            self.step, self.weights, where=str(self.store.path), lr=self.config.lr, lr_now=lr_now
        )
        evals = []
        if evaluate_val:
            loss, accuracy = evaluate(self.model, self.val_loader, self.device)
            self.val_accuracy = finite_or_none(accuracy)
            rate = self.state.exploration_rate()
            evals.append({"split": "val", "loss": loss, "accuracy": accuracy, "exploration_rate": rate})
        if snapshot:
            self.writer.submit(
                self.step,
                self.state,
                self.weights,
                evals,
                events,
                self.checkpoint_bytes(),
                keep_weights=keep_weights,
            )
        else:
            self.store.add_snapshot(self.step, [], evals, list(events))

    def interrupt(self) -> TrainResult:
        self.writer.flush()
        ckpt.write_bytes(self.store.artifact_path(ckpt.CHECKPOINT_NAME), self.checkpoint_bytes())
        self.store.finish(status="interrupted")
        return self._result("interrupted", test_accuracy=None)

    def finish(self) -> TrainResult:
        self.writer.flush()
        loss, accuracy = evaluate(self.model, self.test_loader, self.device)
        rate = self.state.exploration_rate()
        self.store.add_evals(
            self.step, [{"split": "test", "loss": loss, "accuracy": accuracy, "exploration_rate": rate}]
        )
        final = {
            "test_accuracy": finite_or_none(accuracy),
            "test_loss": finite_or_none(loss),
            "val_accuracy": self.val_accuracy,
            "exploration_rate": rate,
            "density": self.state.density(),
            "steps": self.step,
        }
        self.store.finish(status="finished", final=final)
        return self._result("finished", test_accuracy=finite_or_none(accuracy))

    def _result(self, status: str, *, test_accuracy: float | None) -> TrainResult:
        return TrainResult(
            run_dir=Path(self.store.path),
            status=status,
            step=self.step,
            total_steps=self.total_steps,
            test_accuracy=test_accuracy,
            val_accuracy=self.val_accuracy,
            exploration_rate=self.state.exploration_rate(),
        )
