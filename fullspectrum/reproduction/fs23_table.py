"""``reproduce fs23-table``: run FS23's comparison through a sweep and write its report.

The reproduction folder ``DIR`` (``run.json`` of kind ``reproduction``, SPEC §8) holds

    DIR/sweep/        the chained sweep of every run (kind sweep; resumable, skips what finished)
    DIR/points.csv    one row per trained network (method, generator, density, seed, accuracy, cost)
    DIR/results.csv   mean ± 95% CI per method and density (reproduction.report.RESULT_COLUMNS)
    DIR/report.md     the table, the claims with their verdicts, the distance-accuracy correlation

Running it again continues the sweep and rewrites the three tables from every finished run.
Results are reported per dataset, never pooled across datasets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fullspectrum.checkpoints.atomic import write_atomic
from fullspectrum.errors import FullSpectrumError
from fullspectrum.reproduction.collect import itop_rows, training_rows
from fullspectrum.reproduction.fs23_grid import fs23_grid_text
from fullspectrum.reproduction.presets import Preset
from fullspectrum.reproduction.report import fs23_claims, render_report, results_table
from fullspectrum.reproduction.statistics import BootstrapCorrelation, bootstrap_correlation
from fullspectrum.runs import RunStore
from fullspectrum.runs.run_file import read_info
from fullspectrum.sweeps import CommandSpec, SweepResult, expand_grid, parse_grid
from fullspectrum.sweeps.launch import launch_sweep

KIND = "reproduction"
SWEEP_DIR, POINTS_FILE, RESULTS_FILE, REPORT_FILE = "sweep", "points.csv", "results.csv", "report.md"
ARTIFACTS = (SWEEP_DIR, POINTS_FILE, RESULTS_FILE, REPORT_FILE)


@dataclass(frozen=True)
class Reproduction:
    """What one invocation left in the reproduction folder."""

    folder: Path
    sweep: SweepResult
    points: pd.DataFrame
    """One row per finished trained network (``collect.TABLE_COLUMNS``)."""
    results: pd.DataFrame
    """Per dataset, method, generator and density (``data`` + ``report.RESULT_COLUMNS``)."""
    report: str


def run_fs23_table(
    preset: Preset,
    out: str | Path,
    *,
    commands: Mapping[str, CommandSpec],
    backend: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> Reproduction:
    """Run (or continue) the reproduction of ``preset`` in ``out`` and write its tables; ``backend``,
    ``address`` and ``max_parallel`` as for :func:`~fullspectrum.sweeps.launch.launch_sweep`."""
    out = Path(out).absolute()
    grid_text = fs23_grid_text(preset, data_dir=data_dir, device=device)
    config = {"table": "fs23", "preset": preset.as_dict(), "data_dir": data_dir, "device": device}
    config = json.loads(json.dumps(config))  # as run.json holds it (tuples read back as lists)
    store = _open_folder(out, config, device or preset.device)
    try:
        grid = parse_grid(grid_text, str(out / SWEEP_DIR / "grid.toml"))
        sweep_dir = out / SWEEP_DIR
        points = expand_grid(grid, sweep_dir)
        with store.heartbeat_thread():
            sweep = launch_sweep(
                grid,
                grid_text,
                sweep_dir,
                commands,
                backend=backend,
                address=address,
                max_parallel=max_parallel,
                progress=progress,
                notify=notify,
            )
        rows = training_rows(points, sweep_dir)
        itop = itop_rows(points, sweep_dir)
        results, report = _tables(preset, rows, itop)
        _write_csv(out / POINTS_FILE, rows)
        _write_csv(out / RESULTS_FILE, results)
        write_atomic(out / REPORT_FILE, lambda handle: handle.write(report.encode("utf-8")))
    except BaseException as error:
        store.finish("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")
        raise
    status = "interrupted" if sweep.interrupted else "finished" if sweep.all_finished else "failed"
    store.finish(
        status, final={"trained": len(rows), "points": len(points), "finished": sweep.count("finished")}
    )
    return Reproduction(out, sweep, rows, results, report)


def _tables(preset: Preset, rows: pd.DataFrame, itop: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    tables, sections = [], []
    for data in preset.datasets:
        mine = rows[rows["data"] == data]
        results = results_table(mine).assign(data=data) if not mine.empty else pd.DataFrame()
        tables.append(results)
        sections.append(
            render_report(
                f"FS23 Tables 2–3 reproduced: {preset.model} on {data} (preset {preset.name})",
                results,
                fs23_claims(mine) if not mine.empty else (),
                correlation=_correlations(itop[itop["data"] == data], f"{preset.model} on {data}"),
                notes=_notes(preset, mine),
            )
            if not mine.empty
            else f"# {preset.model} on {data}\n\nNo trained network finished yet.\n"
        )
    results = (
        pd.concat([t for t in tables if not t.empty], ignore_index=True)
        if any(not t.empty for t in tables)
        else pd.DataFrame()
    )
    if not results.empty:
        results = results[["data", *[c for c in results.columns if c != "data"]]]
    return results, "\n".join(sections)


def _correlations(itop: pd.DataFrame, where: str) -> list[tuple[str, BootstrapCorrelation]]:
    """FS23 Fig. 3 over ITOP runs: distance vs accuracy, density vs accuracy (the baseline), and
    distance vs accuracy once each density's mean is removed from both (density held fixed)."""
    if itop.empty:
        return []
    centred = itop.assign(
        final_distance=itop["final_distance"] - itop.groupby("density")["final_distance"].transform("mean"),
        accuracy=itop["accuracy"] - itop.groupby("density")["accuracy"].transform("mean"),
    )
    return [
        (
            f"ITOP, {where}: distance vs accuracy",
            bootstrap_correlation(itop["final_distance"], itop["accuracy"]),
        ),
        (
            f"ITOP, {where}: density vs accuracy (baseline)",
            bootstrap_correlation(itop["density"], itop["accuracy"]),
        ),
        (
            f"ITOP, {where}: distance vs accuracy within density",
            bootstrap_correlation(centred["final_distance"], centred["accuracy"]),
        ),
    ]


def _notes(preset: Preset, rows: pd.DataFrame) -> list[str]:
    seeds = sorted(rows["seed"].unique())
    return [
        f"{len(rows)} trained networks, seeds {', '.join(map(str, seeds))}; every mask trained by static "
        "sparse training with the dataset's training preset",
        f"PAGS/PEGS population {preset.population}; IMP prunes 20% per level, rewind k = {preset.rewind_iters} iterations",
        "iterations = finding the mask (PEGS warm-up, every IMP level, the Early-Bird search; 0 for a "
        "generator and for PAGS) + the final training",
        "FS23's own figures are for ResNet-18/34 on CIFAR-100 at density 0.01 (their Tables 2–3); this "
        "preset's numbers are not comparable with them in value, only in the ordering of methods",
    ]


def _open_folder(out: Path, config: dict, device: str) -> RunStore:
    if (out / "run.json").is_file():
        info = read_info(out)
        if info.get("kind") == KIND:
            if info.get("config") != config:
                raise FullSpectrumError(
                    f"{out}: holds a reproduction with other settings; give this one its own --out folder"
                )
            store = RunStore.open(out, readonly=False)
            store.update_info(status="running")
            return store
    return RunStore.create(out, kind=KIND, config=config, seed=0, device=device, artifacts=ARTIFACTS)


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    write_atomic(path, lambda handle: handle.write(table.to_csv(index=False).encode("utf-8")))
