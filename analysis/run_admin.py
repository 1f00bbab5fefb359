"""Tag, rename and delete runs the app made, never the read-only ones (``cached_runs``, added folders).

A run is *editable* when it lies under the app's workspace (the folder it writes
new runs into) and no job is writing it. Tags and a display title are fields
of ``run.json`` (``tags``, ``title``); the folder is never renamed, so the paths
other runs record (a static run's ``--mask`` file) stay valid. Deleting removes
the run's folder.

>>> normalise_tags(" best, seed sweep ,best,, ")
['best', 'seed sweep']
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import RunStore, jobs

MAX_TAG = 40
"""Longest tag kept (characters)."""


def refusal(path: str | Path, workspace: str | Path) -> str | None:
    """Why the run at ``path`` may not be edited (one line), or None."""
    path, workspace = Path(path).absolute(), Path(workspace).absolute()
    if not path.is_relative_to(workspace) or path == workspace:
        return f"{path.name}: a read-only run (only the app's own runs under {workspace} can be changed)"
    if jobs.job_state(path).active:
        return f"{path.name}: a job is still writing it; stop it first"
    return None


def _check(path: str | Path, workspace: str | Path) -> None:
    reason = refusal(path, workspace)
    if reason:
        raise FullSpectrumError(reason)


def normalise_tags(text: str | list[str]) -> list[str]:
    """Comma-separated tags (or a list) stripped, cut to :data:`MAX_TAG` characters, first-seen order."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return list(dict.fromkeys(tag.strip()[:MAX_TAG] for tag in parts if tag.strip()))


def _update(path: str | Path, **fields) -> None:
    """Merge ``fields`` into ``run.json`` as the run's (momentary) writer."""
    store = RunStore.open(path, readonly=False)
    try:
        store.update_info(**fields)
    finally:
        store.close()


def set_tags(path: str | Path, tags: str | list[str], *, workspace: str | Path) -> list[str]:
    """Replace the run's tags; returns them."""
    _check(path, workspace)
    clean = normalise_tags(tags)
    _update(path, tags=clean)
    return clean


def rename(path: str | Path, title: str, *, workspace: str | Path) -> str:
    """Give the run a display title (empty: back to its folder name); the folder keeps its name."""
    _check(path, workspace)
    clean = " ".join(str(title).split())[:120]
    _update(path, title=clean or None)
    return clean


def delete(path: str | Path, *, workspace: str | Path) -> None:
    """Remove the run's folder."""
    _check(path, workspace)
    RunStore.open(path)  # a run, not some other folder
    shutil.rmtree(path)
