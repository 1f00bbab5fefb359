"""Where a command may write: the one policy for new run folders and output files (SPEC §8).

Every command that creates a run (``train``, ``pags``, ``ingest``) goes through
:meth:`fullspectrum.runs.RunStore.create`, which asks :func:`check_new_run_folder`
first; ``analyze --out FILE`` and ``export --out DIR`` ask :func:`check_output_file`
and :func:`check_output_folder`. The promise they keep:

* **nothing of the user's is replaced**: a new run goes into a new or empty folder;
  a non-empty folder that is not a run is refused unless the caller opts in
  (``allow_nonempty``, the ``--allow-nonempty`` flag), and even then a file whose
  name the run writes is refused, not replaced;
* **a run is never written over**: a folder holding ``run.json`` is a run (for a
  sweep, lottery, Early-Bird or reproduction folder, a run of that kind, whose runs
  live in subfolders), and so is every folder inside a single run;
* **an output never replaces an input** (``analyze X --out X``), and ``export`` never
  replaces any file (``analyze --out FILE`` names the one file it may replace);
* **a bad place is bad input**: a file, a path under a file, a folder that cannot
  be written, each refused in one line that names it, before anything is created.

Files a run folder may already hold before its run starts are not the user's: the
app's job files (``job.json``, ``job.log``, written by :mod:`fullspectrum.runs.jobs`
before its job creates the run), the writer lock, an empty ``masks/`` and the
temporary files of an interrupted atomic write.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "notes.txt").write_text("mine")
>>> check_new_run_folder(folder / "new") == folder / "new"
True
>>> check_new_run_folder(folder)
Traceback (most recent call last):
...
fullspectrum.runs.database.RunError: ...: not empty and not a run (holds notes.txt); choose a new or empty folder
>>> check_output_file(folder / "notes.txt", inputs=[folder / "notes.txt"])
Traceback (most recent call last):
...
fullspectrum.runs.database.RunError: ...notes.txt: is the input ...; an output never replaces an input, choose another file name
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from fullspectrum.checkpoints.atomic import TMP_SUFFIX
from fullspectrum.runs.database import RunError
from fullspectrum.runs.mask_files import MASK_DIR
from fullspectrum.runs.run_file import DB_FILE, LOCK_FILE, RUN_FILE, read_info

NONEMPTY_OPT_IN = "--allow-nonempty"
"""The flag of ``train`` and ``ingest`` that lets a run go into a non-empty folder."""
MULTI_RUN_KINDS = ("sweep", "lottery", "earlybird", "reproduction")
"""Kinds of a folder holding several runs in subfolders (SPEC §8)."""
JOB_FILES = ("job.json", "job.log")
"""What :mod:`fullspectrum.runs.jobs` writes into a run folder before its job creates the run."""
RUN_FILES = (RUN_FILE, DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", f"{DB_FILE}-journal", LOCK_FILE)
"""Files :meth:`RunStore.create` makes (besides ``masks/``)."""
RESUME_COMMANDS = {"train": "fullspectrum train --resume", "pags": "fullspectrum pags --resume"}
"""How an unfinished run of each kind is continued."""
_SHOWN = 3  # entries named in a "not empty" message


def check_new_run_folder(
    path: str | Path,
    *,
    inputs: Iterable[str | Path] = (),
    artifacts: Iterable[str] = (),
    allow_nonempty: bool = False,
    opt_in: str | None = None,
) -> Path:
    """``path`` as a Path if a new run may be created there, else a one-line :class:`RunError`.

    ``inputs``: files the command reads that may lie in the folder (an upload
    ingested where it was saved); ``artifacts``: file names the run will write
    besides the store's own; ``allow_nonempty``: a folder holding other files
    is accepted as long as none of them has a name the run writes; ``opt_in``:
    how the caller's user allows that (named in the refusal).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: is a file, not a folder; choose a new folder for the run")
    _check_place(path)
    _check_not_inside_a_run(path)
    if path.is_dir():
        _check_not_a_run(path)
        try:
            theirs = user_entries(path, inputs)
        except OSError as error:
            raise RunError(
                f"{path}: cannot be read ({error.strerror or error}); choose another folder"
            ) from None
        if theirs and not allow_nonempty:
            shown = ", ".join(theirs[:_SHOWN]) + (
                f" and {len(theirs) - _SHOWN} more" if len(theirs) > _SHOWN else ""
            )
            hint = f", or add {opt_in} to put the run beside them (none is replaced)" if opt_in else ""
            raise RunError(
                f"{path}: not empty and not a run (holds {shown}); choose a new or empty folder{hint}"
            )
        for name in (
            *RUN_FILES,
            MASK_DIR,
            *artifacts,
        ):  # an input is not in ``theirs``: it may be an artifact
            if name in theirs or f"{name}/" in theirs:
                raise RunError(
                    f"{path / name}: already exists and the run writes {name}; move it or choose another folder"
                )
    return path


