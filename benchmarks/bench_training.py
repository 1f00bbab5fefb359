"""Snapshot overhead of sparse training: target <= 1.10.

The overhead is the ratio of training time with spectral snapshots to training
time without them, at the default snapshot interval:

* **MLP on digits**: whole default ITOP runs (the digits preset: 20+
  snapshots), with and without ``record_spectra``; masks and checkpoints are
  written in both, so the ratio isolates the spectra. On a multi-core CPU the
  spectra go to a worker process and the loop keeps one torch thread fewer, so
  the run without spectra is also timed on the loop's thread count.
* **ResNet-18 on synthetic 3×32×32**: a few timed iterations give the time of
  one iteration, one snapshot's spectra are timed, and the ratio at CIFAR's
  interval (``snapshot_every`` = 1500) is ``(I·t_iter + t_blocking) / (I·t_iter)``,
  where ``t_blocking`` is the whole spectra time when they run inline and only
  the capture (copies + checkpoint serialisation) when a worker process computes
  them (the default on CUDA), provided the worker keeps up (``t_spectra < I·t_iter``).

* **PAGS**: candidates generated and scored per second with 1 and 2 workers, and
  against scoring them the papers' way (``bench_sampling.py``, run from here too).

Usage: ``python benchmarks/bench_training.py [--device auto|cpu|cuda] [--iters 3] [--batch N]
[--skip-mlp] [--skip-resnet] [--skip-pags] [--population 4]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sampling import bench_pags  # noqa: E402

from fullspectrum.devices import resolve_device
from fullspectrum.models import build_model
from fullspectrum.training import (
    SparseState,
    TrainConfig,
    layer_densities,
    maskable_weights,
    random_masks,
    train,
)
from fullspectrum.training.recording import autocast
from fullspectrum.training.snapshots import compute_spectra

TARGET = 1.10


def timed_run(config: TrainConfig, root: Path, name: str) -> tuple[float, int]:
    start = time.perf_counter()
    result = train(config, root / name)
    return time.perf_counter() - start, result.total_steps


def bench_mlp(device: str, root: Path, repeat: int) -> None:
    """Whole default runs, with and without spectra, interleaved ``repeat`` times; medians compared
    (single runs on a shared machine vary by tens of percent).

    With spectra, a CPU run of this MLP computes them in a worker process and trains on one torch
    thread fewer (``fullspectrum.training.spectra_worker``), so the run without spectra is timed both
    at torch's default thread count (what a user gets) and at the loop's (same threads, spectra aside).
    """
    base = TrainConfig(device=device)
    timed_run(TrainConfig(device=device, epochs=1, record_spectra=False), root, "warm-up")  # imports, caches
    default_threads = torch.get_num_threads()
    times: dict[str, list[float]] = {"plain": [], "plain_loop_threads": [], "spectral": []}
    loop_threads = default_threads
    for index in range(repeat):
        plain, steps = timed_run(dataclasses.replace(base, record_spectra=False), root, f"plain{index}")
        spectral, _ = timed_run(base, root, f"spectral{index}")
        loop_threads = json.loads((root / f"spectral{index}" / "run.json").read_text())["torch_threads"]
        torch.set_num_threads(loop_threads)
        same, _ = timed_run(dataclasses.replace(base, record_spectra=False), root, f"same{index}")
        torch.set_num_threads(default_threads)
        times["plain"].append(plain)
        times["spectral"].append(spectral)
        times["plain_loop_threads"].append(same)
    snapshots = len(list((root / "spectral0" / "masks").iterdir()))
    median = {kind: statistics.median(values) for kind, values in times.items()}
    info = json.loads((root / "spectral0" / "run.json").read_text())
    print(
        f"MLP/digits ({steps} iterations, {snapshots} snapshots, device {device}, "
        f"spectra {info['spectra']}, median of {repeat}):"
    )
    print(
        f"  without spectra {median['plain']:7.2f} s ({default_threads} threads)   "
        f"with spectra {median['spectral']:7.2f} s ({loop_threads} threads)   "
        f"ratio {median['spectral'] / median['plain']:6.2f}"
    )
    if loop_threads != default_threads:
        print(
            f"  without spectra on the loop's {loop_threads} thread(s) {median['plain_loop_threads']:7.2f} s   "
            f"ratio {median['spectral'] / median['plain_loop_threads']:6.2f}"
        )


def bench_resnet18(device: torch.device, iters: int, batch: int) -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 10, (3, 32, 32)).to(device)
    weights = maskable_weights(model)
    shapes = {name: tuple(w.shape) for name, w in weights.items()}
    masks = random_masks(shapes, layer_densities(shapes, 0.05, "erk"), torch.Generator().manual_seed(0))
    state = SparseState.from_masks(masks).to(device)
    state.apply(weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=generator).to(device)  # (batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        state.apply(weights, optimizer)

    step()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    synchronize(device)
    t_iter = (time.perf_counter() - start) / iters

    start = time.perf_counter()
    cpu_masks = {name: mask.cpu().clone() for name, mask in state.masks.items()}
    arrays = {name: (weights[name].detach().float().cpu() * cpu_masks[name]).numpy() for name in cpu_masks}
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "sparse": state.state_dict()}
    torch.save(payload, tempfile.SpooledTemporaryFile())
    t_capture = time.perf_counter() - start
    start = time.perf_counter()
    compute_spectra({name: mask.numpy() for name, mask in cpu_masks.items()}, arrays)
    t_spectra = time.perf_counter() - start

    interval = TrainConfig(model="resnet18", data="cifar10").resolved(391).snapshot_every
    work = interval * t_iter
    inline = (work + t_capture + t_spectra) / work
    worker = (work + t_capture) / work
    print(f"ResNet-18/synthetic 3x32x32 (batch {batch}, {iters} iterations, device {device}):")
    print(
        f"  iteration {t_iter * 1e3:8.1f} ms   snapshot spectra {t_spectra:6.2f} s   capture {t_capture:5.2f} s"
    )
    print(
        f"  at snapshot_every={interval}: ratio inline {inline:6.3f}   with a spectra worker {worker:6.3f}",
        end="",
    )
    print("" if t_spectra < work else "   (the worker would fall behind)")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--iters", type=int, default=3, help="timed ResNet-18 iterations")
    parser.add_argument("--batch", type=int, help="ResNet-18 batch (default 128 on CUDA, 32 on CPU)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved MLP runs of each kind (median)")
    parser.add_argument("--skip-mlp", action="store_true")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--skip-pags", action="store_true", help="skip PAGS candidates/s (bench_sampling.py)")
    parser.add_argument("--population", type=int, default=4, help="PAGS candidates per end-to-end run")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"snapshot overhead, target <= {TARGET:.2f} (torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )
    if not args.skip_mlp:
        root = Path(tempfile.mkdtemp(prefix="bench_training_"))
        try:
            bench_mlp(str(device), root, args.repeat)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if not args.skip_resnet:
        bench_resnet18(device, args.iters, args.batch or (128 if device.type == "cuda" else 32))
    if not args.skip_pags:
        print("PAGS candidates scored per second (benchmarks/bench_sampling.py):")
        bench_pags(population=args.population, device=args.device)


if __name__ == "__main__":
    main()
