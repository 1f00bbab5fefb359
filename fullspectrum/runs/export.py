"""``export_run``: a run's tables as plain files (SPEC §8, ``fullspectrum export``).

Always writes ``layers``, ``evals`` and ``events``, for PAGS runs (or any
run that recorded a population) ``population``, and for a lottery lineage or an
Early-Bird search the table it keeps beside its ``run.json`` (``levels``,
``epochs``), as CSV or Parquet, each with
its pinned columns even when it has no rows, so scripts and outside checkers
can rely on the headers. Files are written atomically, and never over an
existing file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.errors import unknown_name
from fullspectrum.runs.database import RunError
from fullspectrum.runs.outputs import check_output_folder
from fullspectrum.runs.store import RunStore

EXPORT_FORMATS = ("csv", "parquet")
OWN_TABLES = {"lottery": "levels", "earlybird": "epochs"}
"""Run kind -> the table such a folder keeps as ``<name>.csv`` (IMP's levels, Early-Bird's epochs)."""


def _writer(frame: pd.DataFrame, fmt: str) -> Callable:
    if fmt == "csv":
        return lambda handle: handle.write(frame.to_csv(index=False).encode("utf-8"))
    return lambda handle: frame.to_parquet(handle, index=False, engine="pyarrow")


def export_run(run_dir, out_dir, fmt: str = "csv") -> list[Path]:
    """Write the run's tables to ``out_dir`` as ``<table>.<fmt>``; return the files written.

    ``out_dir`` is made if missing and may hold other files; a file there already
    named like an export file (never replaced), ``out_dir`` being a file, under a
    file or in a folder that cannot be written is a one-line
    :class:`~fullspectrum.runs.RunError`, raised before anything is written
    (:func:`~fullspectrum.runs.outputs.check_output_folder`).
    """
    if fmt not in EXPORT_FORMATS:
        raise unknown_name("export format", fmt, EXPORT_FORMATS)
    store = RunStore.open(run_dir, readonly=True)
    tables = {"layers": store.layers(), "evals": store.evals(), "events": store.events()}
    population = store.population()
    if store.info.get("kind") == "pags" or len(population):
        tables["population"] = population
    own = OWN_TABLES.get(store.info.get("kind"))
    if own is not None and (store.path / f"{own}.csv").is_file():
        tables[own] = pd.read_csv(store.path / f"{own}.csv")
    out_dir = check_output_folder(out_dir, [f"{name}.{fmt}" for name in tables])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"{out_dir}: cannot make the folder ({error.strerror or error})") from None
    written = []
    for name, frame in tables.items():
        file = out_dir / f"{name}.{fmt}"
        write_atomic(file, _writer(frame, fmt))
        written.append(file)
    return written
