"""The feature table of finished runs: what each view says about a run's final mask.

One row per run, read from its run folder (the last snapshot's layer rows and mask),
with the columns the predictor study (:mod:`analysis.predictors`) groups into sets:

* ``run``, ``label``, ``model``, ``data``, ``method``, ``density`` (the requested one),
  ``seed``, ``accuracy`` (``final["test_accuracy"]``);
* per layer ``L``: ``density:L``, ``delta_r:L``, ``lambda_w:L``, ``delta_r_imdb:L``,
  ``moving_distance:L`` (rolled view, SPEC §2–4), and ``final_distance`` (their network mean
  of the moving distance, FS23's Figure-3 quantity);
* the unrolled view (SPEC §7) of the final mask with its kept weights: every number of
  ``topometrics(...)`` as ``topo:NAME`` (counts normalised by nodes or edges as MGE24 do),
  ``effective_density`` and per layer ``effective:L`` (effective share of its kept weights).
  A model that cannot be traced, or a run whose dataset is not at hand, gets no such columns;
  ``topology_note`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import build_model
from fullspectrum.runs import RunStore
from fullspectrum.topology import effective_paths, topometrics, unrolled_graph

LAYER_METRICS = ("density", "delta_r", "lambda_w", "delta_r_imdb", "moving_distance")
"""Per-layer columns of a run's last snapshot that become features (``METRIC:layer``)."""
RUN_COLUMNS = ("run", "label", "model", "data", "method", "density", "seed", "accuracy", "topology_note")


def run_features(run_dirs: Iterable[str | Path], *, topology: bool = True) -> pd.DataFrame:
    """One row per readable, finished run with a final test accuracy (others are left out)."""
    rows = [row for run_dir in run_dirs if (row := _run_row(Path(run_dir), topology)) is not None]
    columns = list(RUN_COLUMNS)
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=columns)
    return table[columns + sorted(c for c in table.columns if c not in columns)]


def _run_row(run_dir: Path, topology: bool) -> dict | None:
    try:
        store = RunStore.open(run_dir)
        info, layers = store.info, store.layers()
    except (FullSpectrumError, OSError):
        return None
    config, final = info.get("config") or {}, info.get("final") or {}
    accuracy = _number(final.get("test_accuracy"))
    if info.get("status") != "finished" or math.isnan(accuracy) or layers.empty:
        return None
    last_step = int(layers["step"].max())
    last = layers[layers["step"] == last_step]
    row = {
        "run": str(run_dir),
        "label": run_dir.name,
        "model": config.get("model"),
        "data": config.get("data"),
        "method": config.get("method") or config.get("generator"),
        "density": _number(config.get("density")),
        "seed": info.get("seed"),
        "accuracy": accuracy,
        "final_distance": float(last["moving_distance"].mean()),
        "topology_note": "" if topology else "not computed",
    }
    for metric in LAYER_METRICS:
        for layer, value in zip(last["layer"], last[metric]):
            row[f"{metric}:{layer}"] = _number(value)
    if topology:
        try:
            row.update(_topology_row(store, config, last_step))
        except (FullSpectrumError, OSError) as error:
            row["topology_note"] = str(error)
    return row


def _topology_row(store: RunStore, config: dict, step: int) -> dict:
    steps = store.mask_steps()
    if not steps:
        raise FullSpectrumError(f"{store.path}: no mask snapshot")
    step = step if step in steps else steps[-1]
    masks = store.load_masks(step)
    splits = load_dataset(config["data"], data_dir=config.get("data_dir"))
    with torch.random.fork_rng():  # a snapshot without weights gets the run's own initialisation
        torch.manual_seed(int(config.get("seed") or 0))
        model = build_model(
            config["model"], splits.num_classes, splits.input_shape, **(config.get("model_options") or {})
        )
    parameters = dict(model.named_parameters())
    unknown = sorted(set(masks) - set(parameters))
    if unknown:
        raise FullSpectrumError(f"{store.path}: mask {unknown[0]!r} is not a parameter of {config['model']}")
    weights = store.load_weights(step)
    if weights:  # the kept weights of the snapshot give the unrolled edges their |w|
        with torch.no_grad():
            for name, value in weights.items():
                if name in parameters:
                    parameters[name].copy_(value.reshape(parameters[name].shape))
    graph = unrolled_graph(model, masks, splits.input_shape)
    metrics = topometrics(graph).as_dict()
    paths = effective_paths(graph).as_dict()
    row = {
        f"topo:{name}": float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and not name.startswith("effective")
    }
    row["effective_density"] = float(
        paths.get("effective_density", metrics.get("effective_density", math.nan))
    )
    for layer in paths["layers"]:
        row[f"effective:{layer['layer']}"] = layer["effective"] / layer["kept"] if layer["kept"] else 0.0
    return row


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
