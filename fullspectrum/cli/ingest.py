"""``fullspectrum ingest CHECKPOINT --out RUN_DIR``: a checkpoint as an ``analysis`` run (SPEC §8).

The app's upload runs this in a worker process; on the command line it turns
any sparse checkpoint into a run directory the ``runs``/``export`` commands and
the app read like a training run (one snapshot at step 0).
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from fullspectrum.runs.ingest import ingest_checkpoint
from fullspectrum.runs.outputs import NONEMPTY_OPT_IN
from fullspectrum.spectrum.metrics import CONVENTIONS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="analyse a sparse checkpoint into an 'analysis' run directory",
        description=(
            "Read a sparse checkpoint (weights_only, never executed), compute every layer's full "
            "spectrum and write a run directory of kind 'analysis' with one snapshot at step 0."
        ),
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.pt, .pth, .safetensors)")
    parser.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="run directory to create: a new or empty folder, or the folder the checkpoint is in "
        "when it holds nothing else (see --allow-nonempty)",
    )
    parser.add_argument(
        NONEMPTY_OPT_IN,
        action="store_true",
        help="let --out be a folder that already holds other files (not a run): the run's files go beside "
        "them, and a file of yours with a name the run writes (source.pt, masks/...) is refused, never replaced",
    )
    parser.add_argument(
        "--convention",
        choices=CONVENTIONS,
        default="fs23",
        help="iterative-mean convention (default fs23)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    bars: list[tqdm] = []  # made on the first call, so a refused input prints only its error line

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="layer", file=sys.stderr, dynamic_ncols=True))
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    try:
        store = ingest_checkpoint(
            args.checkpoint,
            args.out,
            convention=args.convention,
            progress=progress,
            allow_nonempty=args.allow_nonempty,
        )
    except BaseException:
        for bar in bars:  # the error's one line is what stays on the terminal
            bar.leave = False
        raise
    finally:
        for bar in bars:
            bar.close()
    layers = store.info.get("final", {}).get("layers")
    print(f"{store.path}: analysis run with {layers} layers")
    return 0
