"""Crash-safe file writes: run files (SPEC §8), mask checkpoints, training checkpoints, data caches.

A run directory must never hold a half-written ``run.json`` or mask file, even
when the job is killed mid-write: every file is written to a temporary file in
the same folder, flushed and fsynced, then moved over the target with
``os.replace`` (atomic on POSIX and Windows), and the folder is fsynced so the
rename itself survives a power cut. A reader sees the old file or the new one,
never a mix. Temporary files start with ``.`` and end with ``.tmp``; a crash can
leave one behind, and readers ignore them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()
"""Mode of written files: what ``open()`` would give (``mkstemp`` alone gives 0600, unreadable to others)."""


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically: ``write(file)`` fills a temp file that then replaces ``path``.

    If anything fails before the replace, ``path`` keeps its old content and the
    temporary file is removed.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` and paths, tuples, numpy scalars made JSON-able."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalar
        return json_safe(value.item())
    return str(value)


def write_json_atomic(path: Path | str, data: dict) -> None:
    """Replace ``path`` with ``data`` as indented JSON (serialised first, so a bad value never touches disk)."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))
