"""``fullspectrum reproduce fs23-table --preset quick|cpu|paper --out DIR``: FS23's table, with statistics.

Runs SPEC §9's comparison — the generators' masks, PAGS over each, PEGS@100/@500, IMP with
rewind 0 and rewind k, Early-Bird, each trained the same way, over several seeds — as one
chained sweep (:mod:`fullspectrum.reproduction.fs23_grid`) inside ``DIR``, then writes
``DIR/results.csv`` (mean ± 95% CI per method and density, cost in iterations) and
``DIR/report.md`` (the claims, paired by seed and Holm-corrected, and FS23's distance-accuracy
correlation over ITOP runs with the density-only baseline). Running the same command again
continues where it stopped. ``--backend ray`` runs the points as Ray tasks.
"""

from __future__ import annotations

import argparse
import sys

from fullspectrum.cli import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, build_parser
from fullspectrum.cli._common import positive_int
from fullspectrum.cli._progress import RunsProgress
from fullspectrum.cli.sweep import sweepable_commands
from fullspectrum.devices import DEVICE_CHOICES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.reproduction.fs23_table import REPORT_FILE, RESULTS_FILE, run_fs23_table
from fullspectrum.reproduction.presets import PRESET_NAMES, preset
from fullspectrum.sweeps import BACKENDS

TABLES = ("fs23-table",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="reproduce a paper's table (fs23-table: PAGS/PEGS vs generators, IMP, Early-Bird) with CIs",
        description=(
            "Reproduce FS23's Tables 2-3 (SPEC §9) through the sweep machinery: every method trained the "
            "same way over several seeds; writes DIR/results.csv and DIR/report.md. Running it again "
            "continues an interrupted reproduction."
        ),
    )
    parser.add_argument("table", choices=TABLES, help="what to reproduce")
    parser.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="quick",
        help="quick (2 seeds, digits, d=0.05: minutes), cpu (digits and MNIST-1D, d=0.01 and 0.05, 5 seeds: "
        "about 2 hours on 2 cores), paper (ResNet-18, CIFAR-100 from --data-dir, d=0.01: a GPU or a cluster)",
    )
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="the reproduction folder (new, or this one's)"
    )
    parser.add_argument("--data-dir", metavar="DIR", help="folder of datasets that need files (CIFAR)")
    parser.add_argument(
        "--device", choices=DEVICE_CHOICES, help="device of every run (default: the preset's)"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="local", help="local processes (default) or Ray tasks"
    )
    parser.add_argument("--address", metavar="ADDR", help="with --backend ray: the running cluster to join")
    parser.add_argument(
        "--max-parallel", type=positive_int, metavar="N", help="runs at once (default: one per core)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.address is not None and args.backend != "ray":  # before the reproduction folder is made
        raise FullSpectrumError("--address names a Ray cluster to join; add --backend ray")
    chosen = preset(args.preset)
    if any(d.startswith("cifar") for d in chosen.datasets) and not args.data_dir:
        raise FullSpectrumError(
            f"--preset {chosen.name} trains on {', '.join(chosen.datasets)}: give --data-dir"
        )
    commands = sweepable_commands(build_parser())
    with RunsProgress("reproduction", unit="run", command="reproduce") as bar:
        result = run_fs23_table(
            chosen,
            args.out,
            commands=commands,
            backend=args.backend,
            address=args.address,
            max_parallel=args.max_parallel,
            data_dir=args.data_dir,
            device=args.device,
            progress=bar.progress,
            notify=bar.notify,
        )
    if result.sweep.interrupted:
        print(
            f"fullspectrum: interrupted; continue with the same command (--out {args.out})", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    where = f"{args.out}/{RESULTS_FILE} and {args.out}/{REPORT_FILE}"
    if not result.sweep.all_finished:
        failed = result.sweep.count("failed") + result.sweep.count("skipped")
        print(
            f"fullspectrum reproduce: {failed} runs did not finish (see {args.out}/sweep/points.csv); "
            f"tables of the finished ones in {where}; run the same command again to retry",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"{args.out}: {len(result.points)} trained networks; {where}")
    return EXIT_OK
