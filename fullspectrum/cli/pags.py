"""``fullspectrum pags``: PAGS / PEGS mask sampling into a run directory (SPEC §5, §8; FS23).

Builds ``--model`` for ``--data`` at the initialisation seeded by ``--seed``,
makes the base mask with ``--generator`` at ``--density``, draws
``--population`` candidates with the base mask's per-layer budgets, and keeps
per layer the best one under ``--rule``. ``--warmup-iters N > 0`` is PEGS: the
dense network first trains for ``N`` SGD iterations. Writes a run directory
``--out`` with the scored population and ``pags_mask.pt`` / ``base_mask.pt``,
which ``fullspectrum train --mask`` and ``fullspectrum analyze`` read.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from fullspectrum.cli._common import add_device_argument, add_model_data_arguments, names
from fullspectrum.pruning import GENERATOR_NAMES
from fullspectrum.sampling import SELECTION_RULES, SamplingConfig, run_pags
from fullspectrum.sampling.embedding import embedding_table


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pags",
        help="PAGS/PEGS: sample masks per layer by their full-spectrum score (FS23)",
        description=(
            "Pruning at initialisation as graph sampling (FS23): draw candidate masks from a generator with "
            "the base mask's per-layer budgets and assemble the best layer of each; --warmup-iters > 0 "
            "is PEGS (after a dense warm-up). Writes a run directory with pags_mask.pt and base_mask.pt."
        ),
    )
    add_model_data_arguments(parser)
    parser.add_argument("--generator", default="snip", help=f"mask generator: {names(GENERATOR_NAMES)}")
    parser.add_argument("--density", type=float, default=0.01, help="fraction of weights kept (default 0.01)")
    parser.add_argument("--population", type=int, default=100, help="candidates drawn (default 100, FS23)")
    parser.add_argument(
        "--iters-per-candidate", type=int, default=2, help="minibatches per data-driven candidate (default 2)"
    )
    parser.add_argument(
        "--warmup-iters",
        type=int,
        default=0,
        help="dense SGD iterations first: 0 = PAGS, > 0 = PEGS (default 0)",
    )
    parser.add_argument(
        "--rule", default="fs23", help=f"per-layer selection: {names(SELECTION_RULES)} (default fs23)"
    )
    parser.add_argument(
        "--score-from",
        default="origin",
        help="score ||u|| from the origin (default) or from the base mask's u",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="run directory to create")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation, base mask and candidates")
    parser.add_argument("--split-seed", type=int, default=0, help="train/validation split seed (default 0)")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (same result for any number)"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--batch-size", type=int, help="candidate and warm-up minibatch size (default: preset)"
    )
    parser.add_argument(
        "--warmup-lr", type=float, help="warm-up learning rate (default: the dataset's preset)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = SamplingConfig(
        model=args.model,
        data=args.data,
        generator=args.generator,
        density=args.density,
        population=args.population,
        iters_per_candidate=args.iters_per_candidate,
        warmup_iters=args.warmup_iters,
        rule=args.rule,
        score_from=args.score_from,
        seed=args.seed,
        split_seed=args.split_seed,
        batch_size=args.batch_size,
        warmup_lr=args.warmup_lr,
        workers=args.workers,
        device=args.device,
        data_dir=args.data_dir,
    )
    with tqdm(desc=config.method, unit="step", file=sys.stderr, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.set_description("warm-up" if done <= config.warmup_iters else "candidates", refresh=False)
            bar.refresh()

        result = run_pags(config, args.out, progress=progress, embed=embedding_table)
    summary = result.summary()
    print(
        f"wrote {result.run_dir}: {config.method} over {args.generator} on {args.model}/{args.data}, "
        f"{summary['population']} candidates, {summary['layers_replaced']} of {summary['layers']} layers "
        f"replaced, mean score {summary['base_mean_score']:.4g} -> {summary['assembled_mean_score']:.4g}, "
        f"kept {summary['kept']} of {summary['total']} weights"
    )
    return 0
