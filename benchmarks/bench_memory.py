"""Benchmark: peak resident memory of ``analyze`` on a mask checkpoint, against the checkpoint's size.

Setting: ResNet-18 (CIFAR variant, ``build_model("resnet18", 10, (3, 32, 32))``)
with ERK masks at density 0.2, saved as a SPEC §8 mask checkpoint the way
``fullspectrum prune --out`` writes one (``save_mask_checkpoint``: bool masks,
the float32 initial weights, meta); ResNet-20 and ResNet-34 the same way. Each
measurement runs in a fresh Python subprocess and reads its peak resident set
size (``resource.getrusage``, ``ru_maxrss``), minus the baseline: the peak of a
subprocess that only imports the libraries ``analyze`` uses (torch, numpy,
scipy, pandas, fullspectrum).

Printed: each checkpoint's size and peak extra RSS; a straight line through the
three (least squares), ``peak extra RSS = Y x checkpoint + constant``, and
ResNet-18 read with it (``X MB = Y x checkpoint (Z MB) + constant``). The
constant is what does not grow with the network: the engine's work on one batch
of layers, whose dense blocks are capped whatever the layer. As a stricter
reading, ResNet-18 again with only what ``analyze`` of a tiny MLP checkpoint
needs counted as constant. Two readings: as a one-off run, and with the compiled kernels loaded
first in every process, baseline included (see :data:`COMPILED`). The target of issue 11 is ``Y <= 2``. ``--trace``
also says where the memory goes: per batch of layers ``analyze`` hands the
engine, the RSS when the batch ends and its peak during the batch
(``/proc/self/status``, the peak reset between batches), and numpy's
allocations (``tracemalloc``) held and at their peak. No assertion: the figures
are for the README.

    python benchmarks/bench_memory.py            # about a minute on 2 cores
    python benchmarks/bench_memory.py --trace    # plus where the memory goes, batch by batch
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIT_MODELS = ("resnet20", "resnet18", "resnet34")
"""Checkpoints measured: a line through them splits the peak into a multiple of the size and a constant."""
IMPORTS = "import numpy, scipy.sparse, pandas, torch, fullspectrum.spectrum.network"
PEAK = textwrap.dedent(
    """
    import json, resource
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
    if model == "mlp":
        network = build_model("mlp", 10, (1, 8, 8), widths=[32, 16])
    else:
        network = build_model(model, 10, (3, 32, 32))
    result = generate_masks(network, "erk", density, seed=seed)
    meta = {"generator": "erk", "density": density, "seed": seed, "model": model}
    return save_mask_checkpoint(path, result.masks, network.state_dict(), meta)


