"""A sparse checkpoint as an ``analysis`` run (SPEC §8; FS23's full-spectrum coordinate of one mask).

Users bring checkpoints made elsewhere (``torch.nn.utils.prune`` state dicts,
ITOP/RigL runs, mask checkpoints). :func:`ingest_checkpoint` reads one safely
(``weights_only=True``, through :func:`~fullspectrum.checkpoints.load_sparse_checkpoint`),
computes every layer's full spectrum (:func:`~fullspectrum.spectrum.network.analyze`)
and writes a run directory of kind ``analysis`` with one snapshot at step 0, so
the app and the ``runs``/``export`` commands treat it like any other run:

* ``layers`` rows at step 0 (moving distance 0: the mask is its own start;
  exploration rate = the layer's density, the OR of the only mask seen);
* the masks under ``masks/`` (step 0), keyed by parameter name, with the kept weights
  (``values_i``) when the checkpoint has them;
* the checkpoint file itself, copied in (atomically) as ``source<suffix>`` (weights for later views);
* ``run.json``: ``config`` (source, detected format, model/data/method from the
  checkpoint's ``meta`` when it says so, overall density), notes (a dense checkpoint is said to be
  one) and skipped tensors.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from fullspectrum.checkpoints import existing_file, load_sparse_checkpoint
from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import parameter_name
from fullspectrum.runs.outputs import NONEMPTY_OPT_IN, check_new_run_folder
from fullspectrum.runs.store import RunStore
from fullspectrum.spectrum import SPECTRUM_FIELDS
from fullspectrum.spectrum.network import analyze

SOURCE_STEM = "source"
"""The copied checkpoint is ``RUN_DIR/source<suffix>``."""
META_KEYS = ("model", "data", "method", "generator", "seed")
"""Keys of a checkpoint's ``meta`` copied into the run's config."""


def ingest_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    convention: str = "fs23",
    progress: Callable[[int, int], None] | None = None,
    allow_nonempty: bool = False,
) -> RunStore:
    """Analyse ``checkpoint`` into a new ``analysis`` run at ``out_dir``; returns the (finished) store.

    Bad files raise :class:`~fullspectrum.errors.CheckpointError`/``MaskError``
    and a bad ``out_dir`` a :class:`~fullspectrum.runs.RunError`, before anything
    is written; a failure after the run exists leaves it ``failed``. ``out_dir``
    must be new or empty, or hold nothing but the checkpoint itself (the app saves
    an upload into the run folder first), unless ``allow_nonempty``: then other
    files may be there, and none is replaced
    (:func:`~fullspectrum.runs.outputs.check_new_run_folder`).
    """
    source = existing_file(checkpoint)
    copy_name = f"{SOURCE_STEM}{''.join(source.suffixes[-1:])}"
    place = dict(inputs=[source], artifacts=[copy_name], allow_nonempty=allow_nonempty)
    check_new_run_folder(out_dir, **place, opt_in=NONEMPTY_OPT_IN)  # before the analysis, which takes long
    loaded = load_sparse_checkpoint(source)  # weights_only=True; raises one-line errors
    table = analyze(loaded, convention=convention, progress=progress)
    edges = int(table["edges"].sum())
    total = sum(layer.mask.numel() for layer in loaded.layers)
    meta = {key: loaded.meta[key] for key in META_KEYS if key in loaded.meta}
    config = {
        "model": meta.get("model", "uploaded"),
        "data": meta.get("data"),
        "method": meta.get("method") or meta.get("generator"),
        "density": edges / total if total else 0.0,
        "source": source.name,
        "format": loaded.format,
        "convention": convention,
    }
    store = RunStore.create(
        out_dir, kind="analysis", config=config, seed=int(meta.get("seed", 0)), device="cpu", **place
    )
    try:
        rows = []
        for record in table.to_dict("records"):
            row = {field: record[field] for field in ("layer", *SPECTRUM_FIELDS)}
            rows.append({**row, "moving_distance": 0.0, "exploration_rate": record["density"]})
        store.add_snapshot(0, rows)
        weights = {  # the kept weights (SPEC §8 ``values_i``), so λ, ω and λ_c show in every view
            parameter_name(layer.name): layer.weight for layer in loaded.layers if layer.weight is not None
        }
        store.save_masks(
            0, {parameter_name(layer.name): layer.mask.to(torch.bool) for layer in loaded.layers}, weights
        )
        copy = store.artifact_path(copy_name)
        if source.resolve() != copy.resolve():
            with open(source, "rb") as original:
                write_atomic(copy, lambda handle: shutil.copyfileobj(original, handle))
        notes = list(table.attrs.get("notes", []))
        if total and edges == total:
            notes.append(
                "every weight is kept: this checkpoint is dense, not sparse (its masks are all ones)"
            )
        store.update_info(
            source_file=copy.name,
            notes=notes,
            skipped=[list(item) for item in table.attrs.get("skipped", [])],
        )
        store.finish(final={"layers": len(rows), "edges": edges})
    except BaseException:
        with contextlib.suppress(FullSpectrumError, OSError):
            store.finish(status="failed")
        raise
    return store
