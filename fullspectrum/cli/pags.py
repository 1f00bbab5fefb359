"""``fullspectrum pags``: PAGS / PEGS mask sampling into a run directory (SPEC §5, §8; FS23).

Builds ``--model`` for ``--data`` at the initialisation seeded by ``--seed``,
makes the base mask with ``--generator`` at ``--density``, draws
``--population`` candidates with the base mask's per-layer budgets, and keeps
per layer the best one under ``--rule``. ``--warmup-iters N > 0`` is PEGS: the
dense network first trains for ``N`` SGD iterations. Writes a run directory
``--out`` with the scored population and ``pags_mask.pt`` / ``base_mask.pt``,
which ``fullspectrum train --mask`` and ``fullspectrum analyze`` read;
``--mask-format safetensors`` writes ``pags_mask.safetensors`` /
``base_mask.safetensors`` beside them (uint8 masks, ``meta`` in the metadata).

``fullspectrum pags --resume DIR`` continues an interrupted or killed sampling
from its last scored candidate, to the run an uninterrupted one writes (a
finished run: says so and exits 0); only ``--workers`` may be given with it.
Ctrl-C stops the sampling (worker processes included), leaves the run
``interrupted`` and exits 130 with one line that says how to continue.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from tqdm import tqdm

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.cli import EXIT_INTERRUPTED, EXIT_OK
from fullspectrum.cli._common import (
    add_device_argument,
    density,
    names,
    non_negative_int,
    positive_float,
    positive_int,
    seed,
)
from fullspectrum.data import DATASET_NAMES
from fullspectrum.distributed import ray_session
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import MODEL_NAMES
from fullspectrum.pruning import GENERATOR_NAMES
from fullspectrum.runs import RunError, RunStore
from fullspectrum.sampling import SELECTION_RULES, SamplingConfig, resume_pags, run_pags
from fullspectrum.sampling.config import BACKENDS
from fullspectrum.sampling.embedding import embedding_table
from fullspectrum.sampling.setup import BASE_MASK_FILE, PAGS_MASK_FILE

MASK_FORMATS = ("pt", "safetensors")
"""File forms of the run's two mask checkpoints (SPEC §8): ``.pt`` always, ``.safetensors`` on request."""

