"""``run_earlybird``: draw an unstructured Early-Bird ticket from dense training, then train it (SPEC §9).

You et al. (ICLR 2020) observe that the mask magnitude pruning would give
stops changing early in dense training, so the ticket can be drawn after a few
epochs rather than after full training as IMP does. Here the dense run takes,
at the end of every epoch, the global-magnitude mask at the target density;
the first epoch whose mask is within 0.1 (kept-set distance) of each of the
previous four ends the dense run there, and the ticket is that epoch's mask
with that epoch's weights (at the last epoch when none qualifies). The sparse
network then trains from the ticket's weights, kept exactly, for the standard
budget. The ticket's epoch is the search's cost.

The folder (kind ``earlybird``)::

    DIR/run.json            config, status, final (ticket_epoch, iterations, test_accuracy...)
    DIR/search/             the dense training, ended at the ticket's epoch
    DIR/masks/step_S.npz    the magnitude mask at the end of each epoch (S = epoch × iterations per epoch)
    DIR/earlybird_mask.pt   the ticket (SPEC §8 mask file: its mask and the weights of its epoch)
    DIR/final/              the ticket's static training
    DIR/epochs.csv          epoch, step, distance_1.., emerged, ticket
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
from fullspectrum.errors import CheckpointError
from fullspectrum.runs import RunStore
from fullspectrum.runs.run_file import read_info
from fullspectrum.tickets import folder
from fullspectrum.tickets.config import EarlyBirdConfig
from fullspectrum.tickets.early_bird import EarlyBirdCheck, check_epoch, early_bird_checks
from fullspectrum.tickets.magnitude import global_magnitude_mask
from fullspectrum.tickets.schedule import target_count
from fullspectrum.training.loop import Progress

MASK_NAME = "earlybird_mask.pt"
EPOCHS_NAME = "epochs.csv"
SEARCH_RUN = "search"
FINAL_RUN = "final"


@dataclass(frozen=True)
class EarlyBirdResult:
    """How a call to :func:`run_earlybird` ended."""

    run_dir: Path
    """The Early-Bird folder."""
    status: str
    """``finished`` or ``interrupted`` (then calling again continues it)."""
    ticket_epoch: int | None
    """Epoch the ticket was drawn at (its cost: that many epochs of dense training)."""
    emerged: bool | None
    """The criterion held there (False: no epoch qualified, the last one's mask was taken)."""
    checks: tuple[EarlyBirdCheck, ...]
    """The criterion at every epoch up to the ticket's (empty for a folder found finished: see ``epochs.csv``)."""
    mask_file: Path | None
    """``earlybird_mask.pt`` once the ticket is drawn."""
    search_iterations: int
    """Dense iterations up to the ticket."""
    iterations: int
    """Search plus the ticket's training."""
    test_accuracy: float | None
    """The ticket's test accuracy after its training."""
    density: float | None = None
    """Kept fraction of the maskable weights in the ticket."""
    interrupted_at: tuple[str, int, int] | None = None
    """``(stage, step, total_steps)`` where an interrupted call stopped (stage ``search`` or ``final``)."""
    already_finished: bool = False
    """The folder held a finished search; nothing was trained."""

    def as_dict(self) -> dict:
        row = dataclasses.asdict(self)
        row.update(
            run_dir=str(self.run_dir),
            checks=[check.as_dict() for check in self.checks],
            mask_file=None if self.mask_file is None else str(self.mask_file),
            interrupted_at=None if self.interrupted_at is None else list(self.interrupted_at),
        )
        return row


def run_earlybird(
    config: EarlyBirdConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    allow_nonempty: bool = False,
) -> EarlyBirdResult:
    """Run (or continue) the Early-Bird search ``config`` in ``out_dir``; see the module docstring.

    Inputs are checked before anything is written; ``progress(done, total)`` counts iterations over
    the search's full budget and the ticket's training; ``stop_event`` leaves the folder resumable.
    """
    setup = folder.setup_for(config.train)
    kept = target_count(sum(math.prod(shape) for shape in setup.shapes.values()), config.density)
    out_dir = Path(out_dir)
    store, info = folder.open_search(
        out_dir,
        kind="earlybird",
        config=config.as_dict(),
        seed=config.train.seed,
        device=setup.device,
        artifacts=(MASK_NAME, EPOCHS_NAME, SEARCH_RUN, FINAL_RUN),
        allow_nonempty=allow_nonempty,
    )
    if store is None:
        return _finished_result(out_dir, info)
    search = _Search(config, out_dir, store, setup, kept)
    outcome = folder.guarded(store, lambda: search.run(progress, stop_event))
    if outcome.status == "interrupted":
        store.finish("interrupted")
        return outcome
    store.finish("finished", final=_final(outcome, setup))
    return outcome


def resume_earlybird(
    run_dir: str | Path, *, progress: Progress | None = None, stop_event: threading.Event | None = None
) -> EarlyBirdResult:
    """Continue the Early-Bird search in ``run_dir`` with the options it was started with."""
    info = read_info(Path(run_dir))
    if info.get("kind") != "earlybird":
        raise CheckpointError(f"{run_dir}: a {info.get('kind')!r} run, not an Early-Bird search")
    config = EarlyBirdConfig.from_dict(info["config"])
    return run_earlybird(config, run_dir, progress=progress, stop_event=stop_event)


class _Search:
    """The dense search and the ticket's training, each decided from files."""

    def __init__(self, config: EarlyBirdConfig, out_dir: Path, store: RunStore, setup, kept: int) -> None:
        self.config, self.out_dir, self.store, self.setup, self.kept = config, out_dir, store, setup, kept
        self.recent: dict[int, dict[str, torch.Tensor]] = {}  # step -> mask, the last `window` epochs

    def run(self, progress, stop_event) -> EarlyBirdResult:
        total_steps = self.setup.total_steps
        search = folder.train_or_resume(
            self.store.artifact_path(SEARCH_RUN),
            dataclasses.replace(self.config.train, method="dense", density=1.0, sparse_init=False),
            step_hook=self.epoch_hook,
            progress=folder.offset_progress(progress, 0, 2 * total_steps),
            stop_event=stop_event,
        )
        if search.status == "interrupted":
            return self.result("interrupted", ("search", search.step, search.total_steps))
        ticket = self.ticket()
        final = folder.train_or_resume(
            self.store.artifact_path(FINAL_RUN),
            dataclasses.replace(
                self.config.train, method="static", mask=str(ticket.resolve()), sparse_init=False
            ),
            progress=folder.offset_progress(progress, total_steps, 2 * total_steps),
            stop_event=stop_event,
        )
        if final.status == "interrupted":
            return self.result("interrupted", ("final", final.step, final.total_steps))
        checks = self.checks()
        folder.write_table(self.store.artifact_path(EPOCHS_NAME), _rows(checks, self), self.columns())
        return self.result("finished", None, test_accuracy=final.test_accuracy, final_steps=final.step)

    def epoch_hook(self, session) -> bool:
        """At each epoch's end: its mask, the criterion, and the ticket when drawn (True ends the search)."""
        step, per_epoch = session.step, session.iters_per_epoch
        if step == 0 or step % per_epoch:
            return False
        mask = global_magnitude_mask(session.weights, self.kept)
        self.store.save_masks(step, mask)
        epoch = step // per_epoch
        window = self.config.window
        history = [self.mask_at(e * per_epoch) for e in range(max(1, epoch - window), epoch)]
        check = check_epoch([*history, mask], window=window, threshold=self.config.threshold)
        self.recent = {s: m for s, m in self.recent.items() if s > step - window * per_epoch}
        self.recent[step] = mask
        if check.emerged or step >= session.total_steps:
            meta = self.ticket_meta(epoch, step, check.emerged)
            save_mask_checkpoint(self.store.artifact_path(MASK_NAME), mask, session.model.state_dict(), meta)
        return check.emerged

    def mask_at(self, step: int) -> dict[str, torch.Tensor]:
        if step not in self.recent:
            self.recent[step] = self.store.load_masks(step)
        return self.recent[step]

    def ticket_meta(self, epoch: int, step: int, emerged: bool) -> dict:
        total = sum(math.prod(shape) for shape in self.setup.shapes.values())
        return {
            "generator": "earlybird",
            "density": self.kept / total,
            "target_density": self.config.density,
            "ticket_epoch": epoch,
            "ticket_step": step,
            "emerged": emerged,
            "window": self.config.window,
            "threshold": self.config.threshold,
            "model": self.config.train.model,
            "data": self.config.train.data,
            "seed": self.config.train.seed,
            "fullspectrum": __version__,
            "torch": torch.__version__,
        }

    def ticket(self) -> Path:
        path = self.store.artifact_path(MASK_NAME)
        if not path.is_file():
            raise CheckpointError(
                f"{path}: missing (the dense search writes it); delete {SEARCH_RUN} to redo it"
            )
        return path

    def checks(self) -> list[EarlyBirdCheck]:
        meta = load_mask_checkpoint(self.ticket()).meta
        per_epoch = self.setup.iters_per_epoch
        masks = [self.store.load_masks(e * per_epoch) for e in range(1, int(meta["ticket_epoch"]) + 1)]
        return early_bird_checks(masks, window=self.config.window, threshold=self.config.threshold)

    def columns(self) -> list[str]:
        distances = [f"distance_{j}" for j in range(1, self.config.window + 1)]
        return ["epoch", "step", *distances, "emerged", "ticket"]

    def result(self, status, interrupted_at, *, test_accuracy=None, final_steps: int = 0) -> EarlyBirdResult:
        finished = status == "finished"
        meta = load_mask_checkpoint(self.ticket()).meta if finished else {}
        checks = tuple(self.checks()) if finished else ()
        search_steps = int(meta.get("ticket_step", 0))
        return EarlyBirdResult(
            run_dir=self.out_dir,
            status=status,
            ticket_epoch=int(meta["ticket_epoch"]) if finished else None,
            emerged=bool(meta["emerged"]) if finished else None,
            checks=checks,
            mask_file=self.ticket() if finished else None,
            search_iterations=search_steps,
            iterations=search_steps + final_steps,
            test_accuracy=test_accuracy,
            density=float(meta["density"]) if finished else None,
            interrupted_at=interrupted_at,
        )


def _rows(checks: list[EarlyBirdCheck], search: _Search) -> list[dict]:
    rows = []
    for check in checks:
        row = {"epoch": check.epoch, "step": check.epoch * search.setup.iters_per_epoch}
        for j in range(1, search.config.window + 1):
            row[f"distance_{j}"] = check.distances[j - 1] if j <= len(check.distances) else math.nan
        row.update(emerged=check.emerged, ticket=check.epoch == len(checks))
        rows.append(row)
    return rows


def _final(outcome: EarlyBirdResult, setup) -> dict:
    return {
        "test_accuracy": outcome.test_accuracy,
        "density": outcome.density,
        "ticket_epoch": outcome.ticket_epoch,
        "ticket_step": outcome.search_iterations,
        "emerged": outcome.emerged,
        "search_iterations": outcome.search_iterations,
        "final_iterations": outcome.iterations - outcome.search_iterations,
        "iterations": outcome.iterations,
        "epochs": setup.total_steps // setup.iters_per_epoch,
    }


def _finished_result(out_dir: Path, info: dict) -> EarlyBirdResult:
    final = info.get("final") or {}
    return EarlyBirdResult(
        run_dir=out_dir,
        status="finished",
        ticket_epoch=final.get("ticket_epoch"),
        emerged=final.get("emerged"),
        checks=(),
        mask_file=out_dir / MASK_NAME,
        search_iterations=int(final.get("search_iterations", 0)),
        iterations=int(final.get("iterations", 0)),
        test_accuracy=final.get("test_accuracy"),
        density=final.get("density"),
        already_finished=True,
    )
