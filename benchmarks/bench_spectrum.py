"""Benchmark: per-layer full-spectrum metrics against the authors' own route (SPEC §10).

The engine (``layer_spectrum`` per layer, numpy inputs, mask and weights) is
timed against the lean form of the authors' route, in the same process on the
same masks: for every graph (the full layer graph and every degree class, of
the mask and of the weights), build the ``(m+n)×(m+n)`` bipartite adjacency as
a dense float64 ndarray, convert it with ``scipy.sparse.coo_array`` and ask
ARPACK (``scipy.sparse.linalg.eigsh(k=3, which="LM")``) for the three
largest-magnitude eigenvalues: ``±sigma1`` and ``sigma2``. This is what R23's
``lib/graphs/scores.py`` and FS23's ``Ramanujan.ramanujan_bounds`` do, without
their torch and torch_geometric overhead, in float64.

Printed per density (ResNet-18, CIFAR variant, ERK masks at 0.01, 0.05, 0.2):
the engine's time, the route's time (medians of ``--repeats``), their ratio,
and the largest absolute deviation between the two of sigma1/sigma2/omega1/
omega2 over the full graphs and of sigma2/omega1/omega2 over every degree
class; then t(0.2)/t(0.01). A third column (``--dense``) times ARPACK on the
dense ndarray itself (dense matvecs): slower than what the authors ran, so not
the baseline, only a reference. ``--llm`` adds one 2048×2048 layer at 50%
density with a row-wise (Wanda-style) mask, each output row keeping the larger
half of its weights by magnitude, and a 4096×4096 one timed for the engine only.
Besides the per-layer loop (the headline: what a user's own loop of
``layer_spectrum`` calls gets), ``batched`` times one ``layer_spectra`` call for
all layers, as network-level callers make.

    python benchmarks/bench_spectrum.py              # ResNet-18 at 0.01 0.05 0.2
    python benchmarks/bench_spectrum.py --llm        # plus the 2048x2048 layer
    python benchmarks/bench_spectrum.py --dense      # plus dense-matvec ARPACK (not the baseline)
    python benchmarks/bench_spectrum.py --device cuda  # the engine on a GPU (torch backend)

The engine runs its Lanczos steps compiled (numba) once numba is loaded in the process: at once
where ``load_compiled_kernels()`` is called (PAGS workers, this benchmark), when a dense layer's
byte products load it, or once the process has spent ``gram_lanczos.LOAD_AFTER_SECONDS`` in
uncompiled runs (a user's long loop). ``per-layer`` is that steady state; ``uncompiled`` times
the same loop with the compiled steps switched off, as a process runs it before then (a one-off
analysis of a sparse network). The headline ratio and t(0.2)/t(0.01) are the steady state's.

No timing is asserted anywhere; the figures are for the README.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch

from fullspectrum.models import build_model
from fullspectrum.pruning import erk_densities
from fullspectrum.spectrum import (
    dense,
    dense_products,
    gram,
    gram_lanczos,
    layer_spectra,
    layer_spectrum,
    regular_subgraphs,
    stack,
)
from fullspectrum.spectrum.gram_lanczos import load_compiled_kernels
from fullspectrum.spectrum.metrics import canonical_gap, ramanujan_gap, size_factor

NAN = float("nan")
ROUTES = ("coo", "dense")
"""``coo``: the authors' route (SPEC §10, the baseline); ``dense``: ARPACK on the dense ndarray."""


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


