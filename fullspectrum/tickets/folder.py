"""The folder of a ticket search: a run of kind ``lottery`` or ``earlybird`` whose trainings are its subfolders.

SPEC §8: a folder that holds several runs has a ``run.json`` of its own, with
the search's config, status, heartbeat and ``final`` results, and each training
in a subfolder that is an ordinary, resumable ``train`` run. Everything the
search decides is kept in files as soon as it is decided (IMP's rewind point
and level masks, Early-Bird's per-epoch masks and ticket), written atomically,
so a search killed at any moment continues where it stood: a training that had
started resumes from its checkpoint, one that had not starts, and a decided
mask is read back rather than decided again.

Invoking a search again on its folder with the same options continues it; other
options are refused, naming them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from fullspectrum.checkpoints.atomic import TMP_SUFFIX, json_safe, write_atomic
from fullspectrum.data import load_dataset, make_loader
from fullspectrum.devices import resolve_device
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import build_model
from fullspectrum.runs import RunError, RunStore
from fullspectrum.runs.mask_files import MASK_DIR
from fullspectrum.runs.outputs import RUN_FILES
from fullspectrum.runs.run_file import RUN_FILE, read_info
from fullspectrum.training import TrainConfig, TrainResult, maskable_weights, resume, train
from fullspectrum.training.loop import Progress, StepHook


@dataclass(frozen=True)
class SearchSetup:
    """What a search knows before anything is written: the model's weights and the run's length."""

    shapes: dict[str, tuple[int, ...]]
    """Every maskable (Conv/Linear) weight's shape, by parameter name, in module order."""
    iters_per_epoch: int
    """Minibatches per epoch."""
    total_steps: int
    """Iterations of one training (epochs × iterations per epoch)."""
    device: str
    """The device the trainings run on."""


def setup_for(train_config: TrainConfig) -> SearchSetup:
    """Load the data and build the model once, so a bad dataset, model or length is refused up front."""
    splits = load_dataset(
        train_config.data, data_dir=train_config.data_dir, split_seed=train_config.split_seed
    )
    batch_size = train_config.batch_size or train_config.preset.batch_size
    iters = max(1, len(make_loader(splits.train, batch_size, shuffle=True, seed=0)))
    resolved = train_config.resolved(iters)
    model = build_model(resolved.model, splits.num_classes, splits.input_shape, **resolved.model_options)
    shapes = {name: tuple(weight.shape) for name, weight in maskable_weights(model).items()}
    device = str(resolve_device(train_config.device))
    return SearchSetup(shapes, iters, int(resolved.epochs) * iters, device)


def _plain(config: dict) -> dict:
    return json.loads(json.dumps(json_safe(config)))


def open_search(
    out_dir: str | Path,
    *,
    kind: str,
    config: dict,
    seed: int,
    device: str,
    artifacts: Iterable[str],
    allow_nonempty: bool = False,
) -> tuple[RunStore | None, dict | None]:
    """The search's store, new or continued; ``(None, info)`` when ``out_dir`` holds it finished.

    A folder holding a search of this kind with other options is refused, naming them; any other
    place obeys :func:`~fullspectrum.runs.outputs.check_new_run_folder` (a foreign, non-empty folder
    is refused unless ``allow_nonempty``).
    """
    path = Path(out_dir)
    if (path / RUN_FILE).is_file():
        info = read_info(path)
        if info.get("kind") == kind:
            differing = sorted(
                key
                for key in set(info["config"]) | set(config)
                if info["config"].get(key) != _plain(config).get(key)
            )
            if differing:
                shown = ", ".join(
                    f"{key} {info['config'].get(key)!r} there, {config.get(key)!r} now"
                    for key in differing[:3]
                )
                raise FullSpectrumError(
                    f"{path}: holds a {kind} with other options ({shown}); give the same options to "
                    f"continue it, or choose another folder"
                )
            if info.get("status") == "finished":
                return None, info
            store = RunStore.open(path, readonly=False)  # a second live process stops here
            store.update_info(status="running", error=None)
            return store, info
    store = RunStore.create(
        path,
        kind=kind,
        config=config,
        seed=seed,
        device=device,
        artifacts=tuple(artifacts),
        allow_nonempty=allow_nonempty,
    )
    return store, None


def train_or_resume(
    run_dir: Path,
    config: TrainConfig,
    *,
    step_hook: StepHook | None = None,
    progress: Progress | None = None,
    stop_event=None,
) -> TrainResult:
    """Train ``config`` into ``run_dir``, or continue the run already there (a finished one is left as is)."""
    if (run_dir / RUN_FILE).is_file():
        return resume(run_dir, progress=progress, stop_event=stop_event, step_hook=step_hook)
    if run_dir.exists():
        _remove_half_made_run(run_dir)
    return train(config, run_dir, progress=progress, stop_event=stop_event, step_hook=step_hook)


def _remove_half_made_run(run_dir: Path) -> None:
    """Remove a training folder killed while it was being created (only run files in it, no run.json)."""
    ours = set(RUN_FILES) | {MASK_DIR}
    for entry in os.scandir(run_dir):
        temporary = entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX)
        empty_masks = entry.name == MASK_DIR and entry.is_dir() and not any(os.scandir(entry.path))
        if not (temporary or empty_masks or (entry.name in ours and entry.is_file())):
            raise RunError(f"{run_dir}: holds {entry.name} but no {RUN_FILE}; move it or delete the folder")
    shutil.rmtree(run_dir)


def finished_steps(run_dir: Path) -> int:
    """Iterations a finished training ran (``final['steps']`` of its ``run.json``)."""
    return int(read_info(run_dir).get("final", {}).get("steps", 0))


def offset_progress(progress: Progress | None, offset: int, total: int) -> Progress | None:
    """``progress`` over the whole search, for one training that starts ``offset`` iterations into it."""
    if progress is None:
        return None
    return lambda done, _: progress(min(total, offset + done), total)


def write_table(path: Path, rows: list[dict], columns: Iterable[str]) -> None:
    """Write ``rows`` as CSV (header even when empty) atomically."""
    frame = pd.DataFrame(rows, columns=list(columns))
    write_atomic(path, lambda handle: handle.write(frame.to_csv(index=False).encode("utf-8")))


def save_state(path: Path, state: dict[str, torch.Tensor], **info) -> None:
    """Write a copy of a model's state dict (CPU tensors, bits unchanged) with plain ``info``, atomically."""
    payload = {"state_dict": {name: tensor.detach().to("cpu", copy=True) for name, tensor in state.items()}}
    write_atomic(path, lambda handle: torch.save({**payload, **info}, handle))


def end_on_error(store: RunStore, error: BaseException) -> None:
    """Mark the search as the error left it: interrupted after Ctrl-C, else failed with its reason."""
    if isinstance(error, KeyboardInterrupt):
        store.finish("interrupted")
        return
    reason = str(error) if isinstance(error, FullSpectrumError) else f"{type(error).__name__}: {error}"
    store.update_info(error=reason)
    store.finish("failed")


def guarded(store: RunStore, work: Callable[[], object]):
    """Run ``work()`` with the search's heartbeat; if it raises, end the search as the error says."""
    try:
        with store.heartbeat_thread():
            return work()
    except BaseException as error:
        try:
            end_on_error(store, error)
        except (FullSpectrumError, OSError):
            store.close()
        raise
