"""Benchmark: peak resident memory of ``analyze`` on a mask checkpoint, against the checkpoint's size.

Setting: ResNet-18 (CIFAR variant, ``build_model("resnet18", 10, (3, 32, 32))``)
with ERK masks at density 0.2, saved as a SPEC §8 mask checkpoint the way
``fullspectrum prune --out`` writes one (``save_mask_checkpoint``: bool masks,
the float32 initial weights, meta). Each measurement runs in a fresh Python
subprocess and reads its peak resident set size (``resource.getrusage``,
``ru_maxrss``):

* the baseline: a subprocess that only imports the libraries ``analyze`` uses
  (torch, numpy, scipy, pandas, fullspectrum);
* the constant: ``analyze`` of a tiny checkpoint (an MLP on 8x8 digits), i.e. what
  the first call costs whatever the network (lazy imports, first allocations);
* the ResNet-18: ``analyze`` of its checkpoint.

Printed: ``peak extra RSS = X MB = Y x checkpoint (Z MB) + constant``, with
``X`` the ResNet-18's peak minus the baseline and ``Y = (X - constant) / Z``.
The target of issue 11 is ``Y <= 2``. ``--trace`` also runs ``analyze`` under
``tracemalloc`` in this process and prints its peak traced allocation and the
largest allocation sites at that peak (where the memory goes). No assertion:
the figures are for the README.

    python benchmarks/bench_memory.py            # about a minute on 2 cores
    python benchmarks/bench_memory.py --trace    # plus the tracemalloc breakdown
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = "import numpy, scipy.sparse, pandas, torch, fullspectrum.spectrum.network"
PEAK = textwrap.dedent(
    """
    import json, resource, sys
    {imports}
    {work}
    print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))  # KiB on Linux
    """
)


def write_checkpoint(path: Path, model: str, density: float, seed: int) -> Path:
    """An ERK mask checkpoint of ``model`` at ``density`` (SPEC §8), as ``fullspectrum prune`` writes it."""
    import torch

    from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
    from fullspectrum.models import build_model
    from fullspectrum.pruning import generate_masks

    torch.manual_seed(seed)
    if model == "resnet18":
        network = build_model("resnet18", 10, (3, 32, 32))
    else:
        network = build_model("mlp", 10, (1, 8, 8), widths=[32, 16])
    result = generate_masks(network, "erk", density, seed=seed)
    meta = {"generator": "erk", "density": density, "seed": seed, "model": model}
    return save_mask_checkpoint(path, result.masks, network.state_dict(), meta)


def peak_kib(work: str) -> int:
    """Peak RSS (KiB) of a fresh interpreter that imports the libraries and then runs ``work``."""
    code = PEAK.format(imports=IMPORTS, work=work)
    # Started by a shell that forks it: a child exec'd straight from this process would inherit this
    # process's high-water mark (the kernel keeps the pre-exec memory's peak in ru_maxrss).
    completed = subprocess.run(
        ["/bin/sh", "-c", '"$0" -c "$1"; exit $?', sys.executable, code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the measuring subprocess failed:\n{completed.stderr}")
    return int(json.loads(completed.stdout.strip().splitlines()[-1]))


def analyze_work(path: Path) -> str:
    return (
        "from fullspectrum.spectrum.network import analyze\n"
        f"table = analyze({str(path)!r})\n"
        "assert len(table) > 0"
    )


def trace(path: Path, top: int) -> None:
    """``analyze`` under ``tracemalloc``: the peak traced bytes and the allocation sites at the peak."""
    import tracemalloc

    from fullspectrum.spectrum.network import analyze

    analyze(path)  # warm: lazy imports and caches are not the network's memory
    tracemalloc.start(25)
    analyze(path)
    _, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    print(f"  tracemalloc: peak traced {peak / 2**20:.1f} MB during analyze (numpy and torch CPU buffers)")
    print("  (what is still allocated when analyze returns, by line:)")
    for stat in snapshot.statistics("lineno")[:top]:
        print(f"    {stat.size / 2**20:8.1f} MB  {stat.traceback[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="subprocesses per figure (median)")
    parser.add_argument("--trace", action="store_true", help="also print a tracemalloc breakdown")
    args = parser.parse_args()

    import statistics

    with tempfile.TemporaryDirectory() as folder:
        big = write_checkpoint(Path(folder) / "resnet18.pt", "resnet18", args.density, args.seed)
        tiny = write_checkpoint(Path(folder) / "mlp.pt", "mlp", 0.1, args.seed)
        size_mb = big.stat().st_size / 2**20

        def median_mb(work: str) -> float:
            return statistics.median(peak_kib(work) for _ in range(args.repeats)) / 1024

        baseline = median_mb("pass")
        constant = median_mb(analyze_work(tiny)) - baseline
        extra = median_mb(analyze_work(big)) - baseline
        factor = (extra - constant) / size_mb
        print(
            f"ResNet-18 (CIFAR), ERK at density {args.density}, analyze of a mask checkpoint "
            f"({args.repeats} fresh subprocesses per figure, medians)"
        )
        print(f"  baseline RSS (imports only): {baseline:.1f} MB")
        print(f"  constant (analyze of a tiny MLP checkpoint): {constant:.1f} MB")
        print(
            f"  peak extra RSS = {extra:.1f} MB = {factor:.2f} x checkpoint ({size_mb:.1f} MB) "
            f"+ {constant:.1f} MB   (target: <= 2 x checkpoint + constant)"
        )
        if args.trace:
            trace(big, top=12)


if __name__ == "__main__":
    main()
