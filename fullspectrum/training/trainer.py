"""The trainer: dense, static-sparse, ITOP-Rand/SET and RigL training with spectral tracking.

``train(config, out_dir)`` runs SPEC §6's sparse-to-sparse training (Liu et al.,
ITOP, ICML 2021; Evci et al., RigL, ICML 2020) and writes a run directory
(SPEC §8) through :class:`fullspectrum.runs.RunStore`. At step 0, every
``snapshot_every`` iterations, at every mask update and at the final step it
records each layer's full-spectrum metrics, moving distance from step 0 and
exploration rate, which is how FS23 (Hoang et al., NeurIPS 2023) watched random
growth turn masks into Ramanujan-like expanders. Each snapshot also stores the
masks and an atomic training checkpoint, so ``resume(run_dir)`` continues a
killed or interrupted run and ends with exactly the rows (bit-identical on CPU)
an uninterrupted run would have written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.data import load_dataset, make_loader
from fullspectrum.devices import resolve_device
from fullspectrum.errors import CheckpointError, FullSpectrumError, MaskError
from fullspectrum.models import build_model
from fullspectrum.runs import RunStore
from fullspectrum.seeds import (
    TRAIN_DATA_STREAM,
    TRAIN_GROWTH_STREAM,
    TRAIN_MASK_STREAM,
    TRAIN_NUMPY_STREAM,
    derived_seed,
)
from fullspectrum.training import checkpoint as ckpt
from fullspectrum.training.config import TrainConfig
from fullspectrum.training.recording import autocast, evaluate, finite_or_none
from fullspectrum.training.rewire import get_method, prune_rate, rewire
from fullspectrum.training.snapshots import SnapshotWriter
from fullspectrum.training.sparse import SparseState, layer_densities, maskable_weights, random_masks
from fullspectrum.training.spectra_worker import loop_threads, use_worker

Progress = Callable[[int, int], None]
EVAL_BATCH = 512
HEARTBEAT_S = 5.0


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


class _Session:
    """A run in progress: model, optimiser, masks, loaders and the store (one per train/resume call)."""

    def __init__(self, config: TrainConfig, store, device: torch.device, splits) -> None:
        self.config, self.store, self.device = config, store, device
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
        self.writer = SnapshotWriter(store, worker=self.worker, record_spectra=config.record_spectra)
        self.epoch_start_loader_state = self.train_loader.generator.get_state()
        self.iterator = None
        self.val_accuracy: float | None = None

    # -- starting points ---------------------------------------------------------------------------------
    def initialise(self) -> None:
        """Fresh weights and masks (or those of ``config.mask``) at step 0."""
        config = self.config
        if config.mask is not None:
            self.state = SparseState.from_masks(self._load_mask_checkpoint(config.mask))
        elif self.method.rewires or config.method == "static":
            shapes = {name: tuple(w.shape) for name, w in self.weights.items()}
            densities = layer_densities(shapes, config.density, config.init)
            generator = torch.Generator().manual_seed(derived_seed(config.seed, TRAIN_MASK_STREAM))
            self.state = SparseState.from_masks(random_masks(shapes, densities, generator))
        else:
            self.state = SparseState.dense(self.weights)
        self.state.check(self.weights, source=config.mask or "initial mask")
        self.state.to(self.device)
        self.state.apply(self.weights)

    def _load_mask_checkpoint(self, path: str) -> dict[str, torch.Tensor]:
        loaded = load_mask_checkpoint(path)
        if loaded.state_dict:  # the initial weights the masks were made for (e.g. PEGS's warmed-up ones)
            try:
                result = self.model.load_state_dict(loaded.state_dict, strict=False)
            except RuntimeError as error:
                first = str(error).strip().splitlines()[-1].strip()
                raise MaskError(
                    f"{path}: its state_dict does not fit model {self.config.model!r} ({first})"
                ) from None
            missing = [name for name in self.weights if name in result.missing_keys]
            if result.unexpected_keys or missing:
                raise MaskError(
                    f"{path}: its state_dict does not fit model {self.config.model!r} "
                    f"(unknown {result.unexpected_keys[:3]}, missing weights {missing[:3]})"
                )
        return dict(loaded.masks)

    def restore(self, payload: dict) -> None:
        """Continue from a training checkpoint: every tensor and random state as it was."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = SparseState.from_state_dict(payload["sparse"]).to(self.device)
        self.state.check(self.weights, source="training checkpoint")
        self.writer.load_start(self.weights)
        self.step = int(payload["step"])
        self.val_accuracy = payload.get("val_accuracy")
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
        }
        return ckpt.serialize(payload)

    def _augment_state(self) -> torch.Tensor | None:
        generator = getattr(self.train_loader, "augment_generator", None)
        return generator.get_state() if generator is not None else None

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self, progress: Progress | None, stop_event: threading.Event | None) -> TrainResult:
        with self.store.heartbeat_thread(interval_s=HEARTBEAT_S):
            if self.step == 0:
                self.record(events=(), snapshot=True, evaluate_val=True, keep_weights=True)
            if progress is not None:
                progress(self.step, self.total_steps)
            while self.step < self.total_steps:
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
        final = step == self.total_steps
        snapshot = update or final or step % config.snapshot_every == 0
        evaluate_val = final or step % config.eval_every == 0
        if snapshot or evaluate_val or events:
            self.record(events=events, snapshot=snapshot, evaluate_val=evaluate_val, keep_weights=final)

    def record(self, *, events, snapshot: bool, evaluate_val: bool, keep_weights: bool = False) -> None:
        """This step's rows: evaluations now; at a snapshot, spectra, masks and checkpoint via the writer.

        The first and last snapshots keep their weights too (the inspector's class-level λ_c).
        """
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


