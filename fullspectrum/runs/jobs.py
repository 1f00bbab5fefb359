"""Long work as job processes that write to a run directory (SPEC §8).

Training (ITOP21/RigL with FS23's spectral tracking), PAGS/PEGS sampling and
checkpoint analysis take seconds to hours, so nothing that calls them should
block on them: the app (or a script) starts ``python -m fullspectrum <command>``
as a separate, detached process with :func:`start_job` and forgets it. Everything
needed to find the job again lives in the run directory:

* ``job.json``: the job's pid, its command line and when it started;
* ``job.log``: its stdout and stderr (progress bars, errors);
* ``run.json``: written by the job itself, whose heartbeat tells a live job from
  a dead one (:meth:`fullspectrum.runs.RunStore.status`).

:func:`stop` sends SIGINT, which the ``train`` command turns into "save a
checkpoint and leave an ``interrupted`` run"; :func:`resume_training` continues it, and
:func:`resume_sampling` an interrupted PAGS/PEGS sampling.
A browser refresh, a second tab or a restarted app calls :func:`job_state` or
:func:`find_running` and sees the same job.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fullspectrum.checkpoints.atomic import write_json_atomic
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs.database import RunError
from fullspectrum.runs.run_file import DB_FILE, RUN_FILE, effective_status, read_info, utc_now
from fullspectrum.runs.store import RunStore

JOB_FILE = "job.json"
"""Pid, command and start time of the job that writes a run."""
JOB_LOG = "job.log"
"""The job's stdout and stderr."""
JOB_COMMANDS = ("train", "pags", "ingest")
"""Subcommands a job may run."""


@dataclass(frozen=True)
class JobState:
    """How a job and its run stand, read from the run directory alone."""

    run_dir: Path
    """The run directory the job writes."""
    status: str
    """``starting`` (job process alive, no ``run.json`` yet), ``running``, ``finished``, ``failed``,
    ``interrupted`` (stopped, or killed: resumable for training), ``corrupt`` or ``unknown``."""
    pid: int | None
    """The job's process id (``None`` when no job was started here)."""
    alive: bool
    """Whether that process still exists."""
    step: int | None
    """The last step the run recorded."""
    total_steps: int | None
    """Steps the run will take, when known (training: epochs × iterations per epoch)."""
    kind: str | None
    """``train``, ``pags`` or ``analysis``."""
    error: str | None
    """Why the run could not be read, or the last line of a failed job's log."""

    @property
    def active(self) -> bool:
        """The job is still working (a page should keep polling)."""
        return self.status in ("starting", "running")

    @property
    def fraction(self) -> float | None:
        """Progress in [0, 1] when the total is known."""
        if self.status == "finished":
            return 1.0
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, max(0.0, self.step / self.total_steps))


def job_command(command: str, arguments: Sequence[str]) -> list[str]:
    """``[python, -m, fullspectrum, command, *arguments]`` with this interpreter."""
    if command not in JOB_COMMANDS:
        raise FullSpectrumError(f"unknown job command '{command}'; choose from {', '.join(JOB_COMMANDS)}")
    return [sys.executable, "-m", "fullspectrum", command, *map(str, arguments)]


