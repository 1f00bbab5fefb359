"""``fullspectrum export RUN_DIR --format csv|parquet --out DIR`` (SPEC §8).

Writes ``layers``, ``evals``, ``events`` and, for PAGS runs, ``population``,
each with its pinned header even when empty, and prints the files written; it
never replaces a file (the library's ``export_run`` refuses one of the same name).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fullspectrum.runs import EXPORT_FORMATS, export_run


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a run's tables as CSV or Parquet",
        description="Export the layers, evals, events (and PAGS population) tables of a run directory.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory (holds run.json)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="csv", help="file format (default: csv)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        required=True,
        help="folder for the exported files (made if missing); a file of the same name there is never "
        "replaced: the export is refused",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for file in export_run(args.run_dir, args.out, args.format):
        print(file)
    return 0
