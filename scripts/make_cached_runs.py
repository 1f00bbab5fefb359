"""Regenerate every run under ``cached_runs/`` with the project's own command line.

The app opens these read-only, so it is useful the moment it starts:

* ITOP-Rand and RigL dynamic sparse training of an MLP on ``digits`` and
  ``mnist1d`` at three densities and two seeds (24 runs, enough points for the
  final-distance-vs-accuracy correlation of FS23 Fig. 3 and MGE24's density
  baseline);
* PAGS populations for three generators (SNIP, ERK, SynFlow) and one PEGS run;
* a static-training comparison of a PAGS mask against its generator's mask.

    python scripts/make_cached_runs.py            # all of them (about 15-25 min on 2 CPU cores)
    python scripts/make_cached_runs.py --only pags

Training checkpoints (needed only to resume) are removed from finished runs to
keep the folder small; everything the app shows stays.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "cached_runs"
DENSITIES = (0.05, 0.1, 0.2)
SEEDS = (0, 1)
PAGS_GENERATORS = ("snip", "erk", "synflow")
PAGS_DENSITY = 0.05
POPULATION = 100


def fullspectrum(*args: str) -> list[str]:
    return [sys.executable, "-m", "fullspectrum", *args]


def training_jobs() -> list[tuple[str, list[str]]]:
    jobs = []
    for data in ("digits", "mnist1d"):
        for method in ("itop", "rigl"):
            for density in DENSITIES:
                for seed in SEEDS:
                    name = f"train/{data}-mlp-{method}-d{density}-s{seed}"
                    args = ["train", "--model", "mlp", "--data", data, "--method", method]
                    args += ["--density", str(density), "--seed", str(seed), "--device", "cpu"]
                    # The shipped runs predate sparse-aware initialisation (on by default for the
                    # MLP now): keep them reproducible as they are.
                    args += ["--no-sparse-init"]
                    jobs.append((name, fullspectrum(*args, "--out", str(ROOT / name))))
    return jobs


def pags_jobs() -> list[tuple[str, list[str]]]:
    jobs = []
    for generator in PAGS_GENERATORS:
        name = f"pags/digits-mlp-{generator}-d{PAGS_DENSITY}"
        args = ["pags", "--model", "mlp", "--data", "digits", "--generator", generator]
        args += ["--density", str(PAGS_DENSITY), "--population", str(POPULATION), "--seed", "0"]
        jobs.append(
            (name, fullspectrum(*args, "--workers", "1", "--device", "cpu", "--out", str(ROOT / name)))
        )
    name = f"pags/digits-mlp-snip-d{PAGS_DENSITY}-pegs100"
    args = [
        "pags",
        "--model",
        "mlp",
        "--data",
        "digits",
        "--generator",
        "snip",
        "--density",
        str(PAGS_DENSITY),
    ]
    args += ["--population", str(POPULATION), "--warmup-iters", "100", "--seed", "0", "--workers", "1"]
    jobs.append((name, fullspectrum(*args, "--device", "cpu", "--out", str(ROOT / name))))
    return jobs


def static_jobs() -> list[tuple[str, list[str]]]:
    """Static training from the SNIP PAGS run's assembled mask and from its base (SNIP) mask."""
    source = ROOT / f"pags/digits-mlp-snip-d{PAGS_DENSITY}"
    jobs = []
    for label, mask in (("pags", "pags_mask.pt"), ("snip", "base_mask.pt")):
        for seed in SEEDS:
            name = f"static/digits-mlp-{label}-mask-d{PAGS_DENSITY}-s{seed}"
            args = ["train", "--model", "mlp", "--data", "digits", "--method", "static"]
            args += ["--mask", str(source / mask), "--seed", str(seed), "--device", "cpu"]
            jobs.append((name, fullspectrum(*args, "--out", str(ROOT / name))))
    return jobs


def run(job: tuple[str, list[str]]) -> tuple[str, float, int]:
    name, command = job
    target = ROOT / name
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        print(f"FAILED {name}: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    (target / "checkpoint.pt").unlink(missing_ok=True)  # only needed to resume; finished runs don't
    return name, time.perf_counter() - start, result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("train", "pags", "static"), action="append")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (default 2)")
    args = parser.parse_args()
    groups = args.only or ["train", "pags", "static"]
    failures = 0
    start = time.perf_counter()
    for group in groups:  # static needs the pags runs, so groups run one after another
        jobs = {"train": training_jobs, "pags": pags_jobs, "static": static_jobs}[group]()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for name, seconds, code in pool.map(run, jobs):
                failures += code != 0
                print(f"{'ok ' if code == 0 else 'ERR'} {seconds:6.1f}s  {name}", flush=True)
    print(f"done in {time.perf_counter() - start:.0f}s, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