def _load_splits(config: TrainConfig):
    return load_dataset(config.data, data_dir=config.data_dir, split_seed=config.split_seed)


def _end(store, status: str) -> None:
    """Mark an unfinished run's status, unless the store was already closed by ``finish``."""
    with contextlib.suppress(FullSpectrumError, OSError):
        store.finish(status=status)


def _run(session: _Session, progress, stop_event) -> TrainResult:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(loop_threads(session.worker, session.device))
        spectra = "worker process" if session.worker else "inline"
        session.store.update_info(spectra=spectra, torch_threads=torch.get_num_threads())
        return session.run(progress, stop_event)
    except KeyboardInterrupt:
        # the last snapshot's checkpoint is intact; resume truncates any rows written after it
        _end(session.store, "interrupted")
        raise
    except BaseException:
        _end(session.store, "failed")
        raise
    finally:
        torch.set_num_threads(threads)
        session.writer.close()
        session.store.close()


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
) -> TrainResult:
    """Train a model as ``config`` says and write the run directory ``out_dir`` (SPEC §8).

    ``progress(done, total)`` is called after every iteration; setting
    ``stop_event`` stops at the next iteration boundary, saves a checkpoint and
    leaves an ``interrupted`` run that :func:`resume` continues.
    """
    device = resolve_device(config.device)
    if config.mask is not None:  # a bad file fails before any run directory exists
        masks = load_mask_checkpoint(config.mask).masks
        # The run's density is the mask's own, not the flag's default.
        kept = sum(int(mask.sum()) for mask in masks.values())
        config = dataclasses.replace(config, density=kept / max(1, sum(m.numel() for m in masks.values())))
    splits = _load_splits(config)
    torch.manual_seed(config.seed)  # model initialisation draws from torch's global generator
    np.random.seed(derived_seed(config.seed, TRAIN_NUMPY_STREAM) % 2**32)
    resolved = _resolve(config, splits)
    store = RunStore.create(
        out_dir, kind="train", config=resolved.as_dict(), seed=config.seed, device=str(device)
    )
    session = None
    try:
        session = _Session(resolved, store, device, splits)
        store.update_info(total_steps=session.total_steps)  # lets readers show progress as a fraction
        session.initialise()
    except BaseException:
        if session is not None:
            session.writer.close()
        _end(store, "failed")
        store.close()
        raise
    return _run(session, progress, stop_event)


def _resolve(config: TrainConfig, splits) -> TrainConfig:
    batch_size = config.batch_size or config.preset.batch_size
    iters = len(make_loader(splits.train, batch_size, shuffle=True, seed=0))
    return config.resolved(iters)


def resume(
    run_dir: str | Path,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
) -> TrainResult:
    """Continue an interrupted or killed training run from its last checkpoint.

    Rows written after that checkpoint are deleted first, so the finished run
    has exactly the rows of an uninterrupted one. A finished run is left alone
    (``already_finished=True``); a run another process is still writing is refused
    (the store's writer lock).
    """
    reader = RunStore.open(run_dir)  # read-only: a finished run (say, a cached one) is not touched
    info = reader.info
    if info.get("kind") != "train":
        raise CheckpointError(f"{run_dir}: a {info.get('kind')!r} run, not a training run")
    if info.get("status") == "finished":
        return _finished_result(reader, info)
    store = RunStore.open(run_dir, readonly=False)
    session = None
    try:
        config = TrainConfig.from_dict(info["config"])
        device = resolve_device(config.device)
        splits = _load_splits(config)
        checkpoint_path = store.artifact_path(ckpt.CHECKPOINT_NAME)
        payload = ckpt.load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        torch.manual_seed(config.seed)
        np.random.seed(derived_seed(config.seed, TRAIN_NUMPY_STREAM) % 2**32)
        session = _Session(config, store, device, splits)
        if payload is None:  # killed before the step-0 checkpoint: start over
            store.truncate_after(-1)
            session.initialise()
        else:
            store.truncate_after(int(payload["step"]))
            session.restore(payload)
        store.update_info(status="running")
    except BaseException:
        if session is not None:
            session.writer.close()
        store.close()  # the run stays as it was: still resumable once the problem is fixed
        raise
    return _run(session, progress, stop_event)


def _finished_result(store, info: dict) -> TrainResult:
    final = info.get("final") or {}
    store.close()
    steps = int(final.get("steps", 0))
    return TrainResult(
        run_dir=Path(store.path),
        status="finished",
        step=steps,
        total_steps=steps,
        test_accuracy=final.get("test_accuracy"),
        val_accuracy=final.get("val_accuracy"),
        exploration_rate=float(final.get("exploration_rate", float("nan"))),
        already_finished=True,
    )
