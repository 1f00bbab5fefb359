"""The run store (SPEC §8): self-contained, crash-safe run directories, and the jobs that fill them.

Training (ITOP21 / RigL with full-spectrum tracking, FS23 §4), PAGS/PEGS
sampling (FS23 §5) and analyses record into a :class:`RunStore`; the app, the
``runs`` and ``export`` commands and scripts read runs back with
:meth:`RunStore.open`, :func:`list_runs` and :func:`export_run`.

Modules:

* :mod:`~fullspectrum.runs.store`: :class:`RunStore`, create/open/append/finish a run directory;
* :mod:`~fullspectrum.runs.database`: the ``metrics.sqlite`` schema (the pinned ``*_COLUMNS``),
  transactions and typed reads;
* :mod:`~fullspectrum.runs.run_file`: ``run.json`` (status, heartbeat, versions) and the writer lock;
* :mod:`~fullspectrum.runs.mask_files`: bit-packed mask snapshots under ``masks/``;
* :mod:`~fullspectrum.runs.listing`: every run under a folder, summarised;
* :mod:`~fullspectrum.runs.export`: a run's tables as CSV/Parquet files;
* :mod:`~fullspectrum.runs.ingest`: a user's checkpoint turned into an ``analysis`` run;
* :mod:`~fullspectrum.runs.jobs`: long work as detached job processes (how the app starts, stops
  and resumes a training, a sampling or an ingest, and finds them again);
* :mod:`~fullspectrum.runs.naming`: the folder names of runs started for a user;
* :mod:`~fullspectrum.runs.outputs`: where a command may write (new run folders, output files):
  nothing of the user's is replaced, and a bad place is refused in one line before anything is made;
* :mod:`~fullspectrum.runs.uploads`: files uploaded to the app, kept by content in one folder per
  browser session, and removed when refused or left behind.
"""

from fullspectrum.runs.database import (
    EVAL_COLUMNS,
    EVENT_COLUMNS,
    LAYER_COLUMNS,
    POPULATION_COLUMNS,
    RunError,
)
from fullspectrum.runs.export import EXPORT_FORMATS, export_run
from fullspectrum.runs.listing import RunSummary, list_runs
from fullspectrum.runs.run_file import HEARTBEAT_TIMEOUT_S, effective_status
from fullspectrum.runs.store import RUN_KINDS, RunStore

__all__ = [
    "EVAL_COLUMNS",
    "EVENT_COLUMNS",
    "EXPORT_FORMATS",
    "HEARTBEAT_TIMEOUT_S",
    "LAYER_COLUMNS",
    "POPULATION_COLUMNS",
    "RUN_KINDS",
    "RunError",
    "RunStore",
    "RunSummary",
    "effective_status",
    "export_run",
    "list_runs",
]
