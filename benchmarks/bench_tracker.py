"""Tracker overhead: a training loop with ``fullspectrum.Tracker`` over the same loop without it.

Target: at most 1.10 on both cases, printed in one run:

* **MLP on digits** (the zoo's MLP, 256-128 hidden units) at the tracker's default interval
  (``every`` = 500): a static-sparse loop of its own (random masks at density 0.1 applied after
  each SGD step, the loss read with ``.item()`` as a logging loop does);
* **ResNet-18 on CIFAR-shaped random batches** (3×32×32, ten classes) with ``every`` = 20, a
  few dozen steps, the same masks-after-step loop.

The timed span is the loop itself: from the first step to the end of ``finish()`` (which waits
for the last snapshot's spectra and writes its weights), so every snapshot the loop asked for
is paid; the tracker is told ``total_steps``, as a loop with a progress bar would, and places
the spectra as by default (inline for the MLP, a small network; the worker process for ResNet-18). Making the
tracker (the spectra worker's start, the step-0 snapshot) happens once, before the loop, and is
reported on its own. Plain and tracked runs are interleaved ``--repeat`` times and their medians
compared (a shared machine varies by tens of percent); the CPU seconds of both, the spectra
worker's included, give a ratio that the machine's load moves much less.

Usage: ``python benchmarks/bench_tracker.py [--repeat 3] [--mlp-steps 3000] [--resnet-steps 40]
[--batch 32] [--skip-mlp] [--skip-resnet] [--device auto|cpu|cuda] [--threads N]``. ``--threads``
sets torch's thread count for both loops: on a CPU that other jobs keep busy, two torch threads
spin against each other (the MLP's step goes from about 2 ms to 90 ms at a load of 9 on two
cores) and the ratio is noise; one thread keeps it measurable.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from fullspectrum.data import load_dataset
from fullspectrum.devices import resolve_device
from fullspectrum.models import build_model
from fullspectrum.tracking import DEFAULT_EVERY, Tracker

TARGET = 1.10
DENSITY = 0.1


def random_masks(model: torch.nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Masks at :data:`DENSITY` for every Conv/Linear weight (the loop's own, not the library's)."""
    masks = {}
    for name, parameter in model.named_parameters():
        if name.endswith("weight") and parameter.dim() in (2, 4):
            masks[name] = (torch.rand(parameter.shape, generator=generator) < DENSITY).to(parameter.device)
    return masks


