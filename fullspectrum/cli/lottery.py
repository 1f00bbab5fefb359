"""``fullspectrum lottery``: a lottery ticket by iterative magnitude pruning with rewinding (SPEC §9).

``fullspectrum lottery --density 0.01 --rewind-iters 500 --model resnet20 --data cifar10 --out DIR``
trains the dense network, prunes 20% of the remaining Conv/Linear weights by
global |w| (the classifier too, unless ``--keep-classifier-dense``), rewinds the
survivors to their iteration-``k`` values and trains again, level after level
down to exactly ``round(d·N)`` weights (open_lth's defaults; 21 levels at
``d = 0.01``). Each level is a training run in ``DIR/level_RR``; the ticket is
``DIR/lottery_mask.pt`` (its mask and the rewound weights, for ``train --mask``)
and ``DIR/levels.csv`` has each level's density, test accuracy and iterations.
It takes every option of ``train`` except those the method fixes (``--method``,
``--mask``, ``--init``, ``--sparse-init``). Ctrl-C, or a kill, leaves DIR
resumable: ``fullspectrum lottery --resume DIR``, or the same command again.
"""

from __future__ import annotations

import argparse
import sys

from fullspectrum.cli import EXIT_INTERRUPTED, EXIT_OK
from fullspectrum.cli._common import non_negative_int
from fullspectrum.cli.train import RUN_FLAGS, add_config_arguments, given_config, with_progress_and_sigint
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs.outputs import NONEMPTY_OPT_IN
from fullspectrum.tickets import LotteryConfig, LotteryResult, resume_lottery, run_lottery
from fullspectrum.tickets.config import SET_PER_TRAINING
from fullspectrum.training import TrainConfig


def pruning_density(text: str) -> float:
    """``--density`` of a pruned network: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"must be a number in (0, 1) (the fraction of weights kept), got {text!r}"
        )
    return value


def add_search_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    """The options ``lottery`` and ``earlybird`` share: ``train``'s run options, ``--density``, the folder."""
    parser.add_argument(
        "--density", type=pruning_density, help="fraction of the prunable weights the ticket keeps, in (0, 1)"
    )
    add_config_arguments(parser, skip=SET_PER_TRAINING)
    parser.add_argument(
        "--out",
        metavar="DIR",
        help=f"folder of the {what}: new or empty, or one holding this {what} (continued)",
    )
    parser.add_argument(
        NONEMPTY_OPT_IN, action="store_true", help="let --out be a folder that already holds other files"
    )
    parser.add_argument("--resume", metavar="DIR", help=f"continue the interrupted {what} in DIR")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lottery",
        help="find a lottery ticket: iterative magnitude pruning with rewinding (IMP)",
        description=(
            "Train, prune 20% of the remaining weights by global |w|, rewind the survivors to iteration k "
            "and train again, down to --density (Frankle & Carbin 2019; Frankle et al. 2020; open_lth). "
            "Takes every train option except --method, --mask, --init and --sparse-init."
        ),
    )
    add_search_arguments(parser, what="lineage")
    parser.add_argument(
        "--rewind-iters",
        type=non_negative_int,
        help="iteration k of the dense run the survivors rewind to (default 0: the original lottery ticket)",
    )
    parser.add_argument("--keep-classifier-dense", action="store_true", help="never prune the output layer")
    parser.set_defaults(handler=run)


def search_call(args: argparse.Namespace, *, own: dict, make_config, start, resume_in):
    """``call(progress, stop)`` for a search: ``--resume DIR`` alone, or a new/continued ``--out DIR``."""
    given = given_config(args)
    if args.resume is not None:
        extra = [
            *(f"--{name.replace('_', '-')}" for name, value in own.items() if value not in (None, False)),
            *(["--out"] if args.out else []),
            *([NONEMPTY_OPT_IN] if args.allow_nonempty else []),
        ]
        flags = [*(RUN_FLAGS[field] for field in given), *extra]
        if flags:
            raise FullSpectrumError(
                f"--resume continues a search with its own options; drop {', '.join(flags)}"
            )
        return lambda progress, stop: resume_in(args.resume, progress=progress, stop_event=stop)
    if args.out is None:
        raise FullSpectrumError("give --out DIR for a new search (or --resume DIR to continue one)")
    if args.density is None:
        raise FullSpectrumError("give --density D, the fraction of weights the ticket keeps, in (0, 1)")
    config = make_config(TrainConfig(**given))
    return lambda progress, stop: start(
        config, args.out, progress=progress, stop_event=stop, allow_nonempty=args.allow_nonempty
    )


def run(args: argparse.Namespace) -> int:
    own = {
        "density": args.density,
        "rewind_iters": args.rewind_iters,
        "keep_classifier_dense": args.keep_classifier_dense,
    }
    call = search_call(
        args,
        own=own,
        make_config=lambda train: LotteryConfig(
            train,
            density=args.density,
            rewind_iters=args.rewind_iters or 0,
            keep_classifier_dense=args.keep_classifier_dense,
        ),
        start=run_lottery,
        resume_in=resume_lottery,
    )
    result: LotteryResult = with_progress_and_sigint(call)
    if result.status == "interrupted":
        level, step, total = result.interrupted_at
        print(
            f"fullspectrum: interrupted at level {level} of {len(result.schedule) - 1}, step {step}/{total}; "
            f"continue with: fullspectrum lottery --resume {result.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.already_finished:
        print(f"{result.run_dir}: this lineage has already finished")
    for level in result.levels:
        accuracy = "n/a" if level.accuracy is None else f"{level.accuracy:.4f}"
        print(
            f"level {level.level:2d}: density {level.density:.4f} ({level.kept} prunable kept), "
            f"test accuracy {accuracy}, {level.iterations} iterations"
        )
    accuracy = "n/a" if result.test_accuracy is None else f"{result.test_accuracy:.4f}"
    print(
        f"{result.mask_file}: the ticket; test accuracy {accuracy}; "
        f"{len(result.levels)} trainings, {result.iterations} iterations in all"
    )
    return EXIT_OK
