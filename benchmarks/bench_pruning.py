"""Time to generate each pruning-at-initialisation mask (SPEC §6b) for ResNet-18.

ResNet-18 (CIFAR variant, 11M maskable weights) at density 0.01 on synthetic
3×32×32 data with 10 classes, so the data-driven generators score one batch
of 100 examples (their default budget, 10 × classes). Each time is printed in
seconds and as a multiple of one forward+backward pass of that same batch,
measured in the same run on the same device: the natural unit, since SNIP costs
about one pass, GraSP about three, and iterative methods one per round.

    python benchmarks/bench_pruning.py                       # CPU, and CUDA when present
    python benchmarks/bench_pruning.py --synflow-rounds 10   # finishes in a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from fullspectrum.models import build_model
from fullspectrum.pruning import GENERATOR_NAMES, generate_masks


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int, warmup: bool = True) -> float:
    """Median wall time of ``repeat`` calls of ``fn`` (after one warm-up call if ``warmup``)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(device: torch.device, args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 10, (3, 32, 32)).to(device)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.examples, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (args.examples,), generator=generator).to(device)
    data = [(x, y)]

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    model.eval()  # scoring runs in eval mode, so the unit does too
    unit = timed(forward_backward, device, args.repeat)
    weights = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1)
    print(
        f"\n{device}: ResNet-18, {weights:,} maskable weights, density {args.density}, batch {args.examples}"
    )
    print(f"  one forward+backward pass of the batch: {unit:.3f} s (median of {args.repeat})")
    print(f"  {'method':<10} {'seconds':>9} {'x fwd+bwd':>10}  notes")
    for method in args.methods:
        options = {}
        if method == "synflow":
            options["rounds"] = args.synflow_rounds
        if method == "iter_snip":
            options["rounds"] = args.iter_snip_rounds
        # the unit is re-measured next to every method: on a shared machine the load drifts
        before = timed(forward_backward, device, repeat=1, warmup=False)
        model.zero_grad(set_to_none=True)
        seconds = timed(
            lambda method=method, options=options: generate_masks(
                model, method, args.density, data=data, seed=0, **options
            ),
            device,
            repeat=1,
            warmup=False,  # the forward+backward unit above has warmed the model up
        )
        after = timed(forward_backward, device, repeat=1, warmup=False)
        model.zero_grad(set_to_none=True)
        local_unit = (before + after) / 2
        note = f"rounds={options['rounds']}, " if options else ""
        print(
            f"  {method:<10} {seconds:>9.3f} {seconds / local_unit:>10.1f}  {note}unit here {local_unit:.3f} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CPU, and CUDA too"
    )
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument(
        "--examples", type=int, default=100, help="batch size = scoring budget (10 x 10 classes)"
    )
    parser.add_argument("--synflow-rounds", type=int, default=100, help="SynFlow rounds (paper: 100)")
    parser.add_argument("--iter-snip-rounds", type=int, default=20, help="iter_snip rounds (default 20)")
    parser.add_argument("--methods", nargs="+", default=list(GENERATOR_NAMES), choices=GENERATOR_NAMES)
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the forward+backward unit")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device in devices:
        bench(device, args)


if __name__ == "__main__":
    main()
