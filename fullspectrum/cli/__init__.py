"""The ``fullspectrum`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(args) -> int``. Exit codes (SPEC §8): 0 success, 2 bad input (one
line naming the input and the problem), 1 unexpected failure (one line plus the
path of a log with the details), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
import traceback
from pathlib import Path

from fullspectrum import __version__
from fullspectrum.errors import FullSpectrumError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fullspectrum",
        description="Sparse neural networks as graphs: full-spectrum analysis, sparse training, PAGS/PEGS.",
    )
    parser.add_argument("--version", action="version", version=f"fullspectrum {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    return run_handler(args)


def run_handler(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except FullSpectrumError as error:
        print(f"fullspectrum: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("fullspectrum: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # unexpected: one line, details in a log
        log = Path(tempfile.mkstemp(prefix="fullspectrum-", suffix=".log")[1])
        log.write_text(traceback.format_exc())
        print(f"fullspectrum: unexpected {type(error).__name__}: {error} (details: {log})", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