def llm_layer(size: int = 2048, seed: int = 0) -> tuple[str, np.ndarray, np.ndarray]:
    """One ``size×size`` layer at 50% density, Wanda-style: each output row keeps its larger half.
    Its weights are float32, as a checkpoint's are (at most)."""
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((size, size)) / math.sqrt(size)).astype(np.float32)
    order = np.argsort(np.abs(weight), axis=1)
    mask = np.zeros_like(weight, dtype=bool)
    np.put_along_axis(mask, order[:, size // 2 :], True, axis=1)
    return f"linear {size}x{size}", mask, weight


def adjacency_top_two(biadjacency: np.ndarray, route: str = "coo") -> tuple[float, float]:
    """sigma1, sigma2 of one graph: ARPACK's top-3 |eigenvalues| of its (m+n)^2 adjacency."""
    rows, cols = biadjacency.shape
    full = np.zeros((rows + cols, rows + cols))
    full[:rows, rows:] = biadjacency
    full[rows:, :rows] = biadjacency.T
    if rows + cols <= 8:  # too small for ARPACK's k=3
        magnitudes = np.sort(np.abs(la.eigvalsh(full)))[::-1]
    else:
        operator = sp.coo_array(full) if route == "coo" else full
        values = sla.eigsh(operator, k=3, which="LM", return_eigenvectors=False)
        magnitudes = np.sort(np.abs(values))[::-1]
    sigma2 = magnitudes[2] if min(rows, cols) >= 2 else 0.0
    return float(magnitudes[0]), float(sigma2)


def baseline_layer(mask: np.ndarray, weight: np.ndarray, route: str = "coo") -> dict:
    """One layer's metrics (FS23 convention) by ``route``, every graph's top two values under ``classes``.

    ``classes`` lists ``(degree, sigma2, omega1, omega2)`` per degree class, by increasing degree.
    """
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, not {route!r}")
    flat = mask.reshape(mask.shape[0], -1).astype(float)
    live_rows, live_cols = flat.any(axis=1), flat.any(axis=0)
    b = flat[np.ix_(live_rows, live_cols)]
    a = np.abs(weight.reshape(mask.shape[0], -1))[np.ix_(live_rows, live_cols)] * b
    edges = b.sum()
    s1, s2 = adjacency_top_two(b, route)
    w1, w2 = adjacency_top_two(a, route)
    degrees = b.sum(axis=0)
    terms, lambdas, classes = [], [], []
    for degree in np.unique(degrees):
        cols = degrees == degree
        rows = b[:, cols].any(axis=1)
        sub = b[np.ix_(rows, cols)]
        _, cs2 = adjacency_top_two(sub, route)
        cw1, cw2 = adjacency_top_two(a[np.ix_(rows, cols)], route)
        classes.append((int(degree), cs2, cw1, cw2))
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
        "classes": classes,
    }


def engine_values(mask: np.ndarray, weight: np.ndarray) -> tuple[list[float], list[tuple]]:
    """The engine's sigma1/sigma2/omega1/omega2 and every class's (degree, sigma2, omega1, omega2)."""
    full = layer_spectrum(mask, weight)
    classes = [(c.d_c, c.sigma2, c.lambda_c + c.omega2, c.omega2) for c in regular_subgraphs(mask, weight)]
    return [full.sigma1, full.sigma2, full.omega1, full.omega2], classes


def deviation(mask: np.ndarray, weight: np.ndarray, reference: dict) -> float:
    """Largest |engine - reference| over the full graphs' and every class's top values."""
    full, classes = engine_values(mask, weight)
    theirs = [reference[name] for name in ("sigma1", "sigma2", "omega1", "omega2")]
    if [c[0] for c in classes] != [c[0] for c in reference["classes"]]:
        return math.inf  # not the same degree classes
    pairs = list(zip(full, theirs)) + [
        (x, y) for mine, ref in zip(classes, reference["classes"]) for x, y in zip(mine[1:], ref[1:])
    ]
    return max(abs(x - y) for x, y in pairs)


def median_time(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls of ``run``, and the last call's result."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(layers, *, repeats: int, route_repeats: int, dense: bool, device: str | None = None) -> dict:
    """Engine and route seconds on ``layers``, their ratio, the max deviation, and the edges.

    ``engine``: a user's loop of per-layer ``layer_spectrum`` calls (numpy inputs);
    ``batched``: one ``layer_spectra`` call for all layers (what ``analyze``,
    training snapshots and PAGS scoring do).
    """
    engine, ours = median_time(
        lambda: [layer_spectrum(m, w, name=n, device=device) for n, m, w in layers], repeats
    )
    with uncompiled_steps():
        uncompiled, _ = median_time(
            lambda: [layer_spectrum(m, w, name=n, device=device) for n, m, w in layers], repeats
        )
    batched, _ = median_time(lambda: layer_spectra([(m, w, n) for n, m, w in layers], device=device), repeats)
    if route_repeats == 0:  # engine only (the route would take minutes)
        return {
            "edges": sum(s.edges for s in ours),
            "engine": engine,
            "batched": batched,
            "route": NAN,
            "ratio": NAN,
            "batched_ratio": NAN,
            "deviation": NAN,
            "dense": NAN,
            "uncompiled": uncompiled,
            "uncompiled_ratio": NAN,
        }
    route, reference = median_time(lambda: [baseline_layer(m, w) for _, m, w in layers], route_repeats)
    dense_time = NAN
    if dense:
        dense_time, _ = median_time(lambda: [baseline_layer(m, w, "dense") for _, m, w in layers], 1)
    worst = max(deviation(m, w, r) for (_, m, w), r in zip(layers, reference))
    return {
        "edges": sum(s.edges for s in ours),
        "engine": engine,
        "batched": batched,
        "route": route,
        "ratio": route / engine,
        "batched_ratio": route / batched,
        "deviation": worst,
        "dense": dense_time,
        "uncompiled": uncompiled,
        "uncompiled_ratio": route / uncompiled,
    }


HEADER = (
    f"{'case':>14} {'edges':>9} {'per-layer [s]':>13} {'batched [s]':>11} {'route [s]':>10} "
    f"{'ratio':>7} {'batched':>8} {'max |dev|':>10} {'uncompiled [s]':>14} {'ratio':>7} "
    f"{'dense-matvec [s] (not the baseline)':>36}"
)


def report(case: str, row: dict) -> None:
    print(
        f"{case:>14} {row['edges']:>9} {row['engine']:>13.3f} {row['batched']:>11.3f} {row['route']:>10.3f} "
        f"{row['ratio']:>6.1f}x {row['batched_ratio']:>7.1f}x {row['deviation']:>10.1e} "
        f"{row['uncompiled']:>14.3f} {row['uncompiled_ratio']:>6.1f}x {row['dense']:>36.3f}",
        flush=True,
    )


@contextlib.contextmanager
def uncompiled_steps():
    """The engine as a process runs it before numba is loaded: numpy and scipy Lanczos steps,
    column sorts and Gram eigensolvers (the byte products of a dense layer, which load numba
    themselves, stay)."""
    switched = [
        (gram_lanczos, "steps_kernel"),
        (gram_lanczos, "recurrence_kernel"),
        (dense_products, "steps_kernel"),
        (gram, "gram_tops_kernel"),
        (stack, "gram_tops_kernel"),
        (dense, "column_scatter_kernel"),
    ]
    saved = [getattr(module, name) for module, name in switched]
    for module, name in switched:
        setattr(module, name, lambda: None)
    try:
        yield
    finally:
        for (module, name), kernel in zip(switched, saved):
            setattr(module, name, kernel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    parser.add_argument("--repeats", type=int, default=5, help="engine runs per case (median)")
    parser.add_argument("--route-repeats", type=int, default=3, help="route runs per case (median)")
    parser.add_argument(
        "--dense", action="store_true", help="also time dense-matvec ARPACK (not the baseline)"
    )
    parser.add_argument(
        "--llm",
        action="store_true",
        help="also a 2048x2048 layer (and a 4096x4096 one, engine only), 50%% row-wise",
    )
    parser.add_argument("--device", default=None, help="where the engine runs: cpu (default), cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not load_compiled_kernels():
        print("numba is not installed: every row runs uncompiled")
    print("baseline (route): dense float64 (m+n)^2 adjacency -> scipy.sparse.coo_array -> eigsh(k=3, 'LM'),")
    print("full graph and every degree class, mask and weights (SPEC §10); medians of repeats;")
    print(
        f"engine on {args.device or 'cpu'}; ratio = route / per-layer loop, batched = route / one call for all layers"
    )
    print(HEADER)
    rows = {}
    for density in args.densities:
        layers = resnet18_layers(density, args.seed)
        rows[density] = measure(
            layers,
            repeats=args.repeats,
            route_repeats=args.route_repeats,
            dense=args.dense,
            device=args.device,
        )
        report(f"resnet18 {density}", rows[density])
    low, high = min(args.densities), max(args.densities)
    if low != high:
        growth = rows[high]["engine"] / rows[low]["engine"]
        edges = rows[high]["edges"] / rows[low]["edges"]
        print(f"engine t({high})/t({low}) = {growth:.2f} for {edges:.1f}x the edges")
    if args.llm:
        layer = llm_layer(2048, args.seed)
        row = measure([layer], repeats=args.repeats, route_repeats=1, dense=args.dense, device=args.device)
        report("2048x2048 50%", row)
        del layer
        big = llm_layer(4096, args.seed)
        row = measure(
            [big], repeats=max(1, args.repeats // 2), route_repeats=0, dense=False, device=args.device
        )
        report("4096x4096 50%", row)


if __name__ == "__main__":
    main()
