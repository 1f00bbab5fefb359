"""The ``fullspectrum`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(args) -> int``. Exit codes (SPEC §8): 0 success, 2 bad input (one
line naming the input and the problem), 1 unexpected failure (one line plus the
path of a log with the details), 130 interrupted.

Every moment of a command keeps to them: a flag argparse refuses is one line
that points to ``--help`` (:class:`Parser`), and Ctrl-C is one line and 130
whether it comes while the subcommands' modules import (the first second or
so), while the parser is built or while the handler runs (:func:`main`). This
module itself imports only the standard library and the lightest of the
project's modules, so the console script reaches :func:`main` at once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import NoReturn

from fullspectrum import __version__
from fullspectrum.errors import FullSpectrumError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
INTERRUPTED = "fullspectrum: interrupted"
"""The line Ctrl-C prints (a handler that stops gracefully prints its own, saying how to resume)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``PROG: error: WHAT (see PROG --help)``, exit 2.

    Subcommands' parsers are made with the class of the parser that adds them, so every
    ``fullspectrum COMMAND`` parser is one. ``--help`` still prints the whole help and exits 0.
    """

    commands: dict[str, argparse.ArgumentParser]
    """The subcommands' parsers by name (set by :func:`build_parser`)."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())  # argparse's messages are one line, but keep it so
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    parser = Parser(
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
    parser.commands = dict(subparsers.choices)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fullspectrum ARGV`` and return its exit status (the console script's entry point)."""
    try:
        with _interrupts_held() as interrupted:
            parser = build_parser()
        if interrupted():
            raise KeyboardInterrupt
        try:
            args = parse(parser, argv)
        except SystemExit as done:  # --help, --version, or a refused flag (already printed)
            return EXIT_OK if done.code is None else int(done.code)
        return run_handler(args)
    except KeyboardInterrupt:  # while the subcommands import, or while argparse prints
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def _interrupts_held():
    """Hold Ctrl-C while the subcommands' modules import, and say whether it came.

    A KeyboardInterrupt raised inside an extension module's import (torch's pybind11 callbacks)
    aborts the whole process (``terminate called after throwing ...``, exit -6) instead of reaching
    :func:`main`, so the import phase only notes the signal; :func:`main` acts on it right after.
    """
    pressed: list[bool] = []
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):  # not ours to change (a thread, SIGINT ignored, a caller's own handler)
        yield lambda: False
        return
    signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def parse(parser: Parser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown flag is reported by the subcommand's parser, which names it."""
    args, extras = parser.parse_known_args(argv)
    command = parser.commands.get(args.command, parser)
    if extras:
        command.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "handler", None):
        parser.error(f"give a command: {', '.join(parser.commands)}")
    return args


def run_handler(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except FullSpectrumError as error:
        print(f"fullspectrum: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # unexpected: one line, details in a log
        log = Path(tempfile.mkstemp(prefix="fullspectrum-", suffix=".log")[1])
        log.write_text(traceback.format_exc())
        print(f"fullspectrum: unexpected {type(error).__name__}: {error} (details: {log})", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
