"""Uploaded files kept by content, one folder per browser session, and cleaned up.

The app saves a checkpoint a user uploads before it reads it (``weights_only``,
never executed) or hands it to an ingest job. Two users, or one user twice,
may upload different files under one name (``model.pt``), so an upload is kept
by what it holds, not by what it is called::

    <root>/<session>/<digest>/<name>

``session`` is a random id each browser session draws once
(:func:`new_session_id`); ``digest`` is the SHA-256 of the bytes (its first
:data:`DIGEST_CHARS` hex digits name the folder, the whole is the cache key);
``name`` is the user's file name made safe. A session writes only its own
folder, the same bytes land in the same file (written once, atomically), other
bytes in another file: nothing is ever overwritten. Saving or reusing a file
refreshes its modification time, so :func:`clean_uploads` (run when the app
starts) can remove what a session left behind more than :data:`MAX_AGE_S` ago.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> one = store_upload(root, "0123abcd", "model.pt", b"weights")
>>> one.name, one.path.relative_to(root).parts[0], one.path.read_bytes()
('model.pt', '0123abcd', b'weights')
>>> store_upload(root, "0123abcd", "model.pt", b"other weights").path == one.path
False
>>> one.message(f"{one.path}: not a checkpoint")
'model.pt: not a checkpoint'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs.naming import safe_part

UPLOADS_DIR = "uploads"
"""The folder of the app's workspace that holds uploads."""
MAX_AGE_S = 24 * 3600
"""Uploads untouched for longer than this (a day) are removed by :func:`clean_uploads`."""
DIGEST_CHARS = 32
"""Hex digits of the SHA-256 in a stored file's folder name."""
_SESSION = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class StoredUpload:
    """One uploaded file as the app keeps it."""

    path: Path
    """Where its bytes are: ``<root>/<session>/<digest>/<name>``."""
    name: str
    """The user's file name (made safe): what messages and labels call it."""
    digest: str
    """SHA-256 of its bytes, in hex: a cache key that changes with the content."""

    def message(self, error: BaseException | str) -> str:
        """The first line of ``error`` with the stored path replaced by the user's file name."""
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        for where in {str(self.path.resolve()), str(self.path)}:
            text = text.replace(where, self.name)
        return text

    def touch(self) -> None:
        """Mark the file as in use (its modification time is now), so no cleanup takes it."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def remove(self) -> None:
        """Delete the file and its digest folder (nothing happens if it is already gone)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()


def new_session_id() -> str:
    """A random id naming one browser session's upload folder."""
    return secrets.token_hex(8)


def content_digest(data: bytes | memoryview) -> str:
    """SHA-256 of ``data``, in hex."""
    return hashlib.sha256(data).hexdigest()


def safe_file_name(name: str) -> str:
    """The last part of ``name`` with only letters, digits, ``_ . -`` (``upload`` if nothing is left)."""
    part = safe_part(Path(str(name).replace("\\", "/")).name).strip(".")
    return part or "upload"


def store_upload(root: str | Path, session: str, name: str, data: bytes | memoryview) -> StoredUpload:
    """Keep ``data`` (uploaded as ``name``) in ``session``'s folder under ``root``, by its content.

    The same bytes again reuse the stored file (its time is refreshed); other
    bytes go to another file. Raises ``FullSpectrumError`` for a session id that
    :func:`new_session_id` did not make.
    """
    if not _SESSION.fullmatch(str(session)):
        raise FullSpectrumError(f"upload session {session!r}: not a session id (hex digits)")
    digest = content_digest(data)
    stored = StoredUpload(Path(root) / session / digest[:DIGEST_CHARS] / safe_file_name(name),
                          safe_file_name(name), digest)  # fmt: skip
    stored.path.parent.mkdir(parents=True, exist_ok=True)
    if stored.path.is_file() and stored.path.stat().st_size == len(data):
        stored.touch()
    else:
        write_atomic(stored.path, lambda handle: handle.write(data))
    return stored


def clean_uploads(root: str | Path, *, max_age_s: float = MAX_AGE_S, now: float | None = None) -> list[Path]:
    """Remove files under ``root`` untouched for more than ``max_age_s``, then the folders left empty;
    returns the removed files. A missing ``root`` is nothing to clean."""
    root = Path(root)
    if not root.is_dir():
        return []
    limit = (time.time() if now is None else now) - max_age_s
    removed = []
    for path in sorted(root.rglob("*"), reverse=True):  # files before the folders that hold them
        with contextlib.suppress(OSError):
            if path.is_symlink() or path.is_file():
                if path.lstat().st_mtime < limit:
                    path.unlink()
                    removed.append(path)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return sorted(removed)


def claim_folder(parent: str | Path, name: str) -> Path:
    """Create and return a new folder ``parent/name`` (``name_2``, ``name_3``, ... if taken): two
    requests at the same moment never share one."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for index in range(1, 10_000):
        folder = parent / (name if index == 1 else f"{name}_{index}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FullSpectrumError(f"{parent / name}: no free folder name left")
