"""``fullspectrum prune``: a pruning-at-initialisation mask as a SPEC §8 mask checkpoint.

Builds ``--model`` for ``--data`` with its initialisation seeded by ``--seed``,
scores it with ``--method`` (SPEC §6b: random, er, erk, magnitude, snip,
iter_snip, grasp, synflow) on the first ``--examples`` training examples
(default 10 × classes) and writes ``{"masks", "state_dict", "meta"}`` to
``--out``: the masks, the initial weights they were made for, and how they
were made. ``fullspectrum analyze`` and ``fullspectrum train --mask`` read it.
``--method nm --nm 2:4`` (``--generator`` is the same flag) keeps the 2 largest
``|θ|`` of every 4 consecutive input weights: its density is N/M, so
``--density`` may be left out (one that disagrees is refused). An ``--out``
ending in ``.safetensors`` writes the safetensors form (uint8 masks, ``meta`` in
the metadata) for language-model tooling.
"""

from __future__ import annotations

import argparse
import platform
import sys
import warnings

import torch
from tqdm import tqdm

import fullspectrum
from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
from fullspectrum.cli._common import (
    add_device_argument,
    add_model_data_arguments,
    check_out_file,
    density,
    names,
    positive_int,
    seed,
)
from fullspectrum.data import load_dataset, make_loader
from fullspectrum.devices import resolve_device
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import build_model
from fullspectrum.pruning import GENERATOR_NAMES, generate_masks, get_generator
from fullspectrum.pruning.generate import implied_density


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="generate a pruning-at-initialisation mask (SNIP, GraSP, SynFlow, ERK, ...)",
        description=(
            "Generate a mask for every Conv/Linear weight of a freshly initialised model at an exact "
            "global density and write it, with the initial weights, as a mask checkpoint."
        ),
    )
    add_model_data_arguments(parser)
    parser.add_argument(
        "--method",
        "--generator",
        dest="method",
        required=True,
        help=f"mask generator: {names(GENERATOR_NAMES)}",
    )
    parser.add_argument(
        "--density",
        type=density,
        help="fraction of weights kept, in (0, 1] (required; implied by --nm for nm)",
    )
    parser.add_argument(
        "--nm", metavar="N:M", help="nm only: keep N of every M consecutive input weights (default 2:4)"
    )
    parser.add_argument("--seed", type=seed, default=0, help="seeds the model's initialisation and the mask")
    parser.add_argument("--split-seed", type=seed, default=0, help="train/validation split seed (default 0)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=128, help="scoring minibatch size (default 128)"
    )
    parser.add_argument("--examples", type=positive_int, help="examples to score on (default 10 x classes)")
    parser.add_argument(
        "--rounds", type=positive_int, help="rounds of iter_snip (default 20) or synflow (default 100)"
    )
    parser.add_argument("--train-mode", action="store_true", help="score in train mode (default: eval mode)")
    add_device_argument(parser)
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="mask checkpoint to write (.pt, or .safetensors)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    generator = get_generator(args.method)  # an unknown method fails before any data is loaded
    options = _options(args, generator)
    target = implied_density(args.method, args.density, options)  # nm: N/M; a disagreeing --density fails
    if target is None:
        raise FullSpectrumError(f"--method {args.method} needs --density (the fraction of weights kept)")
    check_out_file(args.out)
    device = resolve_device(args.device)

    splits = load_dataset(args.data, data_dir=args.data_dir, split_seed=args.split_seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = build_model(args.model, splits.num_classes, splits.input_shape)
    initial = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    model.to(device)
    loader = make_loader(splits.train, args.batch_size, shuffle=True, seed=args.seed)

    with tqdm(desc=f"{args.method}", unit="step", file=sys.stderr, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = generate_masks(
                model, args.method, target, data=loader, seed=args.seed, progress=progress, **options
            )
    for warning in caught:
        print(f"fullspectrum: warning: {warning.message}", file=sys.stderr)

    meta = {
        **result.meta(),
        "model": args.model,
        "data": args.data,
        "seed": args.seed,
        "split_seed": args.split_seed,
        "batch_size": args.batch_size,
        "device": str(device),
        "fullspectrum_version": fullspectrum.__version__,
        "torch_version": str(torch.__version__),  # a str subclass that weights_only loading refuses
        "python_version": platform.python_version(),
    }
    path = save_mask_checkpoint(args.out, result.masks, initial, meta)
    print(
        f"wrote {path}: {args.method} on {args.model}/{args.data}, kept {result.kept} of {result.total} "
        f"weights (density {result.kept / result.total:.6g}), {result.examples_used} examples"
        + (f", collapsed layers: {', '.join(result.collapsed_layers)}" if result.collapsed_layers else "")
    )
    return 0


def _options(args: argparse.Namespace, generator) -> dict:
    requested = {"n_examples": args.examples, "rounds": args.rounds, "nm": args.nm}
    if args.train_mode:
        requested["train_mode"] = True
    options = {}
    for key, value in requested.items():
        if value is None:
            continue
        if key not in generator.options:
            flag = {
                "n_examples": "--examples",
                "rounds": "--rounds",
                "train_mode": "--train-mode",
                "nm": "--nm",
            }[key]
            raise FullSpectrumError(f"{flag} does not apply to --method {generator.name} (it uses no {key})")
        options[key] = value
    return options