def run_fresh(code: str):
    """The JSON printed last by ``code``, run in a fresh interpreter after the library imports."""
    # Started by a shell that forks it: a child exec'd straight from this process would inherit this
    # process's high-water mark (the kernel keeps the pre-exec memory's peak in ru_maxrss).
    completed = subprocess.run(
        ["/bin/sh", "-c", '"$0" -c "$1"; exit $?', sys.executable, f"{IMPORTS}\n{code}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the measuring subprocess failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def peak_kib(work: str) -> int:
    """Peak RSS (KiB) of a fresh interpreter that imports the libraries and then runs ``work``."""
    return int(run_fresh(PEAK.format(work=work)))


def analyze_work(path: Path) -> str:
    return (
        "from fullspectrum.spectrum.network import analyze\n"
        f"table = analyze({str(path)!r})\n"
        "assert len(table) > 0"
    )


TRACE = textwrap.dedent(
    """
    import json, re, tracemalloc
    from fullspectrum.spectrum.network import analyze

    def mb(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

    def reset_peak():
        tracemalloc.reset_peak()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # VmHWM starts again from VmRSS

    marks = []
    def progress(done, total):
        current, peak = tracemalloc.get_traced_memory()
        marks.append([done, mb("VmRSS"), mb("VmHWM"), current / 2**20, peak / 2**20])
        reset_peak()

    start = mb("VmRSS")
    tracemalloc.start()
    reset_peak()
    table = analyze({path!r}, progress=progress)
    print(json.dumps({{"start": start, "layers": list(table["layer"]), "marks": marks}}))
    """
)


def trace(path: Path) -> None:
    """Per batch of ``analyze`` (fresh interpreter): RSS when it ends and its peak, and numpy's traced
    allocations (``tracemalloc``; torch's own buffers, the network's tensors, are not traced)."""
    found = run_fresh(TRACE.format(path=str(path)))
    start, layers = found["start"], found["layers"]
    print("  per batch (MB above the RSS after imports; the first batch includes reading the file):")
    print(f"    {'layers':<44} {'RSS after':>9} {'RSS peak':>8} {'numpy held':>10} {'numpy peak':>10}")
    begin = 0
    for done, rss, hwm, current, peak in found["marks"]:
        names = ", ".join(layers[begin:done])
        names = names if len(names) <= 44 else names[:41] + "..."
        print(f"    {names:<44} {rss - start:9.1f} {hwm - start:8.1f} {current:10.1f} {peak:10.1f}")
        begin = done


COMPILED = "from fullspectrum.spectrum import load_compiled_kernels\nassert load_compiled_kernels()\n"
"""Loaded first in the second reading: numba and the engine's kernels, which a run loads once its
uncompiled Lanczos runs have taken a second (``gram_lanczos.LOAD_AFTER_SECONDS``): ResNet-18 and -34
do, mid-run, ResNet-20 does not, so in the one-off reading the line's slope carries that constant."""


def report(label: str, baseline: float, constant: float, sizes: dict, extras: dict) -> None:
    """The peaks of one reading, their line, and ResNet-18 read with it."""
    slope, intercept = np.polyfit([sizes[m] for m in FIT_MODELS], [extras[m] for m in FIT_MODELS], 1)
    size, extra = sizes["resnet18"], extras["resnet18"]
    print(
        f"  {label}: baseline RSS (imports{' and kernels' if 'kernels' in label else ''}): {baseline:.1f} MB"
    )
    for model in FIT_MODELS:
        print(f"    {model:<9} checkpoint {sizes[model]:6.1f} MB   peak extra RSS {extras[model]:6.1f} MB")
    print(
        f"    fit over {', '.join(FIT_MODELS)}: peak extra RSS = {slope:.2f} x checkpoint + {intercept:.1f} MB"
    )
    print(
        f"    ResNet-18: peak extra RSS = {extra:.1f} MB = {slope:.2f} x checkpoint ({size:.1f} MB) + "
        f"{extra - slope * size:.1f} MB (the fit's slope; the rest is the constant)"
    )
    print(
        f"    ResNet-18, counting as constant only what a tiny MLP's analyze needs ({constant:.1f} MB): "
        f"{extra:.1f} MB = {(extra - constant) / size:.2f} x checkpoint + {constant:.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="subprocesses per figure (median)")
    parser.add_argument("--trace", action="store_true", help="also print where the memory goes, per batch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        paths = {
            model: write_checkpoint(Path(folder) / f"{model}.pt", model, args.density, args.seed)
            for model in FIT_MODELS
        }
        tiny = write_checkpoint(Path(folder) / "mlp.pt", "mlp", 0.1, args.seed)

        def median_mb(work: str) -> float:
            return statistics.median(peak_kib(work) for _ in range(args.repeats)) / 1024

        sizes = {model: path.stat().st_size / 2**20 for model, path in paths.items()}
        print(
            f"analyze of an ERK mask checkpoint at density {args.density} (CIFAR models; "
            f"{args.repeats} fresh subprocesses per figure, medians); target: <= 2 x checkpoint + constant"
        )
        for first, label in (("", "as a one-off run"), (COMPILED, "with the compiled kernels loaded first")):
            baseline = median_mb(first + "pass")
            constant = median_mb(first + analyze_work(tiny)) - baseline
            extras = {
                model: median_mb(first + analyze_work(path)) - baseline for model, path in paths.items()
            }
            report(label, baseline, constant, sizes, extras)
        if args.trace:
            trace(paths["resnet18"])


if __name__ == "__main__":
    main()