def start_job(command: str, arguments: Sequence[str], run_dir: str | Path) -> JobState:
    """Start ``fullspectrum command arguments...`` detached, logging into ``run_dir``; return at once.

    The job runs in its own session, so neither a rerun of the calling script
    nor the caller's exit touches it; a thread reaps it when it ends (no zombie).
    """
    run_dir = Path(run_dir).absolute()
    argv = job_command(command, arguments)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / JOB_LOG
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        log.write(f"\n== {utc_now()} {' '.join(argv[2:])}\n".encode())
        log.flush()
        process = subprocess.Popen(  # noqa: S603 - our own CLI with this interpreter
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    write_json_atomic(
        run_dir / JOB_FILE,
        {"pid": process.pid, "command": argv[2:], "started": utc_now(), "log": JOB_LOG},
    )
    threading.Thread(target=process.wait, name=f"fullspectrum-reap-{process.pid}", daemon=True).start()
    return job_state(run_dir)


def start_training(options: Mapping[str, object], run_dir: str | Path) -> JobState:
    """Start ``fullspectrum train --<option> value ... --out run_dir`` (``None`` values are left out).

    Option names are ``TrainConfig``/flag names with ``_`` or ``-`` (``delta_t``, ``snapshot-every``).
    """
    arguments = []
    for name, value in options.items():
        if value is not None:
            arguments += [f"--{name.replace('_', '-')}", str(value)]
    return start_job("train", [*arguments, "--out", str(run_dir)], run_dir)


def resume_training(run_dir: str | Path) -> JobState:
    """Continue an interrupted training run in a new job process (``fullspectrum train --resume``)."""
    return _resume(run_dir, "train")


def resume_sampling(run_dir: str | Path) -> JobState:
    """Continue an interrupted PAGS/PEGS sampling in a new job process (``fullspectrum pags --resume``)."""
    return _resume(run_dir, "pags")


def _resume(run_dir: str | Path, kind: str) -> JobState:
    state = job_state(run_dir)
    if state.alive:
        raise RunError(f"{run_dir}: its job (pid {state.pid}) is still running; stop it first")
    if state.kind not in (None, kind):
        raise RunError(f"{run_dir}: a {state.kind!r} run, not a {kind!r} run; it cannot be resumed as one")
    return start_job(kind, ["--resume", str(run_dir)], run_dir)


def start_ingest(checkpoint: str | Path, run_dir: str | Path) -> JobState:
    """Analyse a checkpoint file into an ``analysis`` run (``fullspectrum ingest``)."""
    return start_job("ingest", [str(checkpoint), "--out", str(run_dir)], run_dir)


def stop(run_dir: str | Path) -> bool:
    """Ask the run's job to stop (SIGINT: a training run saves a checkpoint and is left resumable).

    Returns whether a signal was sent (``False``: no live job for this run).
    """
    pid = _job_pid(Path(run_dir))
    if pid is None or not _is_our_job(pid, Path(run_dir)):
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    return True


def job_state(run_dir: str | Path) -> JobState:
    """The job's and the run's state, from the files of ``run_dir``."""
    run_dir = Path(run_dir)
    pid = _job_pid(run_dir)
    alive = pid is not None and _is_our_job(pid, run_dir)
    base = dict(run_dir=run_dir, pid=pid, alive=alive, step=None, total_steps=None, kind=None, error=None)
    if not (run_dir / RUN_FILE).is_file():
        status = "starting" if alive else ("failed" if pid is not None else "unknown")
        error = None if alive or pid is None else last_log_line(run_dir)
        return JobState(**{**base, "status": status, "error": error})
    try:
        info = read_info(run_dir)
    except RunError as error:
        return JobState(**{**base, "status": "corrupt", "error": str(error)})
    status = effective_status(info)
    if alive:
        status = "running"  # a resumed run says "interrupted" until its job writes run.json
    elif status == "running" and pid is not None:
        status = "interrupted"  # the job is gone but its heartbeat has not aged out yet
    step = _last_step(run_dir)
    error = last_log_line(run_dir) if status == "failed" else None
    return JobState(
        **{
            **base,
            "status": status,
            "step": step,
            "total_steps": expected_steps(info),
            "kind": info.get("kind"),
            "error": error,
        }
    )


def find_running(root: str | Path) -> list[JobState]:
    """Every job under ``root`` that is still working (live job process or fresh heartbeat), in path order."""
    root = Path(root)
    if not root.is_dir():
        return []
    states = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "masks")
        if JOB_FILE in filenames or RUN_FILE in filenames:
            state = job_state(Path(folder))
            if state.active:
                states.append(state)
    return sorted(states, key=lambda state: str(state.run_dir))


def expected_steps(info: Mapping) -> int | None:
    """Total iterations of a training run: ``final["steps"]``, else ``total_steps``, else epochs × ``eval_every``.

    The trainer's preset ``eval_every`` is one epoch (the ``train`` command cannot change it).
    """
    final = info.get("final") or {}
    if isinstance(final, Mapping) and final.get("steps"):
        return int(final["steps"])
    if info.get("total_steps"):  # written by the trainer when the run starts
        return int(info["total_steps"])
    config = info.get("config") or {}
    if info.get("kind") != "train" or not isinstance(config, Mapping):
        return None
    # a config of one's own (a Tracker run's) may have neither
    with contextlib.suppress(KeyError, TypeError, ValueError):
        return int(config["epochs"]) * int(config["eval_every"])
    return None


def read_log(run_dir: str | Path, *, max_chars: int = 4000) -> str:
    """The end of the job's log (progress bars' carriage returns turned into new lines)."""
    path = Path(run_dir) / JOB_LOG
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - max_chars))
        text = handle.read().decode("utf-8", errors="replace")
    return text.replace("\r", "\n")


def last_log_line(run_dir: str | Path) -> str | None:
    """The last non-empty line of the job's log (a failed job's one-line error)."""
    lines = [line.strip() for line in read_log(run_dir).splitlines() if line.strip()]
    return lines[-1] if lines else None


def _job_pid(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_our_job(pid: int, run_dir: Path) -> bool:
    """``pid`` is alive, not a zombie, and (where /proc tells) runs ``fullspectrum`` on this run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no /proc (macOS): trust the pid
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    resolved = str(run_dir.resolve())
    return b"fullspectrum" in argv and any(
        arg and str(Path(arg.decode(errors="replace")).resolve()) == resolved for arg in argv[3:]
    )


def _last_step(run_dir: Path) -> int | None:
    if not (run_dir / DB_FILE).is_file():
        return None
    with contextlib.suppress(RunError, OSError):
        return RunStore.open(run_dir, readonly=True).last_step()
    return None
