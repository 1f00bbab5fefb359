"""Running a sweep: skip what has finished, resume what was interrupted, run the rest, keep the table.

:func:`run_sweep` opens the sweep folder (:mod:`~fullspectrum.sweeps.folder`), looks at every
point's run folder and

* leaves a **finished** run alone (its row comes from its ``run.json``);
* continues an **unfinished** one (interrupted, failed, or ``running`` with nobody writing it:
  a killed sweep's) with ``COMMAND --resume FOLDER``, which repeats nothing it had recorded;
* starts a **new** one with the point's command line;

then hands the points to a backend (:mod:`~fullspectrum.sweeps.backends`) as they become ready
(a chained point when its upstream point has finished; if that one did not finish, it is
``skipped``). A point that fails is reported (:func:`notify` gets one line) and the others go
on. After every point that ends, ``points.csv`` is rewritten (atomically), so the table is
current even if the sweep is killed. Every point runs with the same thread counts
(``OMP_NUM_THREADS``, one unless the environment says otherwise) on either backend, so the same
grid gives the same numbers locally and on Ray.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fullspectrum.distributed import ProcessOutcome
from fullspectrum.runs import RunError
from fullspectrum.runs.outputs import remove_partial_run
from fullspectrum.runs.run_file import RUN_FILE, read_info
from fullspectrum.sweeps.backends import INTERRUPTED, Backend, Job
from fullspectrum.sweeps.commands import CommandSpec
from fullspectrum.sweeps.folder import log_file, open_sweep_folder, write_points_table
from fullspectrum.sweeps.grid import SweepGrid
from fullspectrum.sweeps.points import Point

STATUSES = ("pending", "running", "finished", "failed", "interrupted", "skipped")
"""A point's ``status`` in ``points.csv``."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
POLL_S = 0.5
"""How often the driver looks for ended points (they end in seconds at the fastest)."""
Progress = Callable[[int, int], None]
Notify = Callable[[str], None]


@dataclass
class PointState:
    """Where one point stands (the driver's working copy of its ``points.csv`` row)."""

    point: Point
    status: str = "pending"
    error: str = ""
    final: dict = field(default_factory=dict)
    ran: bool = False
    """Whether this invocation started or resumed it."""
    resume: bool = False
    """Whether its run exists unfinished (it is continued with ``--resume``)."""


@dataclass(frozen=True)
class SweepResult:
    """How a sweep ended."""

    folder: Path
    """The sweep folder."""
    points: tuple[PointState, ...]
    """Every point, in grid order."""
    interrupted: bool
    """Whether Ctrl-C stopped it (the sweep and its unfinished runs resume next time)."""

    def count(self, status: str) -> int:
        return sum(state.status == status for state in self.points)

    @property
    def ran(self) -> int:
        """Points this invocation started or resumed."""
        return sum(state.ran for state in self.points)

    @property
    def all_finished(self) -> bool:
        return self.count("finished") == len(self.points)


def point_threads() -> int:
    """Threads each point computes with: ``OMP_NUM_THREADS`` of the driver's environment, else 1."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


def run_sweep(
    grid: SweepGrid,
    points: tuple[Point, ...],
    argvs: Mapping[str, list[str]],
    out: str | Path,
    backend: Backend,
    *,
    commands: Mapping[str, CommandSpec],
    grid_text: str,
    backend_name: str = "local",
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> SweepResult:
    """Run every point of ``grid`` not finished yet into ``out`` (see the module docstring).

    ``points`` and ``argvs``: the grid expanded and checked
    (:func:`~fullspectrum.sweeps.points.expand_grid`, :func:`~fullspectrum.sweeps.points.check_points`);
    ``commands``: their :class:`CommandSpec` (whether each resumes); ``progress(done, total)``
    counts the points this invocation runs; ``notify(line)`` hears of each failure.
    """
    out = Path(out).absolute()
    devices = sorted({str(point.options.get("device", "auto")) for point in points})
    store = open_sweep_folder(
        out, grid.as_dict(), grid_text=grid_text, device=",".join(devices) or "auto", source=grid.source
    )
    states = {point.name: PointState(point) for point in points}
    for state in states.values():
        _inspect(state, out, commands[state.point.command])
    todo = [state for state in states.values() if state.status == "pending"]
    table = _Table(out, grid, states)
    total, done = len(todo), 0
    store.update_info(backend=backend_name, progress={"done": 0, "total": total})
    table.write()
    if progress is not None:
        progress(0, total)
    interrupted = False
    with store.heartbeat_thread():
        try:
            while True:
                _skip_blocked(states)
                for state in _ready(todo, states, backend.room):
                    job = _job(state, out, argvs)
                    with open(job.log, "a", encoding="utf-8") as log:  # which command this output is of
                        log.write(f"$ fullspectrum {shlex.join(job.args)}\n")
                    backend.submit(job)
                    state.status, state.ran = "running", True
                    table.write()
                if not len(backend):
                    break
                ended = backend.wait(POLL_S)
                for name, outcome in ended:
                    _settle(states[name], out, outcome, notify)
                    done += 1
                if ended:
                    table.write()
                    store.update_info(progress={"done": done, "total": total})
                    if progress is not None:
                        progress(done, total)
        except BaseException as error:
            for name, outcome in backend.stop():
                _settle(states[name], out, outcome, notify=None)
            table.write()
            if not isinstance(error, KeyboardInterrupt):
                store.finish("failed")
                raise
            interrupted = True
    result = SweepResult(folder=out, points=tuple(states.values()), interrupted=interrupted)
    counts = {status: result.count(status) for status in STATUSES if result.count(status)}
    status = "interrupted" if interrupted else "finished" if result.all_finished else "failed"
    store.finish(status, final={"points": len(points), **counts})
    return result


def _inspect(state: PointState, out: Path, spec: CommandSpec) -> None:
    """Set ``state`` from the point's run folder: finished, to resume, to start, or unusable."""
    folder = out / state.point.name
    if not folder.is_dir():
        return
    if not (folder / RUN_FILE).is_file():
        remove_partial_run(folder, None)  # a run killed while it was being created: start it again
        return
    try:
        info = read_info(folder)
    except RunError as error:
        state.status, state.error = "failed", f"{error}; delete {folder} to run the point again"
        return
    if info.get("status") == "finished":
        state.status, state.final = "finished", _flat(info.get("final"))
    elif spec.resumable:
        state.resume = True
    else:
        state.status = "failed"
        state.error = (
            f"{folder}: an unfinished run, and {spec.name} cannot resume; delete it to run the point again"
        )


