"""The finished sweep of an FS23 reproduction read back as rows: one per trained network.

Each training point of the sweep (:mod:`~fullspectrum.reproduction.fs23_grid`) becomes a row of
:data:`~fullspectrum.reproduction.report.POINT_COLUMNS` — its method, the generator its mask
started from, the requested density, the seed, the final test accuracy and the iterations it
cost: finding the mask (PEGS warm-up, every IMP level, the Early-Bird search; 0 for a generator
and for PAGS, whose candidates are scored without training) plus the final training. The ITOP
points become rows of :data:`ITOP_COLUMNS` for the distance-accuracy correlation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import RunStore
from fullspectrum.runs.run_file import read_info
from fullspectrum.sweeps import Point

ITOP_COLUMNS = ("data", "density", "seed", "accuracy", "final_distance")
TABLE_COLUMNS = ("data", "method", "generator", "density", "seed", "accuracy", "iterations", "run")


def training_rows(points: Iterable[Point], sweep_dir: str | Path) -> pd.DataFrame:
    """Rows of the finished training points (``TABLE_COLUMNS``); unfinished ones are left out."""
    sweep_dir = Path(sweep_dir)
    points = tuple(points)
    by_name = {point.name: point for point in points}
    rows = []
    for point in points:
        if point.stage in ("sample", "pegs", "itop"):
            continue
        final = _final(sweep_dir / point.name)
        if final is None:
            continue
        options = point.options
        upstream = by_name[point.upstream].options if point.upstream else {}
        if point.stage in ("generator", "pags", "pegs_train"):
            warmup = int(upstream.get("warmup_iters", 0))
            method = {"generator": "generator", "pags": "pags"}.get(point.stage, f"pegs{warmup}")
            generator, density = str(upstream["generator"]), float(upstream["density"])
            iterations = warmup + int(final.get("steps", 0))
        elif point.stage == "lottery":
            method = "lottery_rewind0" if int(options["rewind_iters"]) == 0 else "lottery_rewindk"
            generator, density = "", float(options["density"])
            iterations = int(final.get("iterations", 0))
        elif point.stage == "earlybird":
            method, generator, density = "earlybird", "", float(options["density"])
            iterations = int(final.get("iterations", 0))
        else:
            continue
        rows.append(
            {
                "data": str(options.get("data", upstream.get("data"))),
                "method": method,
                "generator": generator,
                "density": density,
                "seed": int(options["seed"]),
                "accuracy": _number(final.get("test_accuracy")),
                "iterations": iterations,
                "run": point.name,
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def itop_rows(points: Iterable[Point], sweep_dir: str | Path) -> pd.DataFrame:
    """The finished ITOP runs (``ITOP_COLUMNS``): final accuracy and final network-mean moving distance."""
    rows = []
    for point in points:
        if point.stage != "itop" or _final(Path(sweep_dir) / point.name) is None:
            continue
        store = RunStore.open(Path(sweep_dir) / point.name)
        layers = store.layers()
        distance = math.nan
        if not layers.empty:
            distance = float(layers.loc[layers["step"] == layers["step"].max(), "moving_distance"].mean())
        rows.append(
            {
                "data": str(point.options["data"]),
                "density": float(point.options["density"]),
                "seed": int(point.options["seed"]),
                "accuracy": _number(store.info.get("final", {}).get("test_accuracy")),
                "final_distance": distance,
            }
        )
    return pd.DataFrame(rows, columns=list(ITOP_COLUMNS))


def _final(run_dir: Path) -> dict | None:
    try:
        info = read_info(run_dir)
    except (FullSpectrumError, OSError):
        return None
    return info.get("final") or {} if info.get("status") == "finished" else None


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
