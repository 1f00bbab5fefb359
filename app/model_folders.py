"""A Hugging Face model folder (sharded safetensors) as an ``analysis`` run, for the Runs page.

Pruned language models (Wanda, SparseGPT, 2:4) come as a folder of ``.safetensors`` shards and a
``model.safetensors.index.json``; 13–27 GB for a 7B model, so neither an upload nor a copy. The
user names a folder that lies under one of the app's run folders (:func:`resolve_model_folder`:
links resolved, ``..`` refused, anything outside refused in one line naming what was typed), and a
worker process (``python -m app.model_folders FOLDER --out RUN_DIR``, started by
:func:`start_analysis`) reads it layer by layer, memory-mapped, through the library's
``analyze`` (layer names, fused q/k/v split, ``block``/``projection``/``nm_pattern``), into a new
run folder in the workspace: never into the user's folder. While it works, ``run.json`` carries
``progress`` (layers done of total) and a heartbeat; :func:`analysis_state` reads them back.

The run is like an uploaded checkpoint's (one snapshot at step 0), except that it keeps no copy
of the model, its ``run.json`` holds each layer's ``block``, ``projection`` and ``nm_pattern``
(:data:`GROUPS_KEY`; the run store's ``layers`` table has no such columns), and its masks (with
the kept weights, for the Graph inspector) are stored only when the analysed layers hold at most
:data:`MASKS_LIMIT` weights: a 7B model's masks alone would be 800 MB packed.

This module never imports Streamlit: the worker runs it on its own.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from fullspectrum.checkpoints.sharded import INDEX_NAME, SINGLE_NAME, ShardedCheckpoint, open_sharded
from fullspectrum.cli.app import folder_allowed
from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import parameter_name
from fullspectrum.runs import RunError, RunStore
from fullspectrum.runs.jobs import JOB_LOG, last_log_line
from fullspectrum.runs.run_file import RUN_FILE, effective_status, read_info
from fullspectrum.spectrum import SPECTRUM_FIELDS
from fullspectrum.spectrum.network import analyze, layer_filter

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = (INDEX_NAME, SINGLE_NAME)
"""A folder holding one of these is a model folder."""
MASKS_LIMIT = 2**26
"""Most weights whose masks (and kept weights) the run stores: 67M weights are 8 MB of packed bits
plus at most 256 MB of float32 values, held together once while they are saved."""
GROUPS_KEY = "layer_groups"
"""``run.json`` key: ``{layer: [block, projection, nm_pattern]}``."""
PROGRESS_KEY = "progress"
"""``run.json`` key: ``{"done": layers analysed, "total": layers to analyse}``."""
SEARCH_DEPTH = 3
"""How deep under each run folder :func:`find_model_folders` looks."""
_WORKERS: dict[str, subprocess.Popen] = {}  # run folder -> its worker, for this server's lifetime
_WORKERS_LOCK = threading.Lock()


# -- which folder ----------------------------------------------------------------------------------------


def resolve_model_folder(text: str, roots: Sequence[str | Path]) -> Path:
    """The model folder the user named, links resolved; a one-line ``FullSpectrumError`` naming ``text``
    when it is not a model folder under one of ``roots``.

    An absolute path is taken as it is; a relative one under each root in turn (the first that exists).
    A path with ``..`` is refused outright, and so is one whose resolved place (a link followed) lies
    outside every root.
    """
    typed = text.strip()
    if not typed:
        raise FullSpectrumError("give the path of a model folder under one of the run folders")
    path = Path(typed).expanduser()
    if ".." in path.parts:
        raise FullSpectrumError(f"{typed}: '..' is not allowed; give the folder's path under a run folder")
    candidates = [path] if path.is_absolute() else [Path(root) / path for root in roots]
    found = next((candidate for candidate in candidates if candidate.exists()), None)
    if found is None:
        where = "" if path.is_absolute() else f" under the run folders ({_listed(roots)})"
        raise FullSpectrumError(f"{typed}: no such folder{where}")
    if not folder_allowed(found, roots):
        raise FullSpectrumError(
            f"{typed}: not under the run folders ({_listed(roots)}); only model folders under them can be "
            "analysed (add a folder in the sidebar, or start the app with --runs)"
        )
    if not found.is_dir():
        raise FullSpectrumError(f"{typed}: not a folder; give the model folder that holds {INDEX_NAME}")
    if not any((found / name).is_file() for name in MODEL_FILES):
        raise FullSpectrumError(f"{typed}: holds neither {INDEX_NAME} nor {SINGLE_NAME}; not a model folder")
    return found.resolve()


def _listed(roots: Sequence[str | Path]) -> str:
    return ", ".join(str(root) for root in roots) or "none"


def find_model_folders(roots: Iterable[str | Path], depth: int = SEARCH_DEPTH) -> list[str]:
    """Model folders under ``roots`` (at most ``depth`` levels down; runs, hidden folders and links
    not entered), sorted."""
    found: set[str] = set()
    for root in roots:
        _search(Path(root), depth, found)
    return sorted(found)


def _search(folder: Path, depth: int, found: set[str]) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    names = {entry.name for entry in entries}
    if any(name in names for name in MODEL_FILES):
        found.add(str(folder))
        return
    if RUN_FILE in names or depth <= 0:
        return
    for entry in entries:
        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
            _search(Path(entry.path), depth - 1, found)


def planned_layers(folder: Path, layers: str | None) -> tuple[ShardedCheckpoint, list[str]]:
    """The folder's plan (index and headers only, no weights read) and the layers ``layers`` keeps;
    a regular expression that is bad or keeps nothing is a one-line error."""
    checkpoint = open_sharded(folder)
    keep = layer_filter(layers)
    names = [name for name in checkpoint.layer_names if keep is None or keep(name)]
    if not names:
        every = checkpoint.layer_names
        shown = ", ".join(every[:3]) + (", ..." if len(every) > 3 else "")
        raise FullSpectrumError(f"layers {layers!r} matches none of the {len(every)} layers ({shown})")
    return checkpoint, names


# -- the analysis (the worker's work) ----------------------------------------------------------------------


def analyse_folder(
    folder: str | Path,
    run_dir: str | Path,
    *,
    layers: str | None = None,
    convention: str = "fs23",
    progress: Callable[[int, int], None] | None = None,
) -> RunStore:
    """Analyse the model folder into a new ``analysis`` run at ``run_dir`` (new or empty); returns
    the finished store. Bad input raises before the run exists; a failure later leaves it ``failed``."""
    folder = Path(folder)
    checkpoint, names = planned_layers(folder, layers)
    keep = layer_filter(layers)
    planned = [weight for weight in checkpoint.weights if keep is None or any(map(keep, weight.names))]
    weights_read = sum(math.prod(weight.weight.shape) for weight in planned)
    config = {
        "model": folder.name,
        "data": None,
        "method": None,
        "density": None,
        "source": folder.name,
        "format": f"Hugging Face model folder ({checkpoint.format})",
        "convention": convention,
        "layers": layers,
    }
    store = RunStore.create(run_dir, kind="analysis", config=config, seed=0, device="cpu")
    with store.ended_on_error():
        store.update_info(**{PROGRESS_KEY: {"done": 0, "total": len(names)}})

        def report(done: int, total: int) -> None:
            store.update_info(**{PROGRESS_KEY: {"done": done, "total": total}})
            if progress is not None:
                progress(done, total)

        with store.heartbeat_thread():
            table = analyze(checkpoint, convention=convention, progress=report, layers=layers)
        rows = [
            {**{field: record[field] for field in ("layer", *SPECTRUM_FIELDS)},
             "moving_distance": 0.0, "exploration_rate": record["density"]}
            for record in table.to_dict("records")
        ]  # fmt: skip
        store.add_snapshot(0, rows)
        notes = list(table.attrs.get("notes", []))
        if weights_read <= MASKS_LIMIT:
            _save_masks(store, checkpoint, keep)
        else:
            notes.append(
                f"masks not stored: the analysed layers hold {weights_read:,} weights, over the app's "
                f"{MASKS_LIMIT:,}; the Graph inspector cannot open this run (pick fewer layers to store them)"
            )
        edges = int(table["edges"].sum())
        total = sum(math.prod(int(size) for size in shape.split("x")) for shape in table["shape"])
        store.update_info(
            config={**config, "density": edges / total if total else 0.0},
            notes=notes,
            skipped=[list(item) for item in table.attrs.get("skipped", [])],
            **{
                GROUPS_KEY: {
                    row.layer: [row.block, row.projection, row.nm_pattern] for row in table.itertuples()
                }
            },
        )
        store.finish(final={"layers": len(rows), "edges": edges})
    return store


def _save_masks(store: RunStore, checkpoint: ShardedCheckpoint, keep) -> None:
    """The analysed layers' masks and kept weights as the step-0 snapshot (a second, small read)."""
    masks, weights = {}, {}
    for records in checkpoint.records(keep):
        for record in records:
            masks[parameter_name(record.name)] = record.mask.to(torch.bool)
            if record.weight is not None:
                weights[parameter_name(record.name)] = record.weight
    store.save_masks(0, masks, weights)


