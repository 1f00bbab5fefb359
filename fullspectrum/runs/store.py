"""``RunStore``: one self-contained, crash-safe run directory (SPEC §8).

A training, PAGS/PEGS (FS23) or analysis job writes its results here while it
runs, and the app, the ``runs``/``export`` commands and scripts read them, at
the same time or years later from a copied, read-only folder::

    RUN_DIR/run.json          status, kind, config, seed, versions, device, times, final
    RUN_DIR/metrics.sqlite    layers / evals / events / population tables
    RUN_DIR/masks/            bit-packed mask snapshots, one file per step

``run.json`` is always replaced atomically and carries a heartbeat the job
refreshes; a ``running`` run whose heartbeat is older than
``HEARTBEAT_TIMEOUT_S`` reports itself ``interrupted`` (the job was killed).
The database is in WAL mode while the job writes (one writer, concurrent
readers, one transaction per snapshot) and is switched to a rollback journal by
:meth:`RunStore.finish`, which leaves no ``-wal``/``-shm`` files.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> store = RunStore.create(folder, kind="analysis", config={"model": "mlp"}, seed=0, device="cpu")
>>> store.add_evals(0, [{"split": "val", "loss": 2.3, "accuracy": 0.1}])
>>> store.finish(final={"test_accuracy": 0.1})
>>> reader = RunStore.open(folder)
>>> reader.status, list(reader.evals()["accuracy"])
('finished', [0.1])
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import torch

from fullspectrum.checkpoints.atomic import write_json_atomic
from fullspectrum.errors import FullSpectrumError, unknown_name
from fullspectrum.runs import database as db
from fullspectrum.runs import mask_files, outputs, run_file
from fullspectrum.runs.database import RunError
from fullspectrum.runs.run_file import (
    DB_FILE,
    RUN_FILE,
    RUN_FORMAT,
    collect_versions,
    effective_status,
    read_info,
    release_writer_lock,
    take_writer_lock,
    utc_now,
)

RUN_KINDS = ("train", "pags", "analysis", *outputs.MULTI_RUN_KINDS)
"""Kinds of run a store holds; a multi-run folder (a lottery lineage, a sweep...) keeps its runs in subfolders."""
END_STATUSES = ("finished", "failed", "interrupted")
AUTO_HEARTBEAT_S = 5.0
"""Writes refresh the heartbeat themselves when the last one is older than this."""


def _folder_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def _cannot_create(path: Path, error: BaseException) -> RunError:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return RunError(f"{path}: cannot create the run here ({reason}); choose another folder")


def _new_info(kind: str, config: dict, seed: int, device: str) -> dict:
    """``run.json`` of a run that has just started."""
    now = utc_now()
    return {
        "format": RUN_FORMAT,
        "status": "running",
        "kind": kind,
        "config": config,
        "seed": int(seed),
        "versions": collect_versions(),
        "device": str(device),
        "created": now,
        "updated": now,
        "heartbeat": now,
        "final": {},
    }


class RunStore:
    """A run directory opened for writing (the job) or reading (everyone else).

    Make one with :meth:`create` or :meth:`open`, not the constructor.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection | None, lock_handle=None) -> None:
        self.path = Path(path)
        """The run directory."""
        self.heartbeat_timeout_s = run_file.HEARTBEAT_TIMEOUT_S
        """Heartbeat age after which a ``running`` run reads as ``interrupted``."""
        self._conn = conn
        self._lock_handle = lock_handle
        self._writable = conn is not None
        self._lock = threading.RLock()  # run.json read-modify-write and the db connection
        self._last_beat = time.monotonic()
        self._theirs: frozenset[str] = frozenset()  # the user's files in the folder when the run began

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path,
        *,
        kind: str,
        config: dict,
        seed: int,
        device: str,
        inputs: Iterable[str | Path] = (),
        artifacts: Iterable[str] = (),
        allow_nonempty: bool = False,
    ) -> RunStore:
        """Start a new run in ``path``, made if needed; a bad place is a one-line :class:`RunError`.

        The place obeys :func:`~fullspectrum.runs.outputs.check_new_run_folder` (``inputs`` the job
        reads may lie there; ``artifacts`` it will write beside the store's own; ``allow_nonempty``);
        a failed start leaves nothing behind, and :meth:`artifact_path` never names a user's file.
        """
        path = Path(path)
        if kind not in RUN_KINDS:
            raise unknown_name("run kind", kind, RUN_KINDS)
        if not isinstance(config, dict):
            raise FullSpectrumError(f"run config must be a dict, got {type(config).__name__}")
        inputs = list(inputs)
        outputs.check_new_run_folder(path, inputs=inputs, artifacts=artifacts, allow_nonempty=allow_nonempty)
        made = outputs.created_root(path)  # the folders this call makes, removed again if it fails
        theirs = frozenset(outputs.user_entries(path, inputs)) if made is None else frozenset()
        keep_masks = (path / mask_files.MASK_DIR).is_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            outputs.remove_partial_run(path, made)
            raise _cannot_create(path, error) from None
        lock_handle = take_writer_lock(path)  # a second creator of this folder stops here, touching nothing
        store = None
        try:
            (path / mask_files.MASK_DIR).mkdir(exist_ok=True)
            store = cls(path, db.connect_writer(path / DB_FILE, create=True), lock_handle)
            store._theirs = theirs
            write_json_atomic(path / RUN_FILE, _new_info(kind, config, seed, device))
        except BaseException as error:
            store.close() if store is not None else release_writer_lock(path, lock_handle)
            outputs.remove_partial_run(path, made, keep_masks=keep_masks)
            if isinstance(error, OSError | sqlite3.Error):
                raise _cannot_create(path, error) from None
            raise
        return store

    @classmethod
    def open(cls, path, *, readonly: bool = True) -> RunStore:
        """Open an existing run; ``readonly=False`` (resume) makes this process its writer."""
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"{path}: not a run directory (no such folder)")
        read_info(path)
        if not (path / DB_FILE).is_file():
            raise RunError(f"{path}: {DB_FILE} missing")
        if readonly:
            store = cls(path, None)
            with store._reader():
                pass
            return store
        lock_handle = take_writer_lock(path)
        try:
            conn = db.connect_writer(path / DB_FILE, create=False)
        except sqlite3.DatabaseError as error:
            release_writer_lock(path, lock_handle)
            raise RunError(f"{path / DB_FILE}: unreadable ({error})") from None
        except BaseException:
            release_writer_lock(path, lock_handle)
            raise
        (path / mask_files.MASK_DIR).mkdir(exist_ok=True)
        return cls(path, conn, lock_handle)

    # -- run.json ------------------------------------------------------------------------------------

    @property
    def info(self) -> dict:
        """A fresh read of ``run.json``."""
        return read_info(self.path)

    @property
    def status(self) -> str:
        """Effective status: ``running`` only while the heartbeat is fresh, else as recorded."""
        return effective_status(self.info, timeout_s=self.heartbeat_timeout_s)

    def update_info(self, **fields) -> None:
        """Merge top-level ``fields`` into ``run.json`` (atomic replace) and stamp ``updated``."""
        self._require_writable_folder()
        with self._lock:
            info = read_info(self.path)
            info.update(fields)
            info["updated"] = utc_now()
            write_json_atomic(self.path / RUN_FILE, info)
            if "heartbeat" in fields:
                self._last_beat = time.monotonic()

    def heartbeat(self) -> None:
        """Tell readers the job is alive."""
        self.update_info(heartbeat=utc_now())

    @contextlib.contextmanager
    def heartbeat_thread(self, interval_s: float = 5.0) -> Iterator[None]:
        """Refresh the heartbeat every ``interval_s`` seconds in the background while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval_s):
                with contextlib.suppress(OSError, FullSpectrumError):  # a missed beat is not fatal
                    self.heartbeat()

        self.heartbeat()
        thread = threading.Thread(target=beat, name="fullspectrum-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- writing -------------------------------------------------------------------------------------

    def add_snapshot(
        self,
        step: int,
        layer_rows: Iterable[dict],
        eval_rows: Iterable[dict] = (),
        event_rows: Iterable[dict] = (),
    ) -> None:
        """Record one snapshot (layer metrics, evaluations, mask-update events) in one transaction."""
        self._write({"layers": layer_rows, "evals": eval_rows, "events": event_rows}, step)

    def add_evals(self, step: int, eval_rows: Iterable[dict]) -> None:
        """Record evaluations (``split``, ``loss``, ``accuracy``, ``exploration_rate``) at ``step``."""
        self._write({"evals": eval_rows}, step)

    def add_steps(self, steps: Iterable[tuple[int, dict[str, Iterable[dict]]]]) -> None:
        """Record the rows of several steps, ``(step, {table: rows})``, in one transaction
        (a loop that logs every step commits, and syncs, once per batch, not once per step)."""
        conn = self._require_writer()
        with self._lock, db.transaction(conn):
            for step, tables in steps:
                for table, rows in tables.items():
                    db.insert_rows(conn, table, rows, step)
        self._maybe_heartbeat()

    def add_population(self, rows: Iterable[dict]) -> None:
        """Record scored PAGS candidates (``candidate`` -1 = base mask, -2 = assembled) in one transaction."""
        self._write({"population": rows}, None)

    def _write(self, tables: dict[str, Iterable[dict]], step: int | None) -> None:
        conn = self._require_writer()
        with self._lock, db.transaction(conn):
            for table, rows in tables.items():
                db.insert_rows(conn, table, rows, step)
        self._maybe_heartbeat()

    def _maybe_heartbeat(self) -> None:
        if time.monotonic() - self._last_beat > AUTO_HEARTBEAT_S:
            self.heartbeat()

    def save_masks(self, step: int, masks: dict, weights: dict | None = None) -> None:
        """Save every layer's bool mask at ``step`` (bit-packed, atomic), keyed by parameter name,
        and with ``weights`` the kept weights too (float32)."""
        self._require_writer()
        mask_files.save_mask_file(mask_files.mask_file(self.path, step), masks, weights)

    def load_masks(self, step: int) -> dict[str, torch.Tensor]:
        """The bool masks saved at ``step``, with their shapes."""
        file = mask_files.mask_file(self.path, step)
        if not file.is_file():
            steps = self.mask_steps()
            shown = ", ".join(map(str, steps[:10])) + (" ..." if len(steps) > 10 else "") or "none"
            raise RunError(f"{self.path}: no mask snapshot at step {step} (saved steps: {shown})")
        return mask_files.load_mask_file(file)

    def load_weights(self, step: int) -> dict[str, torch.Tensor]:
        """The weights kept with the snapshot at ``step`` (a training run's first and last), else {}."""
        file = mask_files.mask_file(self.path, step)
        return mask_files.load_snapshot_weights(file) if file.is_file() else {}

    def mask_steps(self) -> list[int]:
        """Steps with a saved mask snapshot, ascending."""
        return mask_files.mask_steps(self.path)

    def truncate_after(self, step: int) -> None:
        """Forget everything after ``step`` (rows and mask snapshots), so a resumed run repeats nothing."""
        conn = self._require_writer()
        with self._lock:
            db.delete_after(conn, step)
        mask_files.remove_masks_after(self.path, step)

    def finish_after(self, error: BaseException) -> None:
        """End the run as ``error`` left it: ``interrupted`` after a Ctrl-C (resumable), else ``failed``."""
        self.finish("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")

    @contextlib.contextmanager
    def ended_on_error(self) -> Iterator[RunStore]:
        """Run the block; if it raises, :meth:`finish_after` the error and re-raise it."""
        try:
            yield self
        except BaseException as error:
            self.finish_after(error)
            raise

    def finish(self, status: str = "finished", final: dict | None = None) -> None:
        """End the run: database to a rollback journal (no ``-wal``/``-shm``), then status and ``final``."""
        if status not in END_STATUSES:
            raise unknown_name("end status", status, END_STATUSES)
        conn = self._require_writer()
        with self._lock:
            db.switch_to_rollback_journal(conn, self.path / DB_FILE)
            self._close_connection()
            info = read_info(self.path)
            now = utc_now()
            info.update(status=status, final={**info.get("final", {}), **(final or {})}, finished=now)
            info.update(updated=now, heartbeat=now)
            write_json_atomic(self.path / RUN_FILE, info)

    def close(self) -> None:
        """Let go of the database; the run keeps its status (an unfinished one reads as interrupted later).

        The database also leaves WAL mode when no reader holds it, so readers of
        the closed run create no ``-wal``/``-shm`` files; a resume switches back.
        """
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(RunError, sqlite3.Error):
                    db.switch_to_rollback_journal(self._conn, self.path / DB_FILE, timeout_s=1.0)
            self._close_connection()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            release_writer_lock(self.path, self._lock_handle)
            self._lock_handle = None

    def _require_writer(self) -> sqlite3.Connection:
        if self._conn is None:
            state = "opened read-only" if not self._writable else "finished or closed"
            raise RunError(f"{self.path}: cannot write, the run store is {state}")
        return self._conn

    def _require_writable_folder(self) -> None:
        if not self._writable:
            raise RunError(f"{self.path}: cannot write, the run store is opened read-only")

    # -- reading -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """The writer's own connection, or a short-lived read-only one (so ``finish`` is never blocked)."""
        file = self.path / DB_FILE
        if self._conn is not None:
            with self._lock:
                yield self._conn
            return
        try:
            conn = db.connect_reader(file, folder_writable=_folder_writable(self.path))
        except (sqlite3.DatabaseError, OSError) as error:
            raise RunError(f"{file}: unreadable ({error})") from None
        try:
            db.check_schema(conn, file)
            yield conn
        except sqlite3.DatabaseError as error:
            raise RunError(f"{file}: unreadable ({error})") from None
        finally:
            conn.close()

    def _read(self, table: str) -> pd.DataFrame:
        with self._reader() as conn:
            return db.read_table(conn, table)

    def layers(self) -> pd.DataFrame:
        """Per-layer metrics at every snapshot: ``LAYER_COLUMNS``, in step order."""
        return self._read("layers")

    def evals(self) -> pd.DataFrame:
        """Evaluations: ``EVAL_COLUMNS``, in step order."""
        return self._read("evals")

    def events(self) -> pd.DataFrame:
        """Mask updates: ``EVENT_COLUMNS``, in step order."""
        return self._read("events")

    def population(self) -> pd.DataFrame:
        """Scored PAGS candidates: ``POPULATION_COLUMNS``, in insertion order."""
        return self._read("population")

    def last_step(self) -> int | None:
        """The largest step recorded in any table (``None`` for an empty run)."""
        with self._reader() as conn:
            return db.max_step(conn)

    def artifact_path(self, name: str) -> Path:
        """A file directly inside the run directory (e.g. ``checkpoint.pt``, ``pags_mask.pt``)."""
        if not name or Path(name).name != name or name in (".", ".."):
            raise FullSpectrumError(f"artifact name {name!r} must be a plain file name")
        if name in self._theirs or f"{name}/" in self._theirs:
            raise RunError(f"{self.path / name}: a file of yours, which the run does not replace")
        return self.path / name

    def __repr__(self) -> str:
        mode = "writer" if self._conn is not None else "reader"
        return f"RunStore({str(self.path)!r}, {mode})"
