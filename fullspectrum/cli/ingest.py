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
    parser.add_argument("--out", metavar="DIR", required=True, help="run directory to create")
    parser.add_argument(
        "--convention",
        choices=CONVENTIONS,
        default="fs23",
        help="iterative-mean convention (default fs23)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    bar = tqdm(unit="layer", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        store = ingest_checkpoint(args.checkpoint, args.out, convention=args.convention, progress=progress)
    finally:
        bar.close()
    layers = store.info.get("final", {}).get("layers")
    print(f"{store.path}: analysis run with {layers} layers")
    return 0
