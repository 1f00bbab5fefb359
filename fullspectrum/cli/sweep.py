"""``fullspectrum sweep GRID.toml --out DIR``: a grid of runs, one run folder per point, locally or on Ray.

The grid file (:mod:`fullspectrum.sweeps.grid`) names a command (``train``, ``pags``,
``lottery``, ``earlybird``: any command that writes a resumable run), a ``[fixed]`` table of its
options and a ``[grid]`` table of lists whose product is swept, or several chained stages. The
whole grid is checked against each command's own argument parser before anything runs, so a
misspelt option or a bad value is one line and exit 2, with nothing made.

Each point runs as ``python -m fullspectrum COMMAND ... --out DIR/NAME``; ``--backend local``
(default) runs ``--max-parallel`` of them at a time on this machine, ``--backend ray`` runs them
as Ray tasks, on a local Ray or on the cluster ``--address`` names (a point with ``device =
"cuda"`` asks Ray for a GPU). Running the same command again skips finished points and resumes
interrupted ones; ``DIR/points.csv`` holds one row per point (its options, ``run``, ``status``,
``error`` and its run's ``final`` values). Exit status: 0 when every point has finished, 1 when
some failed (each failure is reported on stderr and in the table), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from fullspectrum.cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, build_parser
from fullspectrum.cli._common import positive_int
from fullspectrum.cli._progress import RunsProgress
from fullspectrum.sweeps import BACKENDS, SWEEP_OPTIONS, CommandSpec, OptionSpec, launch_sweep, load_grid

_SKIPPED = ("help", "version")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of train/pags/lottery/earlybird runs (locally or on Ray), one run folder per point",
        description=(
            "Expand a TOML grid (command, [fixed] options, [grid] lists swept as a product, or chained "
            "[stage.NAME] tables) into one run folder per point under --out, run them in parallel, and "
            "write DIR/points.csv. Running it again skips finished points and resumes interrupted ones."
        ),
    )
    parser.add_argument("grid", metavar="GRID.toml", help="the grid file")
    parser.add_argument("--out", metavar="DIR", required=True, help="the sweep folder (new, or this grid's)")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="local", help="local processes (default) or Ray tasks"
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="with --backend ray: the running cluster to join (HOST:6379 or auto); default: a local Ray",
    )
    parser.add_argument(
        "--max-parallel",
        type=positive_int,
        metavar="N",
        help="points running at once (default: local, one per CPU core; ray, as many as the cluster fits)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    commands = sweepable_commands(build_parser())
    grid = load_grid(args.grid)
    grid_text = Path(args.grid).read_text(encoding="utf-8")
    with RunsProgress("points", unit="point", command="sweep") as bar:
        result = launch_sweep(
            grid,
            grid_text,
            args.out,
            commands,
            backend=args.backend,
            address=args.address,
            max_parallel=args.max_parallel,
            progress=bar.progress,
            notify=bar.notify,
        )
    table = Path(args.out) / "points.csv"
    if result.interrupted:
        print(
            f"fullspectrum: interrupted; continue with: fullspectrum sweep {args.grid} --out {args.out}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    total, finished = len(result.points), result.count("finished")
    if not result.all_finished:
        print(
            f"fullspectrum sweep: {total - finished} of {total} points did not finish "
            f"({result.count('failed')} failed, {result.count('skipped')} skipped; table {table}, logs in "
            f"{Path(args.out) / 'logs'}); run the same command again to retry them",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(
        f"{args.out}: {finished} of {total} points finished ({result.ran} run now, "
        f"{total - result.ran} had finished before); table {table}"
    )
    return EXIT_OK


def sweepable_commands(parser: argparse.ArgumentParser) -> dict[str, CommandSpec]:
    """The commands a sweep may run (those that write a run with ``--out`` and continue one with
    ``--resume``), each described from its own parser."""
    commands = {}
    for name, command in parser.commands.items():
        flags = command._option_string_actions
        if name != "sweep" and "--out" in flags and "--resume" in flags:
            commands[name] = describe_command(name, command)
    return commands


def describe_command(name: str, parser: argparse.ArgumentParser) -> CommandSpec:
    """A command's options as a grid names them (``batch_size`` for ``--batch-size``), and its parser as the check."""
    options = {}
    for action in parser._actions:
        long = [flag for flag in action.option_strings if flag.startswith("--")]
        if not long or action.dest in _SKIPPED:
            continue
        key = long[0].removeprefix("--").replace("-", "_")
        if key in SWEEP_OPTIONS:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            kind = "toggle"
        elif isinstance(action, argparse._StoreTrueAction):
            kind = "switch"
        else:
            kind = "value"
        options[key] = OptionSpec(long[0], kind)
    return CommandSpec(
        name, options, resumable="--resume" in parser._option_string_actions, check=_checker(parser)
    )


def _checker(parser: argparse.ArgumentParser):
    def check(argv: list[str]) -> str | None:
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                parser.parse_args(argv)
        except SystemExit:
            message = " ".join(said.getvalue().split())
            message = message.split(": error: ", 1)[-1]
            return message.rsplit(" (see ", 1)[0] or "refused by the command's parser"
        return None

    return check
