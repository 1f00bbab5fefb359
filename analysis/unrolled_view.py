"""One set of masks seen unrolled (MGE24, SPEC §7): its zoo network, effective paths, live units, topometrics.

MGE24 (Cunegatti et al., TMLR 2024) read a sparse network as one multipartite graph from the
input to the output. This module puts a mask source (:mod:`analysis.mask_sources`) on its zoo
network, builds :func:`fullspectrum.topology.unrolled_graph`, and returns the tables the app
draws: per layer the kept weights split into effective and ineffective ones
(:func:`fullspectrum.topology.effective_paths`), per partition its units and how many are live
(reached from the input and reaching the output), and the topometrics
(:func:`fullspectrum.topology.topometrics`) with one line per metric from
:mod:`analysis.glossary`.

>>> import torch
>>> view = unrolled_view(
...     {"features.1.weight": torch.eye(256, 64, dtype=torch.bool)}, {}, "mlp", "digits")
>>> row = view.layers.iloc[0]
>>> row["layer"], int(row["kept"]), int(row["effective"])
('features.1', 64, 64)
>>> int(view.partitions.loc[0, "units"]), int(view.partitions.loc[0, "live"])
(64, 64)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from analysis.glossary import help_text
from fullspectrum.checkpoints import load_sparse_checkpoint
from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.models import build_model
from fullspectrum.runs import RunStore
from fullspectrum.topology import SKIP_MODES, effective_paths, topometrics, unrolled_graph
from fullspectrum.topology.paths import reachability

STAGES = ("graph", "paths and topometrics")
"""The steps :func:`unrolled_view` reports to its ``progress`` callback, in order."""
SUMMARY_METRICS = (
    "nodes", "edges", "identity_edges", "total_edges", "density", "effective_edges", "effective_weights",
    "effective_density",
)  # fmt: skip
"""The graph's counts, shown above the topometrics."""
TOPOMETRICS = (
    "source_nodes", "sink_nodes", "disconnected_nodes", "removable_in", "removable_out",
    "out_neighbourhood_1", "out_neighbourhood_2", "strength", "coreness", "cut_edges", "cut_nodes",
    "components", "mean_component_size", "spectral_gap_w", "laplacian_radius_w", "motifs_4",
)  # fmt: skip
"""SPEC §7's topometrics, in the order of its table."""
LAYER_COLUMNS = ("layer", "kept", "effective", "ineffective", "weights", "edges", "effective_edges")
PARTITION_COLUMNS = ("position", "partition", "shape", "units", "reached", "reaching", "live")
METRIC_COLUMNS = ("metric", "value", "normalised", "meaning")
TERMS = {"nodes": "unrolled nodes", "edges": "unrolled edges", "kept": "kept weights", "live": "live units"}
"""Code names whose glossary entry has another name (the bare words mean other things elsewhere)."""


@dataclass(frozen=True)
class UnrolledView:
    """What the Unrolled view page shows of one set of masks."""

    counts: dict
    """``unrolled_graph(...).as_dict()``'s ``nodes``, ``edges``, ``identity_edges``, ``dense_edges``."""
    layers: pd.DataFrame
    """Per layer (:data:`LAYER_COLUMNS`): kept, effective and ineffective weights, unrolled edges."""
    partitions: pd.DataFrame
    """Per partition from input to output (:data:`PARTITION_COLUMNS`): units, reached from the input,
    reaching the output, live (both)."""
    metrics: pd.DataFrame
    """Counts then topometrics (:data:`METRIC_COLUMNS`): value, value per node or edge, the glossary's line."""
    topometrics: dict
    """``topometrics(graph).as_dict()`` as the library returned it."""
    notes: tuple[str, ...]
    """The graph's own notes (e.g. operations without edges)."""


def zoo_network(
    model: str, data: str, weights: Mapping[str, Tensor] | None = None, *, model_options: Mapping | None = None,
    data_dir: str | None = None, seed: int = 0,
) -> tuple[nn.Module, tuple[int, ...]]:  # fmt: skip
    """The zoo ``model`` for ``data``'s inputs and classes with ``weights`` copied in, and its input shape.

    Parameters ``weights`` lacks keep the zoo's initialisation drawn with ``seed`` (so the weighted
    metrics of masks without weights are the same on every call). A weight of the wrong size is bad
    input naming the parameter.
    """
    splits = load_dataset(data, data_dir=data_dir)
    with torch.random.fork_rng(devices=[]):  # weights the masks do not come with: the same on every call
        torch.manual_seed(seed)
        net = build_model(model, splits.num_classes, splits.input_shape, **dict(model_options or {}))
    parameters = dict(net.named_parameters())
    with torch.no_grad():
        for name, value in (weights or {}).items():
            target = parameters.get(name)
            if target is None:
                continue  # masks and weights the topology does not read (e.g. a wrapper's extra)
            if target.numel() != value.numel():
                raise FullSpectrumError(
                    f"weight {name}: {tuple(value.shape)} does not fit {model}'s {tuple(target.shape)} on {data}"
                )
            target.copy_(value.reshape(target.shape))
    return net, tuple(int(n) for n in splits.input_shape)


