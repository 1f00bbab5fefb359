"""Where a sweep's points run: child processes of the driver (``local``) or Ray tasks (``ray``).

Both run a point's command line as ``python -m fullspectrum COMMAND ...`` and hand back how it
ended (:class:`~fullspectrum.distributed.processes.ProcessOutcome`); the driver alone reads the
point's run folder afterwards and writes the sweep's files. A backend takes a point when it has
room (:attr:`Backend.room`), says which ended (:meth:`Backend.wait`), and stops what runs when
the sweep is interrupted (:meth:`Backend.stop`).

* :class:`LocalBackend`: up to ``max_parallel`` children at a time, each writing its output to
  the point's log; each dies with the driver, so a killed sweep leaves killed (resumable) runs.
  A stop sends each child one SIGINT (``train`` and ``pags`` then save and exit 130, resumable)
  and kills those still running after a grace period.
* :class:`RayBackend`: one Ray task per point, asking for the CPUs it uses and a GPU when the
  point runs on ``cuda``; Ray schedules them on the cluster's free resources (at most
  ``max_parallel`` submitted at a time). The output comes back with the outcome and goes to the
  point's log. Every node must see the sweep folder at the same path (a shared file system).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fullspectrum.distributed import ProcessOutcome, start_process
from fullspectrum.distributed.tasks import RayProcesses

BACKENDS = ("local", "ray")
INTERRUPTED = 130
"""The exit status of a command stopped by Ctrl-C (SPEC §8), and of a point the sweep stopped."""
STOP_GRACE_S = 60.0
"""How long a stopped point may take to save and exit before it is killed."""
_OUTPUT_TAIL = 20_000  # characters of a local point's log read back for its outcome


@dataclass(frozen=True)
class Job:
    """One point's command, as a backend runs it."""

    key: str
    """The point's name (it comes back with the outcome)."""
    args: Sequence[str]
    """Arguments of ``python -m fullspectrum``."""
    log: Path
    """The point's log file (the driver's)."""
    env: Mapping[str, str]
    """Environment variables set for the command (thread counts)."""
    cwd: Path
    """The driver's working folder: relative paths in options mean what they mean to the user."""
    num_cpus: float = 1
    """CPUs it uses (what Ray reserves for it)."""
    num_gpus: float = 0
    """GPUs it needs: 1 for a point on ``cuda``."""


class LocalBackend:
    """Points as child processes of this one, ``max_parallel`` at a time."""

    def __init__(self, max_parallel: int) -> None:
        self.max_parallel = max(1, int(max_parallel))
        self._children: dict[str, tuple[subprocess.Popen, Job]] = {}

    @property
    def room(self) -> int:
        """How many more points it takes now."""
        return self.max_parallel - len(self._children)

    def __len__(self) -> int:
        return len(self._children)

    def submit(self, job: Job) -> None:
        argv = [sys.executable, "-m", "fullspectrum", *job.args]
        self._children[job.key] = (start_process(argv, job.log, env=job.env, cwd=job.cwd), job)

    def wait(self, timeout_s: float) -> list[tuple[str, ProcessOutcome]]:
        """The points that ended, waiting up to ``timeout_s`` for one."""
        deadline = time.monotonic() + timeout_s
        while True:
            ended = [key for key, (child, _) in self._children.items() if child.poll() is not None]
            if ended or not self._children or time.monotonic() >= deadline:
                return [(key, self._outcome(key)) for key in ended]
            time.sleep(0.05)

    def _outcome(self, key: str) -> tuple[str, ProcessOutcome]:
        child, job = self._children.pop(key)
        return ProcessOutcome(child.returncode, _tail(job.log))

    def stop(self) -> list[tuple[str, ProcessOutcome]]:
        """Ask every child to stop (SIGINT), kill those still running after the grace period, and say how each ended."""
        for child, _ in self._children.values():
            with contextlib.suppress(OSError):
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for child, _ in self._children.values():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return [(key, self._outcome(key)) for key in list(self._children)]


class RayBackend:
    """Points as Ray tasks (a session must be open: :func:`~fullspectrum.distributed.ray_session`)."""

    def __init__(self, max_parallel: int | None = None) -> None:
        self.max_parallel = max_parallel
        self._tasks = RayProcesses()
        self._logs: dict[str, Path] = {}

    @property
    def room(self) -> int:
        if self.max_parallel is None:
            return sys.maxsize  # Ray queues what the cluster cannot run yet
        return self.max_parallel - len(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def submit(self, job: Job) -> None:
        self._logs[job.key] = job.log
        self._tasks.submit(
            job.key,
            ["-m", "fullspectrum", *job.args],
            python=True,
            env=job.env,
            cwd=job.cwd,
            num_cpus=job.num_cpus,
            num_gpus=job.num_gpus,
        )

    def wait(self, timeout_s: float) -> list[tuple[str, ProcessOutcome]]:
        ended = self._tasks.wait(timeout_s)
        for key, outcome in ended:
            with open(self._logs.pop(key), "a", encoding="utf-8") as handle:
                handle.write(outcome.output)
        return ended

    def stop(self) -> list[tuple[str, ProcessOutcome]]:
        """Cancel every task (their processes are killed: each run is left to resume next time)."""
        keys = list(self._logs)
        self._tasks.cancel_all()
        self._logs.clear()
        stopped = ProcessOutcome(INTERRUPTED, "stopped: the sweep was interrupted")
        return [(key, stopped) for key in keys]


Backend = LocalBackend | RayBackend


def _tail(log: Path) -> str:
    try:
        with open(log, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - _OUTPUT_TAIL))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
