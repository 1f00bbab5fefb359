"""``fullspectrum ntk CHECKPOINT``: the empirical NTK spectrum of a masked zoo model (G25, SPEC §7b).

Loads a mask checkpoint (SPEC §8: ``prune --out``, ``pags_mask.pt``, ...) into
``--model`` built for ``--data``, exactly as ``train --mask`` does (the file's
masks and the weights they were made for; weights the file does not hold are
drawn with ``--seed``), takes the first ``--inputs`` examples of the test split
(the train split when the dataset has no test examples) and prints
:func:`~fullspectrum.ntk.ntk_spectrum` of
:func:`~fullspectrum.ntk.empirical_ntk` (float64 on the CPU, eval mode).

Formats: ``table`` (default) prints the summary (``N``, ``lambda_max``,
``condition``, ``effective_rank``, ``top5_energy``, ``decay_alpha``) under a line
naming the model, data, split and mask; ``csv`` gives one row per eigenvalue,
descending, with its 1-based index ``k``, the ``split`` and the summary repeated
on every row (so one file holds it all); ``json`` is one object with the
summary, the ``eigenvalues`` list and the settings. A non-finite number (e.g. a
``decay_alpha`` with too few eigenvalues to fit) is empty in csv and ``null`` in
json. ``--out`` is written atomically and never replaces an existing file or the
checkpoint read.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import pandas as pd
import torch

import fullspectrum
from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.cli._common import add_model_data_arguments, positive_int, seed
from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import build_model
from fullspectrum.ntk import NTKSpectrum, empirical_ntk, ntk_spectrum
from fullspectrum.runs.outputs import check_output_file
from fullspectrum.training.initial import load_mask_file_weights, mask_file_density
from fullspectrum.training.sparse import SparseState, maskable_weights

FORMATS = ("table", "csv", "json")
DEFAULT_INPUTS = 64  # G25-sized batch: seconds on a CPU for ResNet-20
SUMMARY_FIELDS = ("N", "lambda_max", "condition", "effective_rank", "top5_energy", "decay_alpha")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ntk",
        help="empirical NTK spectrum of a mask checkpoint on a batch of inputs",
        description=(
            "Load a mask checkpoint into a zoo model, compute the empirical neural tangent kernel "
            "(float64, CPU, eval mode) on the first N examples of the dataset's test split (train split "
            "if it has no test examples) and print its spectral summary: N, lambda_max, condition "
            "number, effective rank, top-5 energy and decay exponent alpha (SPEC §7b)."
        ),
    )
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="mask checkpoint (.pt), e.g. from prune --out"
    )
    add_model_data_arguments(parser)
    parser.add_argument(
        "--inputs",
        type=inputs_count,
        default=DEFAULT_INPUTS,
        metavar="N",
        help=f"number of examples, at least 2 (default {DEFAULT_INPUTS})",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (summary, default), csv (one row per eigenvalue, summary repeated) or json",
    )
    parser.add_argument("--out", metavar="FILE", help="write to FILE (a new file) instead of stdout")
    parser.add_argument(
        "--seed", type=seed, default=0, help="seeds the weights the checkpoint does not hold (default 0)"
    )
    parser.set_defaults(handler=run)


def inputs_count(text: str) -> int:
    """``--inputs``: a whole number of at least 2 (a spectrum of one eigenvalue says nothing)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 2, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    out = _checked_out(args.out, args.checkpoint) if args.out else None
    mask_file = load_mask_checkpoint(args.checkpoint)
    kept_density = mask_file_density(args.checkpoint, mask_file)
    splits = load_dataset(args.data, data_dir=args.data_dir)
    split = "test" if len(splits.test) else "train"
    examples = splits.split(split)
    if args.inputs > len(examples):
        raise FullSpectrumError(
            f"--inputs {args.inputs}: the {split} split of {args.data!r} has only {len(examples)} examples"
        )

    with torch.random.fork_rng(devices=[]):  # the weights the file does not hold
        torch.manual_seed(args.seed)
        model = build_model(args.model, splits.num_classes, splits.input_shape)
    weights = maskable_weights(model)
    load_mask_file_weights(args.checkpoint, mask_file, model, weights, model_name=args.model)
    SparseState.from_masks(mask_file.masks).check(weights, source=args.checkpoint)

    inputs, _ = examples.tensors(args.inputs)
    spectrum = ntk_spectrum(empirical_ntk(model, inputs, mask_file.masks))
    settings = {
        "checkpoint": str(args.checkpoint),
        "model": args.model,
        "data": args.data,
        "split": split,
        "density": kept_density,
        "seed": args.seed,
        "fullspectrum_version": fullspectrum.__version__,
    }
    text = render(spectrum, settings, args.format)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, lambda handle: handle.write(text.encode("utf-8")))
    return 0


def _checked_out(path: str, checkpoint: str) -> Path:
    out = check_output_file(path, inputs=[checkpoint])  # a folder, a missing folder or the input: refused
    if os.path.lexists(out):
        raise FullSpectrumError(f"--out {out}: already exists and is not replaced; choose a new file name")
    return out


def summary(spectrum: NTKSpectrum) -> dict[str, float | int | None]:
    """The summary fields of ``spectrum`` (non-finite numbers as ``None``)."""
    values = {"N": len(spectrum.eigenvalues)}
    values.update({name: _finite(getattr(spectrum, name)) for name in SUMMARY_FIELDS[1:]})
    return values


def render(spectrum: NTKSpectrum, settings: dict, fmt: str) -> str:
    """The text of one format (see the module docstring)."""
    fields = summary(spectrum)
    if fmt == "json":
        eigenvalues = [_finite(value) for value in spectrum.eigenvalues.tolist()]
        return json.dumps({**settings, **fields, "eigenvalues": eigenvalues}, indent=1) + "\n"
    if fmt == "csv":
        rows = pd.DataFrame(
            {"k": range(1, len(spectrum.eigenvalues) + 1), "eigenvalue": spectrum.eigenvalues}
        )
        rows.insert(0, "split", settings["split"])
        for name, value in fields.items():
            rows[name] = value
        return rows.to_csv(index=False, float_format="%.17g")
    header = (
        f"Empirical NTK of {settings['model']} on the first {fields['N']} {settings['data']} "
        f"{settings['split']} examples, mask {settings['checkpoint']} (density {settings['density']:.6g})"
    )
    width = max(map(len, fields))
    lines = [f"{name:<{width}}  {_number(value)}" for name, value in fields.items()]
    return "\n".join([header, *lines]) + "\n"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _number(value: float | int | None) -> str:
    if value is None:
        return "nan"
    return str(value) if isinstance(value, int) else f"{value:.6g}"