def user_entries(folder: Path, inputs: Iterable[str | Path] = ()) -> list[str]:
    """Names in ``folder`` that are neither run bookkeeping nor one of ``inputs`` (folders end in ``/``)."""
    own_inputs = {Path(item).resolve() for item in inputs}
    names = []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        name = entry.name
        if name in JOB_FILES or name == LOCK_FILE or (name.startswith(".") and name.endswith(TMP_SUFFIX)):
            continue
        if Path(entry.path).resolve() in own_inputs:
            continue
        if entry.is_dir():
            if name == MASK_DIR and not any(os.scandir(entry.path)):
                continue
            name += "/"
        names.append(name)
    return names


def check_output_file(
    path: str | Path, *, inputs: Iterable[str | Path] = (), make_folders: bool = False
) -> Path:
    """``path`` as a Path if a file may be (re)written there, else a one-line :class:`RunError`.

    Its folder must exist (or, with ``make_folders``, be creatable: the writer makes it) and be
    writable, ``path`` must not be a folder, and it must not be one of ``inputs`` (the same file
    by any name).
    """
    path = Path(path)
    _check_place(path, file=True)
    if not make_folders and not path.parent.is_dir():
        raise RunError(f"{path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise RunError(f"{path}: is a folder, give a file name")
    for item in inputs:
        if _same_file(path, Path(item)):
            raise RunError(
                f"{path}: is the input {item}; an output never replaces an input, choose another file name"
            )
    return path


def check_output_folder(path: str | Path, names: Iterable[str]) -> Path:
    """``path`` as a Path if new files ``names`` may be written into it (made if missing), else a :class:`RunError`.

    The folder may hold other files, but none named in ``names``: an existing file is never replaced
    (a previous export included; export into a new folder or remove the old files).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: is a file, not a folder; choose a folder for the files")
    _check_place(path)
    if path.is_dir():
        for name in names:
            if os.path.lexists(path / name):
                raise RunError(
                    f"{path / name}: already exists and is not replaced; choose a new or empty folder"
                )
    return path


def created_root(path: Path) -> Path | None:
    """The highest folder that making ``path`` (with its parents) would create, or None if it exists."""
    path = Path(path).absolute()
    if path.exists():
        return None
    top = path
    while not top.parent.exists():
        top = top.parent
    return top


def remove_partial_run(path: Path, root: Path | None, *, keep_masks: bool = False) -> None:
    """Undo a run creation that failed: the folders it made (``root``), else the run files it put in ``path``."""
    with contextlib.suppress(OSError):
        if root is not None:
            shutil.rmtree(root)
            return
        for name in RUN_FILES:
            (Path(path) / name).unlink(missing_ok=True)
        if not keep_masks:
            (Path(path) / MASK_DIR).rmdir()  # only if empty: never a folder of the user's


def _check_place(path: Path, *, file: bool = False) -> None:
    """Refuse ``path`` (a folder, or with ``file`` a file) under a file, or in a folder that cannot be written."""
    target = path.absolute()
    existing = target.parent if file else target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir() and existing != target:
        raise RunError(f"{path}: {existing} is a file, so nothing can be made under it; choose another place")
    folder = existing if existing.is_dir() else existing.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunError(
            f"{path}: cannot write in {folder} (permission denied); choose a folder you can write to"
        )


def _check_not_a_run(path: Path) -> None:
    if not (path / RUN_FILE).exists():
        if (path / DB_FILE).exists():
            raise RunError(
                f"{path}: holds {DB_FILE} but no {RUN_FILE} (a half-created run); delete the folder"
            )
        return
    try:
        info = read_info(path)
    except RunError:
        raise RunError(f"{path}: holds an unreadable {RUN_FILE}; choose another folder") from None
    kind, status = info.get("kind"), info.get("status")
    if kind in MULTI_RUN_KINDS:
        raise RunError(f"{path}: holds a {kind} (its runs are in subfolders); choose another folder")
    resume = RESUME_COMMANDS.get(kind)
    what = f"{_article(str(status))} {status} {kind} run"
    if status != "finished" and resume is not None:
        raise RunError(f"{path}: already holds {what}; resume it ({resume} {path}) or choose another folder")
    raise RunError(f"{path}: already holds {what}; choose another folder")


def _article(word: str) -> str:
    """``a`` or ``an`` before ``word`` (an interrupted run, a failed run)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _check_not_inside_a_run(path: Path) -> None:
    for folder in path.absolute().parents:
        if not (folder / RUN_FILE).is_file():
            continue
        try:
            kind = read_info(folder).get("kind")
        except RunError:
            continue  # not a readable run: a folder like any other
        if kind in MULTI_RUN_KINDS:
            return  # a sweep's (or lottery's...) runs live in its subfolders
        raise RunError(f"{path}: inside the {kind} run {folder}; choose a folder outside it")


def _same_file(a: Path, b: Path) -> bool:
    if a.absolute() == b.absolute() or a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
