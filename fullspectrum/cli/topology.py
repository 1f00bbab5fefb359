"""``fullspectrum topology CHECKPOINT``: MGE24's unrolled graph of a sparse checkpoint, its topometrics
and effective paths (SPEC §7).

Reads every checkpoint format ``analyze`` reads (SPEC §8 mask checkpoints, ``torch.nn.utils.prune``
and plain state dicts, sparselearning/ITOP files, ``.safetensors``) into the zoo model ``--model``
(a mask checkpoint names its model in ``meta``; then ``--model`` is optional) built for
``--input-shape C,H,W`` (default: the shape of the dataset ``meta`` names), with the file's weights
(a masks-only file gives every edge weight 1); layers the file does not hold are dense. The
classifier's width is taken from the file.

Formats: ``table`` (default) prints the per-layer effective paths, then every topometric with its
normalised form; ``csv`` and ``parquet`` give one row per layer (``layer, kind, kept, effective,
ineffective, weights, edges, effective_edges, dense_edges``) with the network's topometrics repeated
on every row as ``network_*`` columns (one file holds it all); ``json`` is one object with the
settings, ``network``, ``layers`` and ``partitions``. ``--export-graph FILE.npz`` writes the graph's
blocks and partitions (:meth:`~fullspectrum.topology.UnrolledGraph.save_npz`). ``--out`` and
``--export-graph`` are written atomically, never over an existing file or the checkpoint read.
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
from tqdm import tqdm

import fullspectrum
from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.checkpoints.reading import SparseCheckpoint, load_sparse_checkpoint
from fullspectrum.cli._common import names
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import parameter_name
from fullspectrum.models import MODEL_NAMES, build_model
from fullspectrum.runs.outputs import check_output_file
from fullspectrum.topology import SKIP_MODES, effective_paths, topometrics, unrolled_graph

FORMATS = ("table", "csv", "json", "parquet")
DATASET_SHAPES = {
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "digits": ((1, 8, 8), 10),
    "mnist1d": ((1, 40), 10),
}
"""Per-example input shape and classes of the datasets a mask checkpoint's ``meta`` may name."""
LAYER_COLUMNS = (
    "layer",
    "kind",
    "kept",
    "effective",
    "ineffective",
    "weights",
    "edges",
    "effective_edges",
    "dense_edges",
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "topology",
        help="MGE24's unrolled graph of a sparse checkpoint: topometrics and effective paths",
        description=(
            "Build the unrolled, input-aware multipartite graph of a sparse checkpoint (MGE24, SPEC §7) by "
            "tracing the zoo model, and print its topometrics and, per layer, the kept weights that lie on "
            "an input-to-output path (effective) and those that do not."
        ),
    )
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="checkpoint file (.pt, .pth, .tar, .safetensors)"
    )
    parser.add_argument(
        "--model", help=f"model name ({names(MODEL_NAMES)}); default: the one a mask checkpoint's meta names"
    )
    parser.add_argument(
        "--input-shape",
        type=input_shape,
        metavar="C,H,W",
        help="per-example input shape, e.g. 3,32,32; default: that of the dataset the checkpoint's meta names",
    )
    parser.add_argument(
        "--skips",
        choices=SKIP_MODES,
        default="identity",
        help="identity shortcuts as edges (default) or left out (MGE24)",
    )
    parser.add_argument(
        "--mge24-compat", action="store_true", help="keep the first conv's padding nodes, as MGE24's code"
    )
    parser.add_argument("--motifs", action="store_true", help="also estimate the 4-node motifs (slow)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--out", metavar="FILE", help="write to FILE (a new file) instead of stdout; needed for parquet"
    )
    parser.add_argument(
        "--export-graph", metavar="FILE.npz", help="also write the unrolled graph's blocks (a new .npz file)"
    )
    parser.set_defaults(handler=run)


