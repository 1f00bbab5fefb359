"""``run_lottery``: iterative magnitude pruning with rewinding, one resumable training per level (SPEC §9).

Frankle & Carbin (ICLR 2019) find a lottery ticket by training, pruning the
smallest weights and rewinding the survivors to their initial values, level
after level; Frankle et al. (ICML 2020) rewind to iteration ``k`` of the dense
run instead, which finds tickets in deeper networks. This follows open_lth's
defaults: global ``|w|`` over every Conv/Linear weight (the classifier too,
unless ``keep_classifier_dense``), 20% of the remaining ones per level rounded
up, the optimiser fresh at every level. Counts follow
:func:`~fullspectrum.tickets.schedule.imp_levels` and land exactly on
``round(d·N)``. Every level trains the full budget (open_lth trains ``T - k``
iterations after rewinding; here each level is the same training a ticket gets
when ``train --mask lottery_mask.pt`` retrains it), so IMP costs one full
training per level, which the result reports.

The folder (kind ``lottery``)::

    DIR/run.json            config, status, final (levels, iterations, test_accuracy)
    DIR/level_00/           the dense training (its step-k weights saved as it passes them)
    DIR/rewind_weights.pt   the whole model's state at iteration k of level 0
    DIR/level_masks/level_RR.pt   level r's mask with the rewound weights (SPEC §8 mask file)
    DIR/level_RR/           static training of that mask from those weights
    DIR/levels.csv          level, kept, density, accuracy, iterations, run
    DIR/lottery_mask.pt     the ticket: the last level's mask and the rewound weights
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from fullspectrum import __version__
from fullspectrum.checkpoints.mask_file import load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.checkpoints.reading import safe_torch_load
from fullspectrum.errors import CheckpointError, FullSpectrumError
from fullspectrum.runs import RunStore
from fullspectrum.runs.run_file import read_info
from fullspectrum.tickets import folder
from fullspectrum.tickets.config import LotteryConfig
from fullspectrum.tickets.magnitude import classifier_name, global_magnitude_mask, kept_count
from fullspectrum.tickets.schedule import imp_levels
from fullspectrum.training import TrainConfig, TrainResult
from fullspectrum.training import checkpoint as ckpt
from fullspectrum.training.loop import Progress

MASK_NAME = "lottery_mask.pt"
LEVELS_NAME = "levels.csv"
REWIND_NAME = "rewind_weights.pt"
LEVEL_MASKS = "level_masks"
LEVEL_COLUMNS = ("level", "kept", "density", "accuracy", "iterations", "run")


@dataclass(frozen=True)
class LevelResult:
    """One trained level of the lineage (a row of ``levels.csv``)."""

    level: int
    """0 = the dense network."""
    kept: int
    """Prunable weights kept (``c_r`` of the schedule)."""
    density: float
    """Kept fraction of all maskable weights (a dense classifier counted as kept)."""
    accuracy: float | None
    """Test accuracy after the level's training."""
    iterations: int
    """Iterations the level trained."""
    run: str
    """Its training's subfolder."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LotteryResult:
    """How a call to :func:`run_lottery` ended."""

    run_dir: Path
    """The lottery folder."""
    status: str
    """``finished`` or ``interrupted`` (then calling again continues it)."""
    schedule: tuple[int, ...]
    """Kept prunable weights per level, ``c_0 = N`` to ``c_L = round(d·N)``."""
    levels: tuple[LevelResult, ...]
    """The levels trained so far."""
    mask_file: Path | None
    """``lottery_mask.pt`` once the search has finished."""
    iterations: int
    """Training iterations of every level trained (IMP's cost)."""
    test_accuracy: float | None
    """The last level's (the ticket's) test accuracy, once finished."""
    interrupted_at: tuple[int, int, int] | None = None
    """``(level, step, total_steps)`` where an interrupted call stopped."""
    already_finished: bool = False
    """The folder held a finished lineage; nothing was trained."""

    def as_dict(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "status": self.status,
            "schedule": list(self.schedule),
            "levels": [level.as_dict() for level in self.levels],
            "mask_file": None if self.mask_file is None else str(self.mask_file),
            "iterations": self.iterations,
            "test_accuracy": self.test_accuracy,
            "interrupted_at": None if self.interrupted_at is None else list(self.interrupted_at),
            "already_finished": self.already_finished,
        }


def level_name(level: int) -> str:
    return f"level_{level:02d}"


def run_lottery(
    config: LotteryConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    allow_nonempty: bool = False,
) -> LotteryResult:
    """Run (or continue) the IMP lineage ``config`` in ``out_dir``; see the module docstring.

    Every input is checked before anything is written (the dataset, the model, a density that keeps
    nothing or everything, ``rewind_iters`` beyond the training). ``progress(done, total)`` counts
    iterations over all levels; ``stop_event`` stops at the next iteration and leaves the folder
    resumable (status ``interrupted``).
    """
    setup = folder.setup_for(config.train)
    if config.rewind_iters > setup.total_steps:
        raise FullSpectrumError(
            f"rewind_iters {config.rewind_iters} is beyond the training ({setup.total_steps} iterations: "
            f"{setup.total_steps // setup.iters_per_epoch} epochs of {setup.iters_per_epoch}); give at most "
            f"{setup.total_steps}"
        )
    names = list(setup.shapes)
    dense_names = {classifier_name(names)} if config.keep_classifier_dense else set()
    prunable = [name for name in names if name not in dense_names]
    sizes = {name: math.prod(shape) for name, shape in setup.shapes.items()}
    schedule = imp_levels(sum(sizes[name] for name in prunable), config.density, config.prune_fraction)
    out_dir = Path(out_dir)
    artifacts = (MASK_NAME, LEVELS_NAME, REWIND_NAME, LEVEL_MASKS, *map(level_name, range(len(schedule))))
    store, info = folder.open_search(
        out_dir,
        kind="lottery",
        config=config.as_dict(),
        seed=config.train.seed,
        device=setup.device,
        artifacts=artifacts,
        allow_nonempty=allow_nonempty,
    )
    if store is None:
        return _finished_result(out_dir, info, schedule)
    lineage = _Lineage(config, out_dir, store, setup, schedule, prunable, sizes)
    store.update_info(schedule=list(schedule), total_steps=setup.total_steps * len(schedule))
    outcome = folder.guarded(store, lambda: lineage.run(progress, stop_event))
    if outcome.status == "interrupted":
        store.finish("interrupted")
        return outcome
    store.finish("finished", final=_final(outcome, config))
    return outcome


def resume_lottery(
    run_dir: str | Path, *, progress: Progress | None = None, stop_event: threading.Event | None = None
) -> LotteryResult:
    """Continue the lineage in ``run_dir`` with the options it was started with."""
    info = read_info(Path(run_dir))
    if info.get("kind") != "lottery":
        raise CheckpointError(f"{run_dir}: a {info.get('kind')!r} run, not a lottery")
    return run_lottery(
        LotteryConfig.from_dict(info["config"]), run_dir, progress=progress, stop_event=stop_event
    )


class _Lineage:
    """The levels of one lineage, each decided from files (so a killed one picks up where it stood)."""

    def __init__(
        self,
        config: LotteryConfig,
        out_dir: Path,
        store: RunStore,
        setup: folder.SearchSetup,
        schedule: tuple[int, ...],
        prunable: list[str],
        sizes: dict[str, int],
    ) -> None:
        self.config, self.out_dir, self.store, self.setup = config, out_dir, store, setup
        self.schedule, self.prunable, self.sizes = schedule, prunable, sizes

    def path(self, name: str) -> Path:
        return self.store.artifact_path(name)

    def level_mask_path(self, level: int) -> Path:
        return self.path(LEVEL_MASKS) / f"{level_name(level)}.pt"

    def run(self, progress, stop_event) -> LotteryResult:
        total = self.setup.total_steps * len(self.schedule)
        levels: list[LevelResult] = []
        for level in range(len(self.schedule)):
            run_dir = self.path(level_name(level))
            offset = folder.offset_progress(progress, level * self.setup.total_steps, total)
            result = folder.train_or_resume(
                run_dir,
                self.level_config(level),
                step_hook=self.rewind_hook() if level == 0 else None,
                progress=offset,
                stop_event=stop_event,
            )
            if result.status == "interrupted":
                return self.result(levels, "interrupted", (level, result.step, result.total_steps))
            levels.append(self.level_result(level, result))
            folder.write_table(self.path(LEVELS_NAME), [row.as_dict() for row in levels], LEVEL_COLUMNS)
            if level + 1 < len(self.schedule) and not self.level_mask_path(level + 1).is_file():
                self.prune(level + 1)
        last = load_mask_checkpoint(self.level_mask_path(len(self.schedule) - 1))
        meta = {**last.meta, "generator": "lottery"}
        save_mask_checkpoint(self.path(MASK_NAME), last.masks, last.state_dict, meta)
        return self.result(levels, "finished", None)

    def level_config(self, level: int) -> TrainConfig:
        shared = self.config.train
        if level == 0:
            return dataclasses.replace(shared, method="dense", density=1.0, sparse_init=False)
        mask = str(self.level_mask_path(level).resolve())
        return dataclasses.replace(shared, method="static", mask=mask, sparse_init=False)

    def rewind_hook(self):
        """Saves the whole model's state when level 0 reaches iteration ``k`` (before that step is recorded)."""
        path, k = self.path(REWIND_NAME), self.config.rewind_iters

        def hook(session) -> None:
            if session.step == k:
                folder.save_state(path, session.model.state_dict(), step=k)

        return hook

    def rewind_weights(self) -> dict[str, torch.Tensor]:
        path = self.path(REWIND_NAME)
        if not path.is_file():
            raise CheckpointError(
                f"{path}: missing (the dense level records it); delete {level_name(0)} to redo it"
            )
        payload = safe_torch_load(path)
        if not isinstance(payload, dict) or payload.get("step") != self.config.rewind_iters:
            raise CheckpointError(f"{path}: not the weights of iteration {self.config.rewind_iters}")
        return payload["state_dict"]

    def prune(self, level: int) -> None:
        """Level ``level``'s mask: the previous level's trained weights pruned to ``c_level`` by global |w|."""
        previous = self.path(level_name(level - 1))
        trained = ckpt.load_checkpoint(previous / ckpt.CHECKPOINT_NAME)["model"]
        weights = {name: trained[name] for name in self.setup.shapes}
        if level == 1:
            current = {name: torch.ones(shape, dtype=torch.bool) for name, shape in self.setup.shapes.items()}
        else:
            current = load_mask_checkpoint(self.level_mask_path(level - 1)).masks
        masks = global_magnitude_mask(weights, self.schedule[level], within=current, prunable=self.prunable)
        meta = {
            "generator": "lottery-level",
            "level": level,
            "levels": len(self.schedule) - 1,
            "kept": self.schedule[level],
            "prunable": self.schedule[0],
            "density": self.density(masks),
            "target_density": self.config.density,
            "rewind_iters": self.config.rewind_iters,
            "keep_classifier_dense": self.config.keep_classifier_dense,
            "model": self.config.train.model,
            "data": self.config.train.data,
            "seed": self.config.train.seed,
            "fullspectrum": __version__,
            "torch": torch.__version__,
        }
        save_mask_checkpoint(self.level_mask_path(level), masks, self.rewind_weights(), meta)

    def density(self, masks) -> float:
        return kept_count(masks) / sum(self.sizes.values())

    def level_result(self, level: int, result: TrainResult) -> LevelResult:
        dense_kept = sum(size for name, size in self.sizes.items() if name not in self.prunable)
        return LevelResult(
            level=level,
            kept=self.schedule[level],
            density=(self.schedule[level] + dense_kept) / sum(self.sizes.values()),
            accuracy=result.test_accuracy,
            iterations=result.step,
            run=level_name(level),
        )

    def result(self, levels, status: str, interrupted_at) -> LotteryResult:
        finished = status == "finished"
        return LotteryResult(
            run_dir=self.out_dir,
            status=status,
            schedule=self.schedule,
            levels=tuple(levels),
            mask_file=self.path(MASK_NAME) if finished else None,
            iterations=sum(level.iterations for level in levels),
            test_accuracy=levels[-1].accuracy if finished else None,
            interrupted_at=interrupted_at,
        )


def _final(outcome: LotteryResult, config: LotteryConfig) -> dict:
    last = outcome.levels[-1]
    return {
        "test_accuracy": outcome.test_accuracy,
        "density": last.density,
        "kept": last.kept,
        "pruning_levels": len(outcome.levels) - 1,
        "iterations": outcome.iterations,
        "search_iterations": outcome.iterations - last.iterations,
        "rewind_iters": config.rewind_iters,
        "levels": [level.as_dict() for level in outcome.levels],
    }


def _finished_result(out_dir: Path, info: dict, schedule: tuple[int, ...]) -> LotteryResult:
    final = info.get("final") or {}
    levels = tuple(LevelResult(**row) for row in final.get("levels", []))
    return LotteryResult(
        run_dir=out_dir,
        status="finished",
        schedule=tuple(info.get("schedule", schedule)),
        levels=levels,
        mask_file=out_dir / MASK_NAME,
        iterations=int(final.get("iterations", 0)),
        test_accuracy=final.get("test_accuracy"),
        already_finished=True,
    )
