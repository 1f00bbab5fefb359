"""The tracked run's writes, done in order by one thread beside the loop (SPEC §8).

Each batch of logged rows and each snapshot is one database transaction (a full disk sync, ms
on an SSD and tens of ms on a busy machine) and a mask file written atomically; on the loop's
thread they were most of what the tracker cost an MLP's loop. So the loop hands them over
here, as jobs that one thread runs in the order given, and goes on.

What the run folder guarantees stays as it was: every job is a whole transaction or a whole
file replaced atomically, and they run in order, so a process killed with jobs still queued
leaves a readable run holding a prefix of what an uninterrupted run holds. A job that fails
(a full disk, a folder gone) stops the jobs after it — none writes past a hole — and its
error is raised on the loop's thread at its next hand-over or wait, which ends the run failed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from fullspectrum.training.snapshots import ComputedSpectra, SnapshotWriter

Job = Callable[[], None]


class BackgroundWrites:
    """One thread running write jobs in order; errors come back to the caller's thread."""

    def __init__(self, name: str = "fullspectrum-writes") -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._queued = 0
        self._done = threading.Condition()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, job: Job) -> None:
        """Queue ``job`` after every job queued before it (an earlier job's error is raised here)."""
        self.raise_error()
        if not self._thread.is_alive():
            raise RuntimeError("the tracker's writer thread has stopped")
        with self._done:
            self._queued += 1
        self._jobs.put(job)

    def wait(self) -> None:
        """Return once every queued job has run; raise the first error of one."""
        with self._done:
            self._done.wait_for(lambda: self._queued == 0)
        self.raise_error()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Run what is queued, then stop the thread (errors stay for :meth:`raise_error`)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if self._error is None:  # after a failed write nothing later is written
                    job()
            except BaseException as error:  # handed to the loop's thread
                self._error = error
            finally:
                with self._done:
                    self._queued -= 1
                    self._done.notify_all()


class BackgroundSnapshots(SnapshotWriter):
    """The trainer's :class:`~fullspectrum.training.snapshots.SnapshotWriter` (the same rows and
    files, in step order) whose writes run on ``writes``' thread: the loop's thread only copies the
    snapshot and reads the worker's answer (the worker's pipe stays with one thread)."""

    def __init__(self, store, writes: BackgroundWrites, **options) -> None:
        super().__init__(store, **options)
        self.writes = writes

    def _write(self, item) -> None:
        if item.spectra is not None:
            item.spectra = ComputedSpectra(item.spectra.result())
        self.writes.put(lambda: SnapshotWriter._write(self, item))
