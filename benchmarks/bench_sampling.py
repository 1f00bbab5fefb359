"""Benchmark: PAGS candidates scored against the authors' route, and candidates per second end to end.

Setting: ResNet-18 (CIFAR variant) on synthetic 3×32×32 data with 10
classes at density 0.01, with SNIP (each candidate scored on 2 minibatches of
128, FS23's setting) and with ERK (data-free: fresh uniform scores). Per
generator, measured in one run after one shared ``prepare`` (base mask and
budgets, not timed):

* per candidate, in one process and one thread (medians over
  ``--papers-candidates`` candidates): generating it (the generator's scores +
  per-layer top-k), scoring all its layers the way a population does
  (``score_layers``: the layers solved together, ``network_spectra``'s batches),
  the same with a per-layer loop of ``layer_spectrum`` calls, and scoring them the
  authors' way (SPEC §10: per layer and per degree class the ``(m+n)²``
  adjacency, converted to ``scipy.sparse`` COO, and ARPACK, in float64, from
  ``bench_spectrum.baseline_layer``), with the largest difference between the two
  scores' components as a check; the headline is the scoring ratio, authors' / ours;
* end to end (generation + scoring + selection), ``sample()`` with 1 and with 2
  worker processes (each single threaded; the 2-worker time includes starting the
  pool), as candidates/s.

A table is printed; nothing is asserted (the figures are for the README).

    python benchmarks/bench_sampling.py                     # population 4: a few minutes on 2 cores
    python benchmarks/bench_sampling.py --generator erk --population 8 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spectrum import baseline_layer  # noqa: E402

from fullspectrum.sampling import SamplingConfig, prepare, sample  # noqa: E402
from fullspectrum.sampling.candidates import CandidateEvaluator, score_layer, score_layers  # noqa: E402
from fullspectrum.sampling.pags import _batches_of  # noqa: E402
from fullspectrum.sampling.workers import single_threaded  # noqa: E402
from fullspectrum.spectrum import VECTOR_AXES  # noqa: E402

COLUMNS = (
    ("generator", "{:<9}"),
    ("generate s", "{:>10.3f}"),
    ("score s", "{:>8.3f}"),
    ("per-layer s", "{:>11.3f}"),
    ("authors' s", "{:>10.2f}"),
    ("ratio", "{:>6.1f}x"),
    ("max dev", "{:>8.1e}"),
    ("cand/s 1w", "{:>9.3f}"),
    ("cand/s 2w", "{:>9.3f}"),
    ("2w/1w", "{:>5.2f}x"),
)


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


def timed(run, *args):
    start = time.perf_counter()
    value = run(*args)
    return time.perf_counter() - start, value


def loop_scores(masks, weights, device) -> dict:
    """A per-layer loop: one ``layer_spectrum`` call per layer."""
    return {name: score_layer(name, mask, weights[name], device=device) for name, mask in masks.items()}


def authors_scores(masks, weights) -> dict:
    """SPEC §10's route, layer by layer."""
    return {name: baseline_layer(mask.numpy(), weights[name]) for name, mask in masks.items()}


def per_candidate(setup, count: int) -> dict[str, float]:
    """Median seconds per candidate of generation, our scoring (batched and per layer) and the
    authors' scoring; the largest deviation between our and the authors' components."""
    times: dict[str, list[float]] = {"generate": [], "ours": [], "loop": [], "authors": []}
    deviation = 0.0
    batches_of = _batches_of(setup)
    context = setup.context
    with single_threaded():
        evaluator = CandidateEvaluator(context)
        weights = evaluator.weights
        for index in range(count):
            batches = batches_of(index)
            synchronize(context.device)
            seconds, masks = timed(evaluator.masks, setup.config.seed, index, batches)
            synchronize(context.device)
            times["generate"].append(seconds)
            seconds, scored = timed(score_layers, masks, weights, context.reference, context.device)
            times["ours"].append(seconds)
            times["loop"].append(timed(loop_scores, masks, weights, context.device)[0])
            seconds, theirs = timed(authors_scores, masks, weights)
            times["authors"].append(seconds)
            for name, (mine, _) in scored.items():
                for field in VECTOR_AXES:
                    a, b = mine[field], theirs[name][field]
                    if not (math.isnan(a) and math.isnan(b)):
                        deviation = max(deviation, abs(a - b) / max(1.0, mine["sigma1"]))
    return {key: statistics.median(values) for key, values in times.items()} | {"deviation": deviation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4, help="candidates per end-to-end run (default 4)")
    parser.add_argument(
        "--papers-candidates", type=int, default=2, help="candidates timed in detail (default 2)"
    )
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument(
        "--generator", nargs="+", default=["snip", "erk"], help="generators, one row each (default snip erk)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bench_pags(
        population=args.population,
        papers_candidates=args.papers_candidates,
        density=args.density,
        generators=tuple(args.generator),
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
    )


def bench_generator(generator: str, *, population, papers_candidates, density, batch_size, device, seed):
    """One row of the table (and the setup's device and the layers replaced)."""
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
    seconds, setup = timed(prepare, config)
    timing = per_candidate(setup, papers_candidates)
    rates, notes = {}, []
    for workers in (1, 2):
        total, first, result = end_to_end(setup, workers)
        rates[workers] = population / total
        notes.append(f"{workers}w: {total:.1f} s, first after {first:.1f} s")
    row = {
        "generator": generator,
        "generate s": timing["generate"],
        "score s": timing["ours"],
        "per-layer s": timing["loop"],
        "authors' s": timing["authors"],
        "ratio": timing["authors"] / timing["ours"],
        "max dev": timing["deviation"],
        "cand/s 1w": rates[1],
        "cand/s 2w": rates[2],
        "2w/1w": rates[2] / rates[1],
    }
    layers = f"{result.layers_replaced} of {len(result.winners)} layers replaced"
    note = f"{generator}: prepare {seconds:.1f} s; {'; '.join(notes)}; {layers}"
    return row, setup.context.device, note


def bench_pags(
    *,
    population: int = 4,
    papers_candidates: int = 2,
    density: float = 0.01,
    generators: tuple[str, ...] = ("snip", "erk"),
    batch_size: int = 128,
    device: str = "auto",
    seed: int = 0,
) -> None:
    """Print the whole benchmark (``bench_training.py`` runs it too, so one run gives both)."""
    rows, notes, where = [], [], "cpu"
    for generator in generators:
        row, where, note = bench_generator(
            generator,
            population=population,
            papers_candidates=papers_candidates,
            density=density,
            batch_size=batch_size,
            device=device,
            seed=seed,
        )
        rows.append(row)
        notes.append(note)
    print(
        f"ResNet-18 (CIFAR), density {density}, synthetic 3x32x32, device {where}; per candidate, one thread, "
        f"medians of {papers_candidates}; end to end: {population} candidates "
        f"(data-driven generators: 2 minibatches of {batch_size} each)"
    )
    header = "  ".join(
        f"{name:>{len(fmt.format(0 if name != 'generator' else ''))}}" for name, fmt in COLUMNS
    )
    print(header)
    for row in rows:
        print("  ".join(fmt.format(row[name]) for name, fmt in COLUMNS))
    print(
        "  score: all layers of a candidate solved together (as a population scores them); per-layer: one "
        "layer_spectrum call per layer; authors': SPEC §10's route; ratio = authors' / score"
    )
    print("  cand/s: generation + scoring + selection end to end; 2 workers include starting the pool")
    for note in notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()
