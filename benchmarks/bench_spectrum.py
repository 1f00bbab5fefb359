"""Benchmark: per-layer full-spectrum metrics of a sparse ResNet-18, against the papers' way.

The naive baseline computes each graph's top eigenvalues the way FS23/R23's code
did, but in float64: build the dense ``(m+n)×(m+n)`` bipartite adjacency and ask
ARPACK (``scipy.sparse.linalg.eigsh``) for the three largest-magnitude
eigenvalues, ``±sigma1`` and ``sigma2``, for the full layer graph and for every
degree class, for the mask and for the weights. Both are timed in the same run
and the ratio is printed, with the largest deviation between the two.

    python benchmarks/bench_spectrum.py                 # densities 0.01 0.05 0.2, baseline at 0.01
    python benchmarks/bench_spectrum.py --baseline-densities 0.01 0.05

Targets (2-core CPU): >= 10x faster than the baseline at density 0.01
(goal 20x), and t(0.2)/t(0.01) <= 1.5 * E(0.2)/E(0.01).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import scipy.linalg as la
import scipy.sparse.linalg as sla
import torch

from fullspectrum.models import build_model
from fullspectrum.pruning import erk_densities
from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectrum
from fullspectrum.spectrum.metrics import canonical_gap, ramanujan_gap, size_factor

NAN = float("nan")


def resnet18_layers(density: float, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every Conv/Linear weight of a CIFAR ResNet-18 with a uniform-within-layer ERK mask."""
    torch.manual_seed(seed)
    model = build_model("resnet18", 10, (3, 32, 32))
    params = {
        name: p.detach().double().numpy()
        for name, p in model.named_parameters()
        if name.endswith("weight") and p.dim() in (2, 4)
    }
    densities = erk_densities({name: w.shape for name, w in params.items()}, density)
    rng = np.random.default_rng(seed)
    layers = []
    for name, weight in params.items():
        size = weight.size
        kept = int(round(densities[name] * size))
        mask = np.zeros(size, dtype=bool)
        mask[rng.choice(size, kept, replace=False)] = True
        layers.append((name, mask.reshape(weight.shape), weight))
    return layers


def adjacency_top_two(biadjacency: np.ndarray) -> tuple[float, float]:
    """The papers' way: dense (m+n)^2 adjacency, ARPACK top-3 magnitudes -> sigma1, sigma2."""
    rows, cols = biadjacency.shape
    full = np.zeros((rows + cols, rows + cols))
    full[:rows, rows:] = biadjacency
    full[rows:, :rows] = biadjacency.T
    if rows + cols <= 8:
        magnitudes = np.sort(np.abs(la.eigvalsh(full)))[::-1]
    else:
        magnitudes = np.sort(np.abs(sla.eigsh(full, k=3, which="LM", return_eigenvectors=False)))[::-1]
    sigma2 = magnitudes[2] if min(rows, cols) >= 2 else 0.0
    return float(magnitudes[0]), float(sigma2)


def baseline_layer(mask: np.ndarray, weight: np.ndarray) -> dict:
    """delta_r, lambda_w, delta_r_imdb, lambda_imsg (FS23 convention) the papers' way."""
    flat = mask.reshape(mask.shape[0], -1).astype(float)
    live_rows, live_cols = flat.any(axis=1), flat.any(axis=0)
    b = flat[np.ix_(live_rows, live_cols)]
    a = np.abs(weight.reshape(mask.shape[0], -1))[np.ix_(live_rows, live_cols)] * b
    edges = b.sum()
    s1, s2 = adjacency_top_two(b)
    w1, w2 = adjacency_top_two(a)
    degrees = b.sum(axis=0)
    terms, lambdas = [], []
    for degree in np.unique(degrees):
        cols = degrees == degree
        rows = b[:, cols].any(axis=1)
        sub = b[np.ix_(rows, cols)]
        _, cs2 = adjacency_top_two(sub)
        cw1, cw2 = adjacency_top_two(a[np.ix_(rows, cols)])
        l_c, r_c = int(cols.sum()), int(rows.sum())
        if degree >= 3 and l_c >= 2 and sub.sum() / r_c > 1:
            f = size_factor(l_c, r_c)
            terms.append(f * ramanujan_gap(degree, sub.sum() / r_c, cs2))
            lambdas.append(f * (cw1 - cw2))
    return {
        "sigma1": s1,
        "sigma2": s2,
        "omega1": w1,
        "omega2": w2,
        "delta_r": ramanujan_gap(edges / b.shape[1], edges / b.shape[0], s2),
        "delta_s": canonical_gap(s1, s2),
        "lambda_w": w1 - w2,
        "delta_r_imdb": float(np.mean(terms)) if terms else NAN,
        "lambda_imsg": float(np.mean(lambdas)) if lambdas else NAN,
    }


def deviation(ours, reference: dict) -> float:
    worst = 0.0
    for name, value in reference.items():
        mine = getattr(ours, name)
        if math.isnan(value) and math.isnan(mine):
            continue
        worst = max(worst, abs(mine - value) / max(1.0, abs(ours.sigma1), abs(ours.omega1)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    parser.add_argument("--baseline-densities", type=float, nargs="*", default=[0.01])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    assert "delta_r" in SPECTRUM_FIELDS
    times, edges = {}, {}
    print(f"{'density':>8} {'edges':>9} {'ours [s]':>9} {'baseline [s]':>13} {'ratio':>7} {'max dev':>9}")
    for density in args.densities:
        layers = resnet18_layers(density, args.seed)
        start = time.perf_counter()
        ours = [layer_spectrum(mask, weight, name=name) for name, mask, weight in layers]
        times[density] = time.perf_counter() - start
        edges[density] = sum(s.edges for s in ours)
        base_time, ratio, dev = NAN, NAN, NAN
        if density in args.baseline_densities:
            start = time.perf_counter()
            reference = [baseline_layer(mask, weight) for _, mask, weight in layers]
            base_time = time.perf_counter() - start
            ratio = base_time / times[density]
            dev = max(deviation(s, r) for s, r in zip(ours, reference))
        print(
            f"{density:>8} {edges[density]:>9} {times[density]:>9.3f} {base_time:>13.3f} "
            f"{ratio:>6.1f}x {dev:>9.1e}"
        )
    low, high = min(args.densities), max(args.densities)
    if low != high:
        growth, allowed = times[high] / times[low], 1.5 * edges[high] / edges[low]
        print(f"t({high})/t({low}) = {growth:.2f}  (allowed <= 1.5*E ratio = {allowed:.1f})")


if __name__ == "__main__":
    main()
