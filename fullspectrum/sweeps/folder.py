"""A sweep's folder (SPEC §8): its own ``run.json`` of kind ``sweep``, its points' runs in subfolders.

::

    DIR/run.json          kind "sweep": status, the grid (config), backend, progress, final counts
    DIR/metrics.sqlite    empty tables: the folder opens like any run (``fullspectrum runs``, the app)
    DIR/grid.toml         the grid file as it was given the first time
    DIR/points.csv        one row per point: its options, run, status, error, its run's final values
    DIR/logs/NAME.log     what each point's command printed
    DIR/NAME/             each point's own run folder, written by its command alone

The driver (:mod:`~fullspectrum.sweeps.runner`) is the only writer of these files, and writes
each atomically. A second invocation with the same grid opens the folder again (as the writer,
so two drivers never share it); a different grid into the same folder is refused, and so is a
folder that holds anything else (:func:`~fullspectrum.runs.outputs.check_new_run_folder`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from fullspectrum.checkpoints.atomic import write_atomic, write_json_atomic
from fullspectrum.runs import RunError, RunStore
from fullspectrum.runs import database as db
from fullspectrum.runs.outputs import check_new_run_folder, created_root, remove_partial_run
from fullspectrum.runs.run_file import (
    DB_FILE,
    RUN_FILE,
    RUN_FORMAT,
    collect_versions,
    read_info,
    release_writer_lock,
    take_writer_lock,
    utc_now,
)
from fullspectrum.sweeps.grid import GridError

SWEEP_KIND = "sweep"
GRID_FILE = "grid.toml"
POINTS_FILE = "points.csv"
LOG_DIR = "logs"


def open_sweep_folder(
    path: str | Path, config: dict, *, grid_text: str, device: str, source: str
) -> RunStore:
    """The sweep folder ``path`` opened for writing: made if new, reopened if it holds this grid's sweep.

    ``config``: the grid as JSON (``SweepGrid.as_dict()``); ``grid_text``: the file, kept as
    ``grid.toml``; ``device``: what the points run on, for ``run.json``. A folder holding
    something else, or a sweep of another grid, is one line of bad input.
    """
    path = Path(path)
    if (path / RUN_FILE).is_file():
        info = read_info(path)
        if info.get("kind") == SWEEP_KIND:
            if info.get("config") != config:
                raise GridError(
                    f"{path}: holds a sweep of a different grid (its {GRID_FILE}); give {source} "
                    "its own --out folder, or run that sweep's grid"
                )
            store = RunStore.open(path, readonly=False)  # a second driver stops here
            store.update_info(status="running", heartbeat=utc_now())
            return store
    check_new_run_folder(path)
    made = created_root(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = take_writer_lock(path)
        try:
            db.connect_writer(path / DB_FILE, create=True).close()  # empty tables: a run every reader opens
            write_atomic(path / GRID_FILE, lambda handle: handle.write(grid_text.encode("utf-8")))
            write_json_atomic(path / RUN_FILE, _new_info(config, device))
        finally:
            release_writer_lock(path, lock)
    except BaseException as error:
        remove_partial_run(path, made)
        if made is None:
            (path / GRID_FILE).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise RunError(f"{path}: cannot create the sweep here ({error.strerror or error})") from None
        raise
    return RunStore.open(path, readonly=False)


def _new_info(config: dict, device: str) -> dict:
    now = utc_now()
    return {
        "format": RUN_FORMAT,
        "status": "running",
        "kind": SWEEP_KIND,
        "config": config,
        "seed": None,  # each point has its own (an option of its command)
        "versions": collect_versions(),
        "device": device,
        "created": now,
        "updated": now,
        "heartbeat": now,
        "final": {},
    }


def write_points_table(path: Path, columns: Sequence[str], rows: Sequence[Mapping]) -> None:
    """``points.csv`` (atomic): ``columns`` in order, one row per point, empty cells for missing values."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in columns})
    text = buffer.getvalue()
    write_atomic(Path(path) / POINTS_FILE, lambda handle: handle.write(text.encode("utf-8")))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def log_file(path: Path, name: str) -> Path:
    """Where point ``name``'s output goes (the folder made if missing)."""
    folder = Path(path) / LOG_DIR
    folder.mkdir(exist_ok=True)
    return folder / f"{name}.log"
