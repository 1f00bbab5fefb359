"""The run store (SPEC §8): self-contained, crash-safe run directories.

Training (ITOP21 / RigL with full-spectrum tracking, FS23 §4), PAGS/PEGS
sampling (FS23 §5) and analyses record into a :class:`RunStore`; the app, the
``runs`` and ``export`` commands and scripts read runs back with
:meth:`RunStore.open`, :func:`list_runs` and :func:`export_run`.
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