# -- the worker process ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderAnalysis:
    """How a model folder's analysis stands, read from its run folder."""

    status: str
    """``starting``, ``running``, ``finished``, ``failed`` or ``interrupted``."""
    done: int
    """Layers analysed so far."""
    total: int | None
    """Layers to analyse (None before the worker has planned them)."""
    error: str | None
    """A failed analysis's one line."""

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running")


def worker_command(folder: Path, run_dir: Path, layers: str | None) -> list[str]:
    """``python -m app.model_folders FOLDER --out RUN_DIR [--layers REGEX]`` with this interpreter."""
    command = [sys.executable, "-m", "app.model_folders", str(folder), "--out", str(run_dir)]
    return [*command, "--layers", layers] if layers else command


def start_analysis(folder: Path, run_dir: Path, layers: str | None) -> None:
    """Start the worker detached (its own session: a rerun or a closed tab does not touch it), logging
    into ``run_dir``; return at once. A thread reaps it when it ends."""
    run_dir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1",
                   "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))}  # fmt: skip
    with open(run_dir / JOB_LOG, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - this interpreter on this module
            worker_command(folder, run_dir, layers),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
            env=environment,
        )
    with _WORKERS_LOCK:
        _WORKERS[str(run_dir)] = process
    threading.Thread(target=process.wait, name=f"fullspectrum-folder-{process.pid}", daemon=True).start()


