"""Regenerate ``cached_runs/graphon/``: the G25 width-limit and trainability studies the app shows.

* ``width/``: :mod:`analysis.width_limit` for every generator that draws at any density, an MLP
  with two hidden layers of width 64 … 2048 on ``digits`` at density 0.05, 3 seeds, distances at
  ``K = 64`` (this project's default resolution, not G25's), fingerprints kept at ``K = 32`` in
  float16 so the folder stays small;
* ``trainability/``: :mod:`analysis.trainability` at density 0.05 on ``digits``, the zoo's MLP
  (256, 128), PyTorch's initialisation, ``N = 64`` NTK inputs, 300 iterations of static sparse
  training, 5 seeds, with the density-only baseline;
* ``trainability_sparse_init/``: the same with sparse-aware initialisation (Evci et al. 2020),
  a check that the verdict is not an artefact of the vanishing signal of sparse standard init;
* ``manifest.json``: the command, the commit, when, how long each study took and every file's size.

    python scripts/make_graphon_studies.py                 # all three (about 10-25 min on 2 shared cores)
    python scripts/make_graphon_studies.py --only width    # one of width, trainability, sparse_init

Every study runs on one torch thread (the machine may be shared) and records its config,
seeds and versions in its JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "cached_runs" / "graphon"
STUDIES = ("width", "trainability", "sparse_init")


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_width(out: Path) -> float:
    from analysis.width_limit import (
        WidthLimitConfig,
        run_width_limit,
        write_width_study,
    )  # why: after sys.path

    config = WidthLimitConfig(density=0.05, seeds=(0, 1, 2), K=64, store_K=32, data="digits")
    start = time.perf_counter()
    with tqdm(total=len(config.generators) * len(config.widths) * len(config.seeds), desc="width") as bar:
        result = run_width_limit(config, progress=lambda done, total, label: bar.update(done - bar.n))
    write_width_study(
        result, out, estimate_dtype="float16", extra={"script": "scripts/make_graphon_studies.py"}
    )
    for line in result.summary():
        print(line)
    return time.perf_counter() - start


def run_trainability(out: Path, *, sparse_init: bool, seeds: int) -> float:
    from analysis.trainability import (  # why: after sys.path
        TrainabilityConfig,
        run_trainability,
        verdict,
        write_trainability_study,
    )

    config = TrainabilityConfig(
        density=0.05, seeds=tuple(range(seeds)), data="digits", sparse_init=sparse_init
    )
    start = time.perf_counter()
    with tqdm(total=len(config.generators) * len(config.seeds) * 2, desc="trainability") as bar:
        result = run_trainability(config, progress=lambda done, total, label: bar.update(done - bar.n))
    write_trainability_study(result, out, extra={"script": "scripts/make_graphon_studies.py"})
    print(verdict(result.statistics))
    return time.perf_counter() - start


def _update_manifest(seconds: dict[str, float], argv: list[str]) -> None:
    path = OUT / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"studies": {}}
    for study, value in seconds.items():
        manifest["studies"][study] = {
            "seconds": round(value, 1),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": _commit(),
            "command": " ".join(["python", "scripts/make_graphon_studies.py", *argv]),
        }
    manifest["files"] = {
        str(p.relative_to(OUT)): p.stat().st_size for p in sorted(OUT.rglob("*")) if p.is_file() and p != path
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=STUDIES, action="append", help="run only these studies")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the trainability studies")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    import torch  # why: after OMP_NUM_THREADS is set

    torch.set_num_threads(1)
    seconds = {}
    for study in args.only or STUDIES:
        if study == "width":
            seconds[study] = run_width(OUT / "width")
        else:
            folder = "trainability" if study == "trainability" else "trainability_sparse_init"
            seconds[study] = run_trainability(
                OUT / folder, sparse_init=study == "sparse_init", seeds=args.seeds
            )
        print(f"{study}: {seconds[study]:.0f} s")
    _update_manifest(seconds, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
