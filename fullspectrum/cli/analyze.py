"""``fullspectrum analyze PATH``: the full-spectrum table of a sparse checkpoint (SPEC §8).

The default ``table`` format prints the per-layer table and the network means
(SPEC §4). ``csv``, ``json`` (a list of records) and ``parquet`` give one row per
layer and nothing else, with the columns of ``analyze``; ``parquet`` needs
``--out``, which is written atomically and never replaces the checkpoint read.
Notes, warnings and skipped tensors go to stderr. ``PATH`` may also be a Hugging
Face model folder (sharded ``.safetensors`` with ``model.safetensors.index.json``,
or one ``model.safetensors``) or its index file: read weight by weight, never the
whole model in memory. ``--layers REGEX`` keeps the layers whose name it matches.
When the layers come in several blocks (``model.layers.N``), the table format adds
the means per projection (all ``down_proj`` layers together).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.cli._common import add_device_argument
from fullspectrum.devices import resolve_device
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs.outputs import check_output_file
from fullspectrum.spectrum import network_summary
from fullspectrum.spectrum.metrics import CONVENTIONS
from fullspectrum.spectrum.network import analyze

FORMATS = ("table", "csv", "json", "parquet")
_PROGRESS_MIN_LAYERS = 8  # below this a bar only flickers


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="full-spectrum metrics of every layer of a sparse checkpoint",
        description=(
            "Per-layer full-spectrum metrics (Ramanujan gap, weighted spectral gap, nested regular "
            "subgraphs) of a sparse checkpoint: torch.nn.utils.prune state dicts, plain state dicts, "
            "mask checkpoints, sparselearning/ITOP files, .safetensors."
        ),
    )
    parser.add_argument(
        "path",
        metavar="PATH",
        help="checkpoint file (.pt, .pth, .tar, .safetensors), or a Hugging Face model folder / its "
        "model.safetensors.index.json",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--out", metavar="FILE", help="write to FILE instead of stdout (required for parquet)"
    )
    parser.add_argument(
        "--convention",
        choices=CONVENTIONS,
        default="fs23",
        help="fs23 (NeurIPS 2023, default) or r23 (ICLR 2023) definitions of the iterative means",
    )
    parser.add_argument(
        "--layers",
        metavar="REGEX",
        help="analyse only the layers whose name matches REGEX (re.search), e.g. 'down_proj' or 'layers\\.[0-3]\\.'",
    )
    add_device_argument(parser)  # where the engine's arithmetic runs (torch backend on CUDA)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if args.format == "parquet" and out is None:
        raise FullSpectrumError("--format parquet writes a binary file: give --out FILE")
    if out is not None:  # a folder, a missing folder, an unwritable one or the input itself: refused now
        check_output_file(out, inputs=[args.path])

    device = resolve_device(args.device)
    table = _analyze_with_progress(
        args.path, args.convention, None if device.type == "cpu" else str(device), args.layers
    )
    for note in table.attrs.get("notes", []):
        print(f"fullspectrum: {_as_note(note)}", file=sys.stderr)
    for name, reason in table.attrs.get("skipped", []):
        print(f"fullspectrum: note: skipped {name}: {reason}", file=sys.stderr)

    machine = table.copy()
    machine.attrs = {}
    if args.format == "parquet":
        write_atomic(out, lambda handle: machine.to_parquet(handle, index=False))
        return 0
    if args.format == "csv":
        text = machine.to_csv(index=False)
    elif args.format == "json":
        text = machine.to_json(orient="records", indent=1) + "\n"
    else:
        text = render_table(table, convention=args.convention)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, lambda handle: handle.write(text.encode("utf-8")))
    return 0


def _analyze_with_progress(path: str, convention: str, device: str | None, layers: str | None):
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="layers", unit="layer", file=sys.stderr, leave=False,
                       disable=None if total >= _PROGRESS_MIN_LAYERS else True)  # fmt: skip
        bar.update(done - bar.n)

    try:
        return analyze(path, convention=convention, progress=progress, device=device, layers=layers)
    finally:
        if bar is not None:
            bar.close()


def _as_note(note: str) -> str:
    return note if note.startswith("warning:") else f"note: {note}"


def render_table(table, *, convention: str) -> str:
    """The readable per-layer table followed by the network means (SPEC §4)."""
    with pd.option_context("display.width", 250, "display.max_columns", None):
        layers = table.to_string(index=False, float_format=_number)
        summary = network_summary(table.drop(columns=["layer", "kind", "shape"]))
        means = summary.to_frame().T.to_string(index=False, float_format=_number)
        per_projection = _projection_means(table)
    header = (
        f"Network ({len(table)} layers, convention {convention}): counts summed, density = total edges / "
        "total weights, in_regime = fraction of layers in the regime, other values = mean over layers "
        "(NaN skipped)"
    )
    text = f"{layers}\n\n{header}\n{means}\n"
    if per_projection is not None:
        blocks = table.loc[table["block"] != "", "block"].nunique()
        text += (
            f"\nPer projection (layers of {blocks} blocks grouped by projection; summed and averaged as "
            f"above):\n{per_projection.to_string(index=False, float_format=_number)}\n"
        )
    return text


def _projection_means(table: pd.DataFrame) -> pd.DataFrame | None:
    """Network-level values of each projection's layers (first-seen order), when there are several blocks."""
    if "block" not in table or table.loc[table["block"] != "", "block"].nunique() < 2:
        return None
    rows = []
    for projection, group in table.groupby("projection", sort=False):
        summary = network_summary(group.drop(columns=["layer", "kind", "shape"]))
        patterns = set(group["nm_pattern"])
        pattern = patterns.pop() if len(patterns) == 1 else "mixed"  # one N:M pattern, or none, or several
        rows.append(
            {"projection": projection, "layers": len(group), "nm_pattern": pattern, **summary.to_dict()}
        )
    return pd.DataFrame(rows)


def _number(value: float) -> str:
    return f"{value:.6g}"