def source_network(source: tuple) -> dict:
    """Which zoo network a mask source's masks belong to: ``model``, ``data``, ``model_options``, ``data_dir``
    from a run's config (a run snapshot, a PAGS candidate), or from an uploaded mask checkpoint's ``meta``
    (keys it lacks are None: the caller asks the user)."""
    if source[0] == "upload":
        meta = load_sparse_checkpoint(source[1]).meta
        return {"model": meta.get("model"), "data": meta.get("data"), "model_options": {}, "data_dir": None}
    config = RunStore.open(Path(source[1])).info.get("config") or {}
    return {
        "model": config.get("model"),
        "data": config.get("data"),
        "model_options": config.get("model_options") or {},
        "data_dir": config.get("data_dir"),
    }


def network_graph(
    masks: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    model: str,
    data: str,
    *,
    model_options: Mapping | None = None,
    data_dir: str | None = None,
    skips: str = "identity",
    mge24_compat: bool = False,
):
    """The unrolled graph (:func:`fullspectrum.topology.unrolled_graph`) of ``masks`` on the zoo ``model`` for
    ``data`` with ``weights`` (the edges' ``|w|``; none: the zoo's initial weights)."""
    if skips not in SKIP_MODES:
        raise FullSpectrumError(f"skips {skips!r}: choose one of {', '.join(SKIP_MODES)}")
    net, input_shape = zoo_network(model, data, weights, model_options=model_options, data_dir=data_dir)
    return unrolled_graph(net, dict(masks), input_shape, skips=skips, mge24_compat=mge24_compat)


def read_unrolled(graph, *, motifs: bool = False) -> UnrolledView:
    """Effective paths, live units and topometrics of an unrolled graph (see the module docstring)."""
    paths = effective_paths(graph)
    metrics = topometrics(graph, motifs=motifs, paths=paths).as_dict()
    return UnrolledView(
        counts={
            k: v
            for k, v in graph.as_dict().items()
            if k in ("nodes", "edges", "identity_edges", "dense_edges")
        },
        layers=pd.DataFrame(paths.as_dict()["layers"], columns=list(LAYER_COLUMNS)),
        partitions=partition_table(graph),
        metrics=metric_table(metrics),
        topometrics=metrics,
        notes=tuple(graph.notes),
    )


def unrolled_view(
    masks: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    model: str,
    data: str,
    *,
    motifs: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    **options,
) -> UnrolledView:
    """:func:`network_graph` (``options``: its keywords) then :func:`read_unrolled`; ``progress(done, total,
    stage)`` is called before each of :data:`STAGES`."""
    if progress is not None:
        progress(0, len(STAGES), STAGES[0])
    graph = network_graph(masks, weights, model, data, **options)
    if progress is not None:
        progress(1, len(STAGES), STAGES[1])
    return read_unrolled(graph, motifs=motifs)


def partition_table(graph) -> pd.DataFrame:
    """Per partition of an unrolled graph, input first (:data:`PARTITION_COLUMNS`); compatibility padding
    nodes count as units but are never live."""
    forward, backward = reachability(graph)
    order = graph.partitions
    rows = []
    for i, (part, reached, reaching) in enumerate(zip(order, forward, backward, strict=True)):
        rows.append(
            {
                "position": i,
                "partition": part.name,
                "shape": "×".join(map(str, part.shape)),
                "units": int(part.size),
                "reached": int(np.count_nonzero(reached)),
                "reaching": int(np.count_nonzero(reaching)),
                "live": int(np.count_nonzero(reached & reaching)),
            }
        )
    return pd.DataFrame(rows, columns=list(PARTITION_COLUMNS))


def metric_table(metrics: Mapping) -> pd.DataFrame:
    """The counts and topometrics of ``topometrics(...).as_dict()`` with their normalised values and meanings;
    ``motifs_4`` only when it was computed."""
    rows = []
    for name in (*SUMMARY_METRICS, *TOPOMETRICS):
        if name not in metrics or (name == "motifs_4" and metrics[name] is None):
            continue
        normalised = metrics.get(f"{name}_norm", math.nan)
        rows.append(
            {
                "metric": name,
                "value": float(metrics[name]),
                "normalised": float(normalised) if normalised is not None else math.nan,
                "meaning": help_text(TERMS.get(name, name)),
            }
        )
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
