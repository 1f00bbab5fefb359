"""``fullspectrum earlybird``: an unstructured Early-Bird ticket drawn from dense training (SPEC §9).

``fullspectrum earlybird --density 0.01 --model resnet20 --data cifar10 --out DIR``
trains the dense network and, at the end of every epoch, takes the
global-magnitude mask at ``--density``; at the first epoch whose mask differs by
less than 0.1 (the share of the kept set that changed) from each of the
previous four, the dense run stops and the ticket is drawn (You et al., ICLR
2020; at the last epoch when no epoch qualifies). The sparse network then
trains from the ticket's weights for the standard budget. Writes
``DIR/earlybird_mask.pt``, ``DIR/epochs.csv`` (the criterion per epoch) and the
ticket's epoch in ``DIR/run.json``'s ``final``. It takes every option of
``train`` except those the method fixes; Ctrl-C, or a kill, leaves DIR
resumable: ``fullspectrum earlybird --resume DIR``, or the same command again.
"""

from __future__ import annotations

import argparse
import sys

from fullspectrum.cli import EXIT_INTERRUPTED, EXIT_OK
from fullspectrum.cli.lottery import add_search_arguments, search_call
from fullspectrum.cli.train import with_progress_and_sigint
from fullspectrum.tickets import EarlyBirdConfig, EarlyBirdResult, resume_earlybird, run_earlybird


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "earlybird",
        help="draw an Early-Bird ticket from dense training, then train it",
        description=(
            "Dense training with the global-magnitude mask at --density taken after every epoch; the ticket is "
            "drawn at the first epoch whose mask changed by less than 0.1 of its kept set against each of the "
            "previous four (You et al. 2020), then trained from its weights for the full budget. Takes every "
            "train option except --method, --mask, --init and --sparse-init."
        ),
    )
    add_search_arguments(parser, what="Early-Bird search")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    call = search_call(
        args,
        own={"density": args.density},
        make_config=lambda train: EarlyBirdConfig(train, density=args.density),
        start=run_earlybird,
        resume_in=resume_earlybird,
    )
    result: EarlyBirdResult = with_progress_and_sigint(call)
    if result.status == "interrupted":
        stage, step, total = result.interrupted_at
        what = "the dense search" if stage == "search" else "the ticket's training"
        print(
            f"fullspectrum: interrupted in {what} at step {step}/{total}; "
            f"continue with: fullspectrum earlybird --resume {result.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if result.already_finished:
        print(f"{result.run_dir}: this Early-Bird search has already finished")
    drawn = "the criterion held" if result.emerged else "no epoch qualified, the last one's mask"
    accuracy = "n/a" if result.test_accuracy is None else f"{result.test_accuracy:.4f}"
    print(
        f"{result.mask_file}: ticket drawn at epoch {result.ticket_epoch} ({drawn}); "
        f"test accuracy {accuracy}; {result.search_iterations} search + "
        f"{result.iterations - result.search_iterations} training iterations"
    )
    return EXIT_OK
