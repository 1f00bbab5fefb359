"""``run.json`` and the writer lock of a run directory (SPEC §8).

``run.json`` says what a run is (kind, config, seed, versions, device) and how
it stands (status, heartbeat, final results). A job refreshes the heartbeat;
a ``running`` run whose heartbeat is older than ``HEARTBEAT_TIMEOUT_S`` was
killed and reads as ``interrupted``. A POSIX advisory lock on ``.writer.lock``
keeps a second process from writing the same run (the lock dies with its
process, so a killed job can be resumed at once).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import platform
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from fullspectrum import __version__
from fullspectrum.runs.database import RunError

try:  # POSIX: an advisory lock stops two writers on one run
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

RUN_FILE = "run.json"
DB_FILE = "metrics.sqlite"
LOCK_FILE = ".writer.lock"
RUN_FORMAT = 1
HEARTBEAT_TIMEOUT_S = 60.0
"""A ``running`` run whose heartbeat is older than this is reported ``interrupted``."""


def utc_now() -> str:
    """The time stamps of ``run.json``: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def collect_versions() -> dict[str, str | None]:
    """Versions every run records (python, platform, torch, numpy, scipy, pandas, sqlite, fullspectrum)."""

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": version("numpy"),
        "scipy": version("scipy"),
        "pandas": pd.__version__,
        "sqlite": sqlite3.sqlite_version,
        "fullspectrum": __version__,
    }


def effective_status(info: dict, *, timeout_s: float | None = None, now: float | None = None) -> str:
    """``info["status"]``, except a ``running`` run with a stale (or no) heartbeat is ``interrupted``."""
    status = str(info.get("status", "unknown"))
    if status != "running":
        return status
    timeout_s = HEARTBEAT_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        beat = datetime.fromisoformat(str(info["heartbeat"])).timestamp()
    except (KeyError, ValueError):
        return "interrupted"
    return "running" if (time.time() if now is None else now) - beat <= timeout_s else "interrupted"


def read_info(run_dir: Path) -> dict:
    """Parse ``run.json``; a missing, unparsable or incomplete file raises :class:`RunError`."""
    file = Path(run_dir) / RUN_FILE
    if not file.is_file():
        raise RunError(f"{run_dir}: not a run directory (no {RUN_FILE})")
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{file}: corrupt ({error})") from None
    if not isinstance(info, dict):
        raise RunError(f"{file}: corrupt (expected a JSON object, got {type(info).__name__})")
    missing = [key for key in ("status", "kind", "config") if key not in info]
    if missing:
        raise RunError(f"{file}: corrupt (missing {', '.join(missing)})")
    return info


def take_writer_lock(path: Path):
    """Hold an exclusive advisory lock for this process's lifetime as writer (released on death)."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        handle = open(path / LOCK_FILE, "a+b")  # noqa: SIM115 - kept open while writing
    except OSError as error:
        raise RunError(f"{path}: cannot write the run here ({error.strerror})") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise RunError(f"{path}: another process is writing this run") from None
    return handle


def release_writer_lock(path: Path, handle) -> None:
    if handle is None:
        return
    with contextlib.suppress(OSError):
        (path / LOCK_FILE).unlink()
    handle.close()
