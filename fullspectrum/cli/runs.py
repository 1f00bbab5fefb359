"""``fullspectrum runs ROOT``: list every run directory under a folder (SPEC §8).

One line per run: kind, model, data, method, density, seed, status (a job that
stopped refreshing its heartbeat shows as ``interrupted``; an unreadable run as
``corrupt``, with the reason on stderr), final test accuracy, last step, path.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from fullspectrum.runs import RunSummary, list_runs

FORMATS = ("table", "csv", "json")
_TABLE_COLUMNS = (
    ("kind", "kind"),
    ("model", "model"),
    ("data", "data"),
    ("method", "method"),
    ("density", "density"),
    ("seed", "seed"),
    ("status", "status"),
    ("final accuracy", "final_accuracy"),
    ("steps", "steps"),
    ("path", "path"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list the runs under a folder",
        description="List every run directory under ROOT with its status and final accuracy.",
    )
    parser.add_argument("root", metavar="ROOT", type=Path, help="folder to search (recursively)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.set_defaults(handler=run)


def _cell(field: str, value) -> str:
    if value is None:
        return "-"
    if field == "final_accuracy":
        return f"{value:.4f}"
    if field == "density":
        return f"{value:g}"
    return str(value)


def format_table(runs: list[RunSummary]) -> str:
    """The runs as an aligned text table with a header line."""
    rows = [[header for header, _ in _TABLE_COLUMNS]]
    rows += [[_cell(field, getattr(run, field)) for _, field in _TABLE_COLUMNS] for run in runs]
    widths = [max(len(row[index]) for row in rows) for index in range(len(_TABLE_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    runs = list_runs(args.root)
    if not runs:
        print(f"fullspectrum: no runs under {args.root}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([summary.as_dict() for summary in runs], indent=2))
    elif args.format == "csv":
        fields = list(RunSummary.__dataclass_fields__)
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(summary.as_dict() for summary in runs)
    else:
        if runs:
            print(format_table(runs))
        for summary in runs:
            if summary.error:
                print(f"fullspectrum: warning: corrupt run: {summary.error}", file=sys.stderr)
    return 0