def make_loop(build: Callable, batches: Callable, steps: int, device: torch.device):
    """A fresh model, optimiser and masks, and the loop over ``steps`` steps reporting to ``tracker``."""
    torch.manual_seed(0)
    model = build().to(device)
    masks = random_masks(model, torch.Generator().manual_seed(0))
    parameters = dict(model.named_parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def loop(tracker: Tracker | None) -> tuple[float, float, float]:
        """Seconds of the steps, of ``finish()`` after them, and the CPU seconds of both (this
        process's threads and the spectra worker's, which ``finish()`` reaps)."""
        start, cpu = time.perf_counter(), _cpu_s()
        for step in range(1, steps + 1):
            inputs, targets = batches(step)
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for name, mask in masks.items():
                    parameters[name].mul_(mask)
            value = loss.item()
            if tracker is not None:
                tracker.step(step, loss=value)
        if device.type == "cuda":
            torch.cuda.synchronize()
        steps_s = time.perf_counter() - start
        if tracker is not None:
            tracker.finish()
        return steps_s, time.perf_counter() - start - steps_s, _cpu_s() - cpu

    return model, masks, loop


def _cpu_s() -> float:
    """CPU seconds of this process and of its reaped children (the spectra worker, once finished)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def time_case(name: str, build, batches, steps: int, every: int, device, repeat: int, root: Path) -> float:
    """Median time of the tracked loop (steps and ``finish()``) over the median plain loop; prints
    the details (the steps alone, ``finish()``, the tracker's creation)."""
    for warm_up in (None, root / f"{name}-warm-up"):  # imports, caches, the worker's first start
        model, masks, loop = make_loop(build, batches, min(steps, 3), device)
        loop(None if warm_up is None else Tracker(model, warm_up, masks=masks, every=every))
    plain, tracked_steps, finish, setup, plain_cpu, tracked_cpu = [], [], [], [], [], []
    for index in range(repeat):
        _, _, loop = make_loop(build, batches, steps, device)
        plain_s, _, cpu_s = loop(None)
        plain.append(plain_s)
        plain_cpu.append(cpu_s)
        model, masks, loop = make_loop(build, batches, steps, device)
        start = time.perf_counter()
        run_dir = root / f"{name}-{index}"
        tracker = Tracker(model, run_dir, masks=masks, every=every, config={"bench": name}, total_steps=steps)
        setup.append(time.perf_counter() - start)
        steps_s, finish_s, cpu_s = loop(tracker)
        tracked_steps.append(steps_s)
        finish.append(finish_s)
        tracked_cpu.append(cpu_s)
    total = [a + b for a, b in zip(tracked_steps, finish)]
    ratio = statistics.median(total) / statistics.median(plain)
    steps_ratio = statistics.median(tracked_steps) / statistics.median(plain)
    cpu_ratio = statistics.median(tracked_cpu) / statistics.median(plain_cpu)
    snapshots = len(range(0, steps + 1, every)) + (steps % every != 0)
    print(
        f"{name}: {steps} steps, every={every} ({snapshots} snapshots), {repeat} runs each: "
        f"plain {statistics.median(plain):.3f} s [{_list(plain)}]; tracked {statistics.median(total):.3f} s "
        f"[{_list(total)}] = steps {statistics.median(tracked_steps):.3f} s + finish() "
        f"{statistics.median(finish):.3f} s; creating the tracker {statistics.median(setup):.3f} s (once, "
        f"before the loop). Ratio {ratio:.3f} with finish(), {steps_ratio:.3f} for the steps alone, "
        f"{cpu_ratio:.3f} in CPU seconds (worker included; plain {statistics.median(plain_cpu):.3f} s): "
        f"{'meets' if ratio <= TARGET else 'misses'} the target {TARGET}",
        flush=True,
    )
    return ratio


def _list(values: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mlp-steps", type=int, default=3000)
    parser.add_argument("--resnet-steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32, help="ResNet-18 minibatch")
    parser.add_argument("--skip-mlp", action="store_true")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} torch threads", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench_tracker_"))
    ratios = {}
    try:
        if not args.skip_mlp:
            data = load_dataset("digits", flatten=True)
            inputs = torch.stack([data.train[i][0] for i in range(len(data.train))]).to(device)
            targets = torch.stack([data.train[i][1] for i in range(len(data.train))]).to(device)
            order = torch.Generator().manual_seed(0)
            picks = [torch.randint(len(inputs), (64,), generator=order) for _ in range(args.mlp_steps)]

            def mlp_batch(step: int):
                index = picks[step - 1].to(device)
                return inputs[index], targets[index]

            build = lambda: build_model("mlp", data.num_classes, data.input_shape)  # noqa: E731
            ratios["mlp"] = time_case(
                "mlp", build, mlp_batch, args.mlp_steps, DEFAULT_EVERY, device, args.repeat, root
            )
        if not args.skip_resnet:
            generator = torch.Generator().manual_seed(0)
            images = torch.randn(4, args.batch, 3, 32, 32, generator=generator).to(device)
            labels = torch.randint(0, 10, (4, args.batch), generator=generator).to(device)
            build = lambda: build_model("resnet18", 10, (3, 32, 32))  # noqa: E731
            ratios["resnet18"] = time_case(
                "resnet18",
                build,
                lambda step: (images[step % 4], labels[step % 4]),
                args.resnet_steps,
                20,
                device,
                args.repeat,
                root,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("ratios: " + ", ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