# SamplingConfig field -> command-line flag, for the options of a new sampling
RUN_FLAGS = {
    "model": "--model",
    "data": "--data",
    "data_dir": "--data-dir",
    "generator": "--generator",
    "density": "--density",
    "population": "--population",
    "iters_per_candidate": "--iters-per-candidate",
    "warmup_iters": "--warmup-iters",
    "rule": "--rule",
    "score_from": "--score-from",
    "seed": "--seed",
    "split_seed": "--split-seed",
    "batch_size": "--batch-size",
    "warmup_lr": "--warmup-lr",
    "device": "--device",
    "backend": "--backend",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pags",
        help="PAGS/PEGS: sample masks per layer by their full-spectrum score (FS23)",
        description=(
            "Pruning at initialisation as graph sampling (FS23): draw candidate masks from a generator with "
            "the base mask's per-layer budgets and assemble the best layer of each; --warmup-iters > 0 "
            "is PEGS (after a dense warm-up). Writes a run directory with pags_mask.pt and base_mask.pt; "
            "--resume DIR continues an interrupted one."
        ),
    )
    default = SamplingConfig()
    parser.add_argument("--model", help=f"model name (required for a new sampling): {names(MODEL_NAMES)}")
    parser.add_argument("--data", help=f"dataset name (required for a new sampling): {names(DATASET_NAMES)}")
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding the CIFAR files")
    parser.add_argument(
        "--generator", help=f"mask generator (default {default.generator}): {names(GENERATOR_NAMES)}"
    )
    parser.add_argument(
        "--density", type=density, help=f"fraction of weights kept (default {default.density})"
    )
    parser.add_argument(
        "--population", type=positive_int, help=f"candidates drawn (default {default.population}, FS23)"
    )
    parser.add_argument(
        "--iters-per-candidate",
        type=positive_int,
        help=f"minibatches per data-driven candidate (default {default.iters_per_candidate})",
    )
    parser.add_argument(
        "--warmup-iters",
        type=non_negative_int,
        help="dense SGD iterations first: 0 = PAGS, > 0 = PEGS (default 0)",
    )
    parser.add_argument(
        "--rule", help=f"per-layer selection: {names(SELECTION_RULES)} (default {default.rule})"
    )
    parser.add_argument(
        "--score-from", help="score ||u|| from the origin (default) or from the base mask's u (base)"
    )
    parser.add_argument("--out", metavar="DIR", help="run directory to create")
    parser.add_argument("--resume", metavar="DIR", help="continue the interrupted sampling in DIR")
    parser.add_argument(
        "--mask-format",
        choices=MASK_FORMATS,
        default="pt",
        help="pt (default): pags_mask.pt and base_mask.pt; safetensors: also .safetensors copies of both",
    )
    parser.add_argument(
        "--seed", type=seed, help="seeds initialisation, base mask and candidates (default 0)"
    )
    parser.add_argument("--split-seed", type=seed, help="train/validation split seed (default 0)")
    parser.add_argument(
        "--workers", type=positive_int, help="worker processes (default 1; the same result for any number)"
    )
    add_device_argument(parser, default=None)  # None: not given (a resumed sampling keeps its own)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="score candidates in local worker processes (default) or as Ray tasks (the same result)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="with --backend ray: the running Ray cluster to join (HOST:6379 or auto); default: a local Ray",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, help="candidate and warm-up minibatch size (default: preset)"
    )
    parser.add_argument(
        "--warmup-lr", type=positive_float, help="warm-up learning rate (default: the dataset's preset)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    given = {field: getattr(args, field) for field in RUN_FLAGS if getattr(args, field) is not None}
    if args.resume is not None:
        if given or args.out is not None:
            flags = [RUN_FLAGS[field] for field in given] + (["--out"] if args.out is not None else [])
            raise FullSpectrumError(
                f"--resume continues a sampling with its own config; drop {', '.join(flags)}"
            )
        run_dir = args.resume
        stored = _run_info(run_dir).get("config")
        stored = stored if isinstance(stored, dict) else {}
        backend = stored.get("backend", "local")
        warmup_iters = stored.get("warmup_iters", 0)
        warmup_iters = warmup_iters if isinstance(warmup_iters, int) else 0  # for the bar's label only
        call = lambda progress: resume_pags(  # noqa: E731
            run_dir, progress=progress, embed=embedding_table, workers=args.workers
        )
    else:
        if args.out is None:
            raise FullSpectrumError("give --out DIR for a new sampling (or --resume DIR to continue one)")
        missing = [
            flag for field, flag in RUN_FLAGS.items() if field in ("model", "data") and field not in given
        ]
        if missing:
            raise FullSpectrumError(f"a new sampling needs {' and '.join(missing)}")
        workers = {} if args.workers is None else {"workers": args.workers}
        config = SamplingConfig(**given, **workers)
        run_dir, warmup_iters, backend = args.out, config.warmup_iters, config.backend
        call = lambda progress: run_pags(config, run_dir, progress=progress, embed=embedding_table)  # noqa: E731
    if args.address is not None and backend != "ray":
        raise FullSpectrumError("--address names a Ray cluster to join; add --backend ray")
    session = ray_session(args.address) if backend == "ray" else contextlib.nullcontext()
    try:
        with session:
            result = _with_progress(call, warmup_iters)
    except KeyboardInterrupt:
        if not _interrupted_sampling(run_dir):
            raise  # stopped before the run existed: nothing to continue
        print(
            f"fullspectrum: interrupted; continue with: fullspectrum pags --resume {run_dir}", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    if args.mask_format == "safetensors":
        for name in (BASE_MASK_FILE, PAGS_MASK_FILE):
            pt = Path(result.run_dir) / name
            stored = load_mask_checkpoint(pt)
            save_mask_checkpoint(pt.with_suffix(".safetensors"), stored.masks, stored.state_dict, stored.meta)
    summary = result.summary()
    config = result.config
    described = (
        f"{config.method} over {config.generator} on {config.model}/{config.data}, "
        f"{summary['population']} candidates, {summary['layers_replaced']} of {summary['layers']} layers "
        f"replaced, mean score {summary['base_mean_score']:.4g} -> {summary['assembled_mean_score']:.4g}, "
        f"kept {summary['kept']} of {summary['total']} weights"
    )
    if result.already_finished:
        print(f"{result.run_dir}: this sampling has already finished ({described})")
    else:
        print(f"wrote {result.run_dir}: {described}")
    return EXIT_OK


def _with_progress(call, warmup_iters: int):
    """Run ``call(progress)`` with a tqdm bar on stderr, made on the first call (so an input refused
    before any work, or a finished run, prints no bar)."""
    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True))
        bar = bars[0]
        bar.total, bar.n = total, done
        stage = "warm-up" if done <= warmup_iters else "candidates"
        bar.set_description(stage, refresh=False)
        bar.refresh()

    try:
        return call(progress)
    finally:
        for bar in bars:
            bar.close()


def _run_info(run_dir: str | Path) -> dict:
    """``run.json`` of ``run_dir``, or ``{}`` where there is none (the command reports why)."""
    try:
        return RunStore.open(run_dir).info
    except (RunError, OSError):
        return {}


def _interrupted_sampling(run_dir: str | Path) -> bool:
    info = _run_info(run_dir)
    return info.get("kind") == "pags" and info.get("status") == "interrupted"
