"""Benchmark: PAGS candidates generated and scored per second, and against the papers' way of scoring.

Setting: ResNet-18 (CIFAR variant) on synthetic 3×32×32 data with 10
classes, SNIP at density 0.01, each candidate scored on 2 minibatches of 128
(FS23's setting). Measured in one run, after one shared ``prepare`` (base mask
and budgets, not timed):

* end-to-end ``sample()`` with 1 and with 2 worker processes (each single
  threaded; the 2-worker time includes starting the pool), as candidates/s;
* per candidate, in one process and one thread: generating it (SNIP on its
  minibatches + per-layer top-k), scoring its layers with ``layer_spectrum``,
  and scoring them the authors' way (SPEC §10: per layer and per degree class the
  ``(m+n)²`` adjacency, converted to ``scipy.sparse`` COO, and ARPACK, in float64,
  from ``bench_spectrum.baseline_layer``), with the largest difference between the
  two scores' components as a check;
* candidates/s with our scoring and with the papers' scoring.

    python benchmarks/bench_sampling.py                     # population 4: a few minutes on 2 cores
    python benchmarks/bench_sampling.py --population 8 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spectrum import baseline_layer  # noqa: E402

from fullspectrum.sampling import SamplingConfig, prepare, sample  # noqa: E402
from fullspectrum.sampling.candidates import CandidateEvaluator, score_layer  # noqa: E402
from fullspectrum.sampling.pags import _batches_of  # noqa: E402
from fullspectrum.sampling.workers import single_threaded  # noqa: E402
from fullspectrum.spectrum import VECTOR_AXES  # noqa: E402


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def end_to_end(setup, workers: int) -> tuple[float, float, object]:
    """Seconds of ``sample()`` with ``workers`` processes, seconds until the first candidate, the result."""
    setup = dataclasses.replace(setup, config=dataclasses.replace(setup.config, workers=workers))
    stamps: list[float] = []
    synchronize(setup.context.device)
    start = time.perf_counter()
    result = sample(setup, progress=lambda done, total: stamps.append(time.perf_counter()))
    synchronize(setup.context.device)
    return time.perf_counter() - start, stamps[0] - start, result


def per_candidate(setup, count: int) -> dict[str, float]:
    """Mean seconds per candidate of generation, our scoring and the papers' scoring; max deviation."""
    generate, ours, papers, deviation = [], [], [], 0.0
    batches_of = _batches_of(setup)
    with single_threaded():
        evaluator = CandidateEvaluator(setup.context)
        for index in range(count):
            batches = batches_of(index)
            synchronize(setup.context.device)
            start = time.perf_counter()
            masks = evaluator.masks(setup.config.seed, index, batches)
            synchronize(setup.context.device)
            generate.append(time.perf_counter() - start)
            start = time.perf_counter()
            mine = {name: score_layer(name, mask, evaluator.weights[name])[0] for name, mask in masks.items()}
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            theirs = {
                name: baseline_layer(mask.numpy(), evaluator.weights[name]) for name, mask in masks.items()
            }
            papers.append(time.perf_counter() - start)
            for name in masks:
                for field in VECTOR_AXES:
                    a, b = mine[name][field], theirs[name][field]
                    if not (math.isnan(a) and math.isnan(b)):
                        deviation = max(deviation, abs(a - b) / max(1.0, mine[name]["sigma1"]))
    return {
        "generate": float(np.mean(generate)),
        "ours": float(np.mean(ours)),
        "papers": float(np.mean(papers)),
        "deviation": deviation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4, help="candidates per end-to-end run (default 4)")
    parser.add_argument(
        "--papers-candidates", type=int, default=2, help="candidates timed in detail (default 2)"
    )
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--generator", default="snip")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    bench_pags(**vars(parser.parse_args()))


def bench_pags(
    *,
    population: int = 4,
    papers_candidates: int = 2,
    density: float = 0.01,
    generator: str = "snip",
    batch_size: int = 128,
    device: str = "auto",
    seed: int = 0,
) -> None:
    """Print the whole benchmark (``bench_training.py`` runs it too, so one run gives both)."""
    config = SamplingConfig(
        model="resnet18",
        data="synthetic",
        data_options={"shape": [3, 32, 32]},
        generator=generator,
        density=density,
        population=population,
        batch_size=batch_size,
        device=device,
        seed=seed,
    )
    start = time.perf_counter()
    setup = prepare(config)
    print(
        f"ResNet-18, {generator} at density {density}, synthetic 3x32x32, device "
        f"{setup.context.device}, {config.iters_per_candidate} minibatches of {batch_size} per "
        f"candidate; prepare (base mask + budgets) {time.perf_counter() - start:.1f} s"
    )
    rates = {}
    for workers in (1, 2):
        seconds, first, result = end_to_end(setup, workers)
        rates[workers] = population / seconds
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '}: {population} candidates in {seconds:6.1f} s "
            f"= {rates[workers]:.3f} candidates/s, first after {first:.1f} s "
            f"({result.layers_replaced} of {len(result.winners)} layers replaced)"
        )
    print(
        f"  2 workers / 1 worker: {rates[2] / rates[1]:.2f}x (pool start-up included; expect < 2x on a "
        "shared or 2-core machine, and ~2x only once the population outweighs the start-up)"
    )
    timing = per_candidate(setup, papers_candidates)
    ours = 1.0 / (timing["generate"] + timing["ours"])
    papers = 1.0 / (timing["generate"] + timing["papers"])
    print(
        f"  per candidate, 1 thread: generate {timing['generate']:.2f} s, score ours {timing['ours']:.2f} s, "
        f"score papers' way {timing['papers']:.2f} s ({timing['papers'] / timing['ours']:.1f}x slower); "
        f"max deviation {timing['deviation']:.1e}"
    )
    print(
        f"  candidates/s, 1 thread: ours {ours:.3f}, papers' scoring {papers:.3f} ({ours / papers:.2f}x); "
        f"scoring alone {timing['papers'] / timing['ours']:.1f}x"
    )


if __name__ == "__main__":
    main()
