"""``fullspectrum train``: dense, static, ITOP-Rand/SET or RigL training with spectral tracking (SPEC §6, §8).

``fullspectrum train --model mlp --data digits --method itop --out runs/itop``
writes a run directory; ``fullspectrum train --resume runs/itop`` continues an
interrupted or killed one from its last checkpoint (a finished run: says so and
exits 0). The first Ctrl-C stops at the next iteration, saves a checkpoint and
exits 130 with a resumable run; a second one stops at once (the last snapshot's
checkpoint stays valid).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from fullspectrum.cli import EXIT_INTERRUPTED, EXIT_OK
from fullspectrum.cli._common import (
    add_device_argument,
    density,
    names,
    positive_float,
    positive_int,
    seed,
)
from fullspectrum.data import DATASET_NAMES
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import MODEL_NAMES
from fullspectrum.runs.outputs import NONEMPTY_OPT_IN
from fullspectrum.training import METHODS, TrainConfig, resume, train
from fullspectrum.training.sparse import INITS

# TrainConfig field -> command-line flag, for the options a fresh run takes
RUN_FLAGS = {
    "model": "--model",
    "data": "--data",
    "method": "--method",
    "density": "--density",
    "init": "--init",
    "sparse_init": "--sparse-init",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "delta_t": "--delta-t",
    "snapshot_every": "--snapshot-every",
    "mask": "--mask",
    "seed": "--seed",
    "device": "--device",
    "data_dir": "--data-dir",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a sparse network (dense, static, itop, rigl) and record its full spectrum",
        description=(
            "Train with a mask per Conv/Linear weight, rewired every ΔT iterations (ITOP-Rand/SET: random "
            "growth; RigL: gradient growth), recording every layer's full-spectrum coordinate into a run "
            "directory. Options left out take the dataset's preset (written into the run's config)."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--out", metavar="DIR", help="run directory to create: a new or empty folder (see --allow-nonempty)"
    )
    parser.add_argument(
        NONEMPTY_OPT_IN,
        action="store_true",
        help="let --out be a folder that already holds other files (not a run): the run's files go beside "
        "them, and a file of yours with a name the run writes (checkpoint.pt, masks/...) is refused, never replaced",
    )
    parser.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    parser.set_defaults(handler=run)


def add_config_arguments(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """The options of a fresh run, one per :data:`RUN_FLAGS` field except those in ``skip`` (``lottery``
    and ``earlybird`` take them too); each defaults to ``None``, the preset."""
    default = TrainConfig()
    options = {
        "model": dict(help=f"architecture (default {default.model}): {names(MODEL_NAMES)}"),
        "data": dict(help=f"dataset (default {default.data}): {names(DATASET_NAMES)}"),
        "method": dict(choices=tuple(METHODS), help=f"default {default.method}"),
        "density": dict(type=density, help=f"fraction of weights kept (default {default.density:g})"),
        "init": dict(choices=INITS, help=f"initial layer densities (default {default.init})"),
        "sparse_init": dict(
            action=argparse.BooleanOptionalAction,
            help="rescale each unit's initial weights by sqrt(fan-in / kept fan-in) (Evci et al. 2020); "
            "default: on for models without normalisation layers (mlp, lenet5, conv6), off with BatchNorm "
            "and for the weights a --mask file brings (--sparse-init rescales those too)",
        ),
        "epochs": dict(type=positive_int, help="epochs (default: the dataset's preset)"),
        "batch_size": dict(type=positive_int, help="minibatch size (default: preset)"),
        "lr": dict(type=positive_float, help="initial learning rate (default: preset)"),
        "delta_t": dict(type=positive_int, help="iterations between mask updates (default: preset)"),
        "snapshot_every": dict(
            type=positive_int, help="iterations between spectral snapshots (default: preset)"
        ),
        "mask": dict(metavar="FILE", help="mask checkpoint: initial mask and weights (static, itop, rigl)"),
        "seed": dict(type=seed, help="seed of weights, masks, data order and growth (default 0)"),
        "data_dir": dict(metavar="DIR", help="folder of datasets that need files (CIFAR)"),
    }
    for field, flag in RUN_FLAGS.items():
        if field in skip:
            continue
        if field == "device":
            add_device_argument(parser, default=None)  # None: not given (a resumed run keeps its own)
        else:
            parser.add_argument(flag, **options[field])


def given_config(args: argparse.Namespace) -> dict:
    """The :data:`RUN_FLAGS` fields given on the command line, by ``TrainConfig`` field name."""
    return {field: getattr(args, field) for field in RUN_FLAGS if getattr(args, field, None) is not None}


def run(args: argparse.Namespace) -> int:
    given = given_config(args)
    if args.resume is not None:
        if given or args.out is not None or args.allow_nonempty:
            extra = [*(["--out"] if args.out else []), *([NONEMPTY_OPT_IN] if args.allow_nonempty else [])]
            flags = ", ".join([*(RUN_FLAGS[f] for f in given), *extra])
            raise FullSpectrumError(f"--resume continues a run with its own config; drop {flags}")
        call = lambda progress, stop: resume(args.resume, progress=progress, stop_event=stop)  # noqa: E731
    else:
        if args.out is None:
            raise FullSpectrumError("give --out DIR for a new run (or --resume DIR to continue one)")
        config = TrainConfig(**given)
        call = lambda progress, stop: train(  # noqa: E731
            config, args.out, progress=progress, stop_event=stop, allow_nonempty=args.allow_nonempty
        )
    result = with_progress_and_sigint(call)
    if result.already_finished:
        print(f"{result.run_dir}: this run has already finished (test accuracy {_fmt(result.test_accuracy)})")
        return EXIT_OK
    if result.status == "interrupted":
        print(
            f"fullspectrum: interrupted at step {result.step}/{result.total_steps}; "
            f"continue with: fullspectrum train --resume {result.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(
        f"{result.run_dir}: finished {result.step} iterations; test accuracy {_fmt(result.test_accuracy)}, "
        f"exploration rate {result.exploration_rate:.3f}"
    )
    return EXIT_OK


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def with_progress_and_sigint(call):
    """Run ``call(progress, stop_event)`` with a tqdm bar on stderr; first Ctrl-C = graceful stop."""
    from tqdm import tqdm

    stop = threading.Event()

    def on_sigint(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nfullspectrum: stopping after this iteration (Ctrl-C again to stop now)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    bars: list[tqdm] = []  # made on the first call, so a finished run prints no empty bar

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, initial=done, unit="it", file=sys.stderr, dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    try:
        return call(progress, stop)
    except BaseException:
        for bar in bars:  # the error's one line is what stays on the terminal
            bar.leave = False
        raise
    finally:
        for bar in bars:
            bar.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
