"""Find and summarise every run under a folder (``fullspectrum runs ROOT``, the app's run picker).

A run directory (SPEC §8) is any folder holding ``run.json`` (or a
``metrics.sqlite`` left by a run that crashed before writing ``run.json``).
A folder that cannot be read — garbage ``run.json``, missing or corrupt
database, a subfolder the user may not list — is listed with status ``corrupt``
and a one-line ``error``; it never hides the other runs. A ``root`` that is
missing, not a folder or unreadable is an error (:class:`RunError`), never an
empty listing.
"""

from __future__ import annotations

import math
import os
import sqlite3
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from fullspectrum.runs.database import RunError
from fullspectrum.runs.run_file import DB_FILE, RUN_FILE, effective_status, read_info
from fullspectrum.runs.store import RunStore

_SKIP_DIRS = {"masks", "__pycache__", "node_modules"}
_READ_FIELDS = ("kind", "model", "data", "method", "density", "seed", "final_accuracy", "created")


@dataclass(frozen=True)
class RunSummary:
    """One line of a run listing."""

    path: Path
    """The run directory."""
    kind: str | None
    """``train``, ``pags`` or ``analysis`` (``None`` when ``run.json`` is unreadable)."""
    status: str
    """Effective status: ``running``, ``finished``, ``failed``, ``interrupted`` (stale heartbeat) or ``corrupt``."""
    model: str | None
    """``config["model"]``."""
    data: str | None
    """``config["data"]``."""
    method: str | None
    """``config["method"]`` (training) or ``config["generator"]`` (PAGS)."""
    density: float | None
    """``config["density"]``: fraction of weights kept."""
    seed: int | None
    """The run's seed."""
    final_accuracy: float | None
    """``final["test_accuracy"]`` once the run has finished."""
    steps: int | None
    """Largest step recorded in the metrics (``None`` when nothing was recorded yet)."""
    created: str | None
    """Creation time stamp (ISO 8601, UTC)."""
    error: str | None
    """Why the run is ``corrupt`` (one line); ``None`` otherwise."""

    def as_dict(self) -> dict:
        row = asdict(self)
        row["path"] = str(self.path)
        return row


def _text(value) -> str | None:
    return None if value is None else str(value)


def _number(value, kind):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        return None
    return None if isinstance(number, float) and not math.isfinite(number) else number


def summarize_run(run_dir: Path) -> RunSummary:
    """Summarise one run directory; problems give a ``corrupt`` summary rather than an exception."""
    run_dir = Path(run_dir)
    empty = dict.fromkeys(_READ_FIELDS)
    if not (run_dir / RUN_FILE).is_file():
        error = f"{run_dir}: half-written run ({DB_FILE} but no {RUN_FILE})"
        return RunSummary(path=run_dir, status="corrupt", steps=None, error=error, **empty)
    try:
        info = read_info(run_dir)
    except RunError as error:
        return RunSummary(path=run_dir, status="corrupt", steps=None, error=str(error), **empty)
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    final = info.get("final") if isinstance(info.get("final"), dict) else {}
    fields = {
        "kind": _text(info.get("kind")),
        "model": _text(config.get("model")),
        "data": _text(config.get("data")),
        "method": _text(config.get("method") or config.get("generator")),
        "density": _number(config.get("density"), float),
        "seed": _number(info.get("seed"), int),
        "final_accuracy": _number(final.get("test_accuracy"), float),
        "created": _text(info.get("created")),
    }
    try:
        steps = RunStore.open(run_dir, readonly=True).last_step()
    except (RunError, sqlite3.Error, OSError) as error:
        return RunSummary(path=run_dir, status="corrupt", steps=None, error=str(error), **fields)
    return RunSummary(path=run_dir, status=effective_status(info), steps=steps, error=None, **fields)


def _check_root(root: Path) -> None:
    """Refuse a root that is missing, not a folder or that this user may not list."""
    try:
        is_folder = stat.S_ISDIR(root.stat().st_mode)
    except FileNotFoundError:
        raise RunError(f"{root}: no such folder") from None
    except NotADirectoryError:
        raise RunError(
            f"{root}: not a folder (a path under a file); give the folder that holds the runs"
        ) from None
    except OSError as error:
        raise RunError(f"{root}: cannot be read ({error.strerror})") from None
    if not is_folder:
        raise RunError(f"{root}: not a folder; give the folder that holds the runs")


def _unreadable(folder: Path, error: OSError) -> RunSummary:
    empty = dict.fromkeys(_READ_FIELDS)
    reason = f"{folder}: cannot be read ({error.strerror or error}); runs inside it are not listed"
    return RunSummary(path=folder, status="corrupt", steps=None, error=reason, **empty)


def list_runs(root) -> list[RunSummary]:
    """Every run directory under ``root`` (recursively, ``root`` included), in path order.

    A subfolder that cannot be read is listed as ``corrupt``; an unreadable ``root`` raises.
    """
    root = Path(root)
    _check_root(root)
    runs, errors = [], []
    for folder, dirnames, filenames in os.walk(root, onerror=errors.append):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith(".") and name not in _SKIP_DIRS)
        if RUN_FILE in filenames or DB_FILE in filenames:
            runs.append(summarize_run(Path(folder)))
    for error in errors:
        folder = Path(error.filename) if error.filename else root
        if folder == root:
            raise RunError(f"{root}: cannot be read ({error.strerror or error})") from None
        runs.append(_unreadable(folder, error))
    return sorted(runs, key=lambda run: str(run.path))