def input_shape(text: str) -> tuple[int, ...]:
    """``--input-shape``: positive whole numbers separated by commas (``3,32,32``)."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"must be positive whole numbers separated by commas, e.g. 3,32,32; got {text!r}"
        )
    return shape


def run(args: argparse.Namespace) -> int:
    if args.format == "parquet" and not args.out:
        raise FullSpectrumError("--format parquet writes a binary file: give --out FILE")
    out = _new_file(args.out, args.checkpoint, "--out") if args.out else None
    export = _new_file(args.export_graph, args.checkpoint, "--export-graph") if args.export_graph else None
    if export is not None and export.suffix != ".npz":
        raise FullSpectrumError(
            f"--export-graph {export}: the graph is written as NumPy .npz; name the file *.npz"
        )
    if out is not None and export is not None and out == export:
        raise FullSpectrumError("--out and --export-graph name the same file; choose two")
    steps = 4 if export is not None else 3
    with tqdm(total=steps, desc="topology", unit="step", file=sys.stderr, leave=False, disable=None) as bar:
        checkpoint = load_sparse_checkpoint(args.checkpoint)
        model_name, shape, model, masks = _model(checkpoint, args)
        bar.set_postfix_str("tracing")
        graph = unrolled_graph(model, masks, shape, skips=args.skips, mge24_compat=args.mge24_compat)
        bar.update()
        bar.set_postfix_str("effective paths")
        paths = effective_paths(graph)
        bar.update()
        bar.set_postfix_str("topometrics")
        metrics = topometrics(graph, motifs=args.motifs, paths=paths)
        bar.update()
        if export is not None:
            bar.set_postfix_str("export")
            write_atomic(export, graph.save_npz)
            bar.update()
    settings = {
        "checkpoint": str(args.checkpoint),
        "model": model_name,
        "input_shape": list(shape),
        "skips": args.skips,
        "mge24_compat": bool(args.mge24_compat),
        "fullspectrum_version": fullspectrum.__version__,
    }
    layers = pd.DataFrame(
        [{**row, "kind": kinds, "dense_edges": dense} for row, kinds, dense in _layer_rows(graph, paths)],
        columns=LAYER_COLUMNS,
    )
    network = metrics.as_dict()
    if args.format == "parquet":
        write_atomic(out, lambda handle: _with_network(layers, network).to_parquet(handle, index=False))
        return 0
    text = render(layers, network, graph, settings, args.format)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, lambda handle: handle.write(text.encode("utf-8")))
    return 0


def _new_file(path: str, checkpoint: str, flag: str) -> Path:
    try:
        target = check_output_file(
            path, inputs=[checkpoint]
        )  # a folder, a missing folder or the input: refused
    except FullSpectrumError as error:
        raise FullSpectrumError(f"{flag} {error}") from None
    if os.path.lexists(target):
        raise FullSpectrumError(
            f"{flag} {target}: already exists and is not replaced; choose a new file name"
        )
    return target


def _model(checkpoint: SparseCheckpoint, args) -> tuple[str, tuple[int, ...], torch.nn.Module, dict]:
    """The zoo model with the checkpoint's weights, and its masks by parameter name."""
    meta = checkpoint.meta
    model_name = args.model or (str(meta["model"]) if "model" in meta else None)
    if model_name is None:
        raise FullSpectrumError(
            f"{checkpoint.path}: its meta names no model; give --model ({names(MODEL_NAMES)})"
        )
    data = str(meta.get("data", ""))
    shape = args.input_shape or DATASET_SHAPES.get(data, (None, None))[0]
    if shape is None:
        known = (
            f"its meta names the dataset {data!r}, whose shape is not known"
            if data
            else "its meta names no dataset"
        )
        raise FullSpectrumError(f"{checkpoint.path}: {known}; give --input-shape C,H,W")
    classes = DATASET_SHAPES.get(data, (None, 10))[1]
    model = build_model(model_name, classes, shape)
    records = {parameter_name(layer.name): layer for layer in checkpoint.layers}
    params = dict(model.named_parameters())
    last = [name for name, p in params.items() if p.dim() == 2][-1:]  # the classifier's weight
    if last and last[0] in records and records[last[0]].shape[0] != params[last[0]].shape[0]:
        model = build_model(model_name, records[last[0]].shape[0], shape)  # the width the file was made for
        params = dict(model.named_parameters())
    masks = {}
    for name, record in records.items():
        if name not in params:
            raise FullSpectrumError(
                f"{checkpoint.path}: layer {record.name!r} is not a layer of {model_name!r}"
            )
        if tuple(params[name].shape) != tuple(record.shape):
            raise FullSpectrumError(
                f"{checkpoint.path}: layer {record.name!r} has shape {tuple(record.shape)}, but {model_name!r} for "
                f"input {shape} has {tuple(params[name].shape)}; check --model and --input-shape"
            )
        with torch.no_grad():
            params[name].copy_(record.weight if record.weight is not None else torch.ones(record.shape))
        masks[name] = record.mask
    return model_name, tuple(shape), model, masks


def _layer_rows(graph, paths):
    kinds, dense = {}, {}
    for block in graph.layers:
        kinds.setdefault(block.layer, block.kind)
        dense[block.layer] = dense.get(block.layer, 0) + block.dense_edges
    for row in paths.as_dict()["layers"]:
        yield row, kinds[row["layer"]], dense[row["layer"]]


def _with_network(layers: pd.DataFrame, network: dict) -> pd.DataFrame:
    table = layers.copy()
    for name, value in network.items():
        table[f"network_{name}"] = value
    return table


def render(layers: pd.DataFrame, network: dict, graph, settings: dict, fmt: str) -> str:
    """The text of one format (see the module docstring)."""
    if fmt == "csv":
        return _with_network(layers, network).to_csv(index=False, float_format="%.17g")
    if fmt == "json":
        payload = {
            **settings,
            "network": {name: _finite(value) for name, value in network.items()},
            "layers": layers.to_dict(orient="records"),
            "partitions": graph.as_dict()["partitions"],
        }
        return json.dumps(payload, indent=1) + "\n"
    header = (
        f"Unrolled graph of {settings['checkpoint']} as {settings['model']} for input {tuple(settings['input_shape'])} "
        f"(skips {settings['skips']}{', MGE24 compatibility' if settings['mge24_compat'] else ''}): "
        f"{network['nodes']} nodes, {network['edges']} edges, {network['identity_edges']} identity edges"
    )
    with pd.option_context("display.width", 250, "display.max_columns", None):
        table = layers.to_string(index=False)
    width = max(map(len, network))
    lines = [f"{name:<{width}}  {_number(value)}" for name, value in network.items()]
    return "\n".join([header, table, "", "Network topometrics (SPEC §7)", *lines]) + "\n"


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.6g}"
