"""The trainer: dense, static-sparse, ITOP-Rand/SET and RigL training with spectral tracking.

``train(config, out_dir)`` checks every input, then runs SPEC §6's
sparse-to-sparse training (Liu et al., ITOP, ICML 2021; Evci et al., RigL, ICML
2020) and writes a run directory (SPEC §8) through
:class:`fullspectrum.runs.RunStore`. At step 0, every
``snapshot_every`` iterations, at every mask update and at the final step it
records each layer's full-spectrum metrics, moving distance from step 0 and
exploration rate, which is how FS23 (Hoang et al., NeurIPS 2023) watched random
growth turn masks into Ramanujan-like expanders. Each snapshot also stores the
masks and an atomic training checkpoint, so ``resume(run_dir)`` continues a
killed or interrupted run and ends with exactly the rows (bit-identical on CPU)
an uninterrupted run would have written. The loop itself is
:class:`fullspectrum.training.loop.Session`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from pathlib import Path

import numpy as np
import torch

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.devices import resolve_device
from fullspectrum.errors import CheckpointError, FullSpectrumError
from fullspectrum.runs import RunStore
from fullspectrum.runs.outputs import NONEMPTY_OPT_IN, check_new_run_folder
from fullspectrum.seeds import TRAIN_NUMPY_STREAM, derived_seed
from fullspectrum.training import checkpoint as ckpt
from fullspectrum.training.config import TrainConfig
from fullspectrum.training.initial import load_splits, mask_file_density, resolved_config
from fullspectrum.training.loop import Progress, Session, StepHook, TrainResult
from fullspectrum.training.spectra_worker import loop_threads, spectra_device


def _end(store, status: str, error: BaseException | None = None) -> None:
    """Mark an unfinished run's status (a failed one with its ``error``), unless ``finish`` closed it."""
    with contextlib.suppress(FullSpectrumError, OSError):
        if error is not None:
            reason = (
                str(error) if isinstance(error, FullSpectrumError) else f"{type(error).__name__}: {error}"
            )
            store.update_info(error=reason)
        store.finish(status=status)


def _run(session: Session, progress, stop_event) -> TrainResult:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(loop_threads(session.worker, session.device))
        spectra = "worker process" if session.worker else "inline"
        solved_on = spectra_device(session.device) or "cpu"
        session.store.update_info(
            spectra=spectra, spectra_device=solved_on, torch_threads=torch.get_num_threads()
        )
        return session.run(progress, stop_event)
    except KeyboardInterrupt:
        # the last snapshot's checkpoint is intact; resume truncates any rows written after it
        _end(session.store, "interrupted")
        raise
    except BaseException as error:
        _end(session.store, "failed", error)
        raise
    finally:
        torch.set_num_threads(threads)
        session.close_writer()
        session.store.close()


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    allow_nonempty: bool = False,
    step_hook: StepHook | None = None,
) -> TrainResult:
    """Train a model as ``config`` says and write the run directory ``out_dir`` (SPEC §8).

    Every input (the folder, the dataset, the model, the mask file against the model) is
    checked before ``out_dir`` is touched, so a refused one leaves nothing behind; ``out_dir``
    must be new or empty unless ``allow_nonempty`` (then no file in it is replaced, see
    :func:`~fullspectrum.runs.outputs.check_new_run_folder`). ``progress(done, total)`` is
    called after every iteration; setting ``stop_event`` stops at the next iteration
    boundary, saves a checkpoint and leaves an ``interrupted`` run that :func:`resume`
    continues. A run whose loss or weights stop being finite raises
    :class:`~fullspectrum.training.recording.TrainingDiverged` and is left ``failed``, with
    the reason in ``run.json["error"]``. ``step_hook`` (see
    :data:`~fullspectrum.training.loop.StepHook`) sees every step and may end the run early.
    """
    device = resolve_device(config.device)
    place = dict(artifacts=(ckpt.CHECKPOINT_NAME,), allow_nonempty=allow_nonempty)
    check_new_run_folder(out_dir, **place, opt_in=NONEMPTY_OPT_IN)  # before the slower checks below
    mask_file = None
    if config.mask is not None:
        mask_file = load_mask_checkpoint(config.mask)
        config = dataclasses.replace(config, density=mask_file_density(config.mask, mask_file))
    splits = load_splits(config)
    torch.manual_seed(config.seed)  # model initialisation draws from torch's global generator
    np.random.seed(derived_seed(config.seed, TRAIN_NUMPY_STREAM) % 2**32)
    resolved = resolved_config(config, splits)
    session = Session(resolved, device, splits)  # an unknown model fails here
    session.step_hook = step_hook
    session.prepare(mask_file)  # a mask that does not fit the model fails here
    store = RunStore.create(
        out_dir, kind="train", config=session.config.as_dict(), seed=config.seed, device=str(device), **place
    )
    try:
        session.attach(store)
        store.update_info(total_steps=session.total_steps)  # lets readers show progress as a fraction
        session.initialise()
    except KeyboardInterrupt:
        session.close_writer()
        _end(store, "interrupted")  # resume starts it over (no step-0 checkpoint yet)
        store.close()
        raise
    except BaseException as error:
        session.close_writer()
        _end(store, "failed", error)
        store.close()
        raise
    return _run(session, progress, stop_event)


def resume(
    run_dir: str | Path,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    step_hook: StepHook | None = None,
) -> TrainResult:
    """Continue an interrupted or killed training run from its last checkpoint.

    Rows written after that checkpoint are deleted first, so the finished run
    has exactly the rows of an uninterrupted one. A finished run is left alone
    (``already_finished=True``); a run another process is still writing is refused
    (the store's writer lock). ``step_hook`` is the one the run was started with (it is not stored).
    """
    reader = RunStore.open(run_dir)  # read-only: a finished run (say, a cached one) is not touched
    info = reader.info
    if info.get("kind") != "train":
        raise CheckpointError(f"{run_dir}: a {info.get('kind')!r} run, not a training run")
    if info.get("status") == "finished":
        return finished_result(reader, info)
    if "tracker" in info:  # written beside a loop of the user's own, which nothing here can continue
        raise CheckpointError(
            f"{run_dir}: written by fullspectrum.Tracker beside your own loop; rerun that loop"
        )
    store = RunStore.open(run_dir, readonly=False)
    session = None
    try:
        config = TrainConfig.from_dict(info["config"])
        device = resolve_device(config.device)
        splits = load_splits(config)
        checkpoint_path = store.artifact_path(ckpt.CHECKPOINT_NAME)
        payload = ckpt.load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        torch.manual_seed(config.seed)
        np.random.seed(derived_seed(config.seed, TRAIN_NUMPY_STREAM) % 2**32)
        session = Session(config, device, splits)
        session.step_hook = step_hook
        session.attach(store)
        if payload is None:  # killed before the step-0 checkpoint: start over
            store.truncate_after(-1)
            session.initialise()
        else:
            store.truncate_after(int(payload["step"]))
            session.restore(payload)
        store.update_info(status="running")
    except BaseException:
        if session is not None:
            session.close_writer()
        store.close()  # the run stays as it was: still resumable once the problem is fixed
        raise
    return _run(session, progress, stop_event)


def finished_result(store, info: dict) -> TrainResult:
    """What ``resume`` returns for a run that has already finished (``store`` is closed)."""
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