def analysis_state(run_dir: str | Path) -> FolderAnalysis:
    """The analysis's state from its run folder and, when this server started it, its worker."""
    run_dir = Path(run_dir)
    with _WORKERS_LOCK:
        process = _WORKERS.get(str(run_dir))
    alive = process is not None and process.poll() is None
    info = None
    if (run_dir / RUN_FILE).is_file():
        try:
            info = read_info(run_dir)
        except RunError:
            info = None
    progress = (info or {}).get(PROGRESS_KEY) or {}
    done, total = int(progress.get("done", 0)), progress.get("total")
    if info is None:
        status = "starting" if alive else "failed"
    else:
        status = effective_status(info)
        if alive and status not in ("finished", "failed"):
            status = "running"
        elif status == "running" and process is not None:
            status = "failed"  # its worker is gone (killed, out of memory) before it finished
    error = None
    if status in ("failed", "interrupted"):
        error = _error_line(run_dir, process)
    return FolderAnalysis(status, done, int(total) if total is not None else None, error)


def _error_line(run_dir: Path, process: subprocess.Popen | None) -> str:
    """The worker's last line (its one-line error), the run folder's path left out."""
    line = last_log_line(run_dir)
    if not line:
        code = process.returncode if process is not None else None
        return f"the analysis stopped without a message (exit code {code})"
    for prefix in ("fullspectrum: error: ", "fullspectrum: "):
        line = line.removeprefix(prefix)
    return line.replace(str(run_dir), run_dir.name)


def main(argv: Sequence[str] | None = None) -> int:
    """The worker: exit 0 (finished), 2 (bad input: one line), 1 (unexpected: traceback, then one line)."""
    parser = argparse.ArgumentParser(prog="python -m app.model_folders", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="Hugging Face model folder (model.safetensors.index.json and shards)")
    parser.add_argument("--out", required=True, help="the new run folder (new or empty)")
    parser.add_argument("--layers", default=None, help="analyse only the layers whose name matches REGEX")
    args = parser.parse_args(argv)
    try:
        analyse_folder(args.folder, args.out, layers=args.layers)
    except FullSpectrumError as error:
        print(f"fullspectrum: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fullspectrum: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the page shows the last line; the log keeps the rest
        traceback.print_exc()
        print(f"fullspectrum: error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