def _skip_blocked(states: dict[str, PointState]) -> None:
    for state in states.values():
        upstream = states.get(state.point.upstream) if state.point.upstream else None
        if (
            state.status == "pending"
            and upstream is not None
            and upstream.status
            in (
                "failed",
                "skipped",
            )
        ):
            state.status = "skipped"
            state.error = f"needs {upstream.point.name}, which {'failed' if upstream.status == 'failed' else 'was skipped'}"


def _ready(todo: list[PointState], states: dict[str, PointState], room: int) -> list[PointState]:
    ready = []
    for state in todo:
        if len(ready) >= room:
            break
        upstream = states.get(state.point.upstream) if state.point.upstream else None
        if state.status == "pending" and (upstream is None or upstream.status == "finished"):
            ready.append(state)
    return ready


def _job(state: PointState, out: Path, argvs: Mapping[str, list[str]]) -> Job:
    point = state.point
    folder = out / point.name
    args = [point.command, "--resume", str(folder)] if state.resume else argvs[point.name]
    threads = point_threads()
    env = {name: str(threads) for name in THREAD_VARIABLES}
    env["TQDM_DISABLE"] = "1"  # a point's own bar would only fill its log
    return Job(
        key=point.name,
        args=args,
        log=log_file(out, point.name),
        env=env,
        cwd=Path.cwd(),
        num_cpus=threads,
        num_gpus=1 if point.options.get("device") == "cuda" else 0,
    )


def _settle(state: PointState, out: Path, outcome: ProcessOutcome, notify: Notify | None) -> None:
    """Set ``state`` from how its command ended and what its run folder now says."""
    folder = out / state.point.name
    try:
        info = read_info(folder)
    except RunError:
        info = {}
    line = outcome.last_line or f"exit status {outcome.returncode}"
    if info.get("status") == "finished":
        state.status, state.error, state.final = "finished", "", _flat(info.get("final"))
        return
    state.resume = bool(info)  # its run exists now: the next invocation continues it
    if outcome.returncode == INTERRUPTED or info.get("status") == "interrupted":
        state.status, state.error = "interrupted", line
        return
    if outcome.returncode == 0:
        line = f"ended with exit status 0 but its run is {info.get('status', 'missing')}"
    state.status, state.error = "failed", line
    if notify is not None:
        notify(f"point {state.point.name} failed: {line}")


def _flat(final, prefix: str = "") -> dict:
    """A run's ``final`` as one level of scalars (nested keys joined by ``.``, lists as JSON)."""
    flat: dict = {}
    for key, value in (final or {}).items() if isinstance(final, dict) else ():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


class _Table:
    """``points.csv``: stage (chained grids), options, ``run``, ``status``, ``error``, final values."""

    def __init__(self, out: Path, grid: SweepGrid, states: dict[str, PointState]) -> None:
        self.out, self.states = out, states
        self.fixed_columns = ["stage"] if grid.chained else []
        for state in states.values():
            for key in state.point.options:
                if key not in self.fixed_columns:
                    self.fixed_columns.append(key)
        self.fixed_columns += ["run", "status", "error"]

    def write(self) -> None:
        columns, rows = list(self.fixed_columns), []
        for state in self.states.values():
            row = {"stage": state.point.stage, **state.point.options}
            row.update(run=state.point.name, status=state.status, error=state.error)
            for key, value in state.final.items():
                column = key if key not in self.fixed_columns else f"final_{key}"
                if column not in columns:
                    columns.append(column)
                row[column] = value
            rows.append(row)
        write_points_table(self.out, columns, rows)
