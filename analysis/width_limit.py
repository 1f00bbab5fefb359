"""The width limit of G25 made visible: do a method's graphon estimates settle as the MLP widens?

G25 (Pham et al., NeurIPS 2025, *The Graphon Limit Hypothesis*) postulate that the masks a
pruning method draws converge, as width grows, to a graphon: the method's fingerprint. The
study (SPEC §7b): for every generator of the registry and an MLP whose hidden layers all
have width ``n`` (64 … 2048) at one global density, draw masks with several seeds (fresh
initial weights per seed, the generator on a stream of its own,
:func:`fullspectrum.fingerprints.mask_seed`; the data-driven generators score on the first
examples of a built-in dataset), estimate every layer's graphon at the same ``K`` (``K = 64`` is this
project's default, not G25's), and report

* the distance (mean absolute difference of block densities) between the fingerprints
  (seed means) of successive widths, and between each width and the widest;
* the same distances seed by seed, with a t confidence interval over seeds;
* per generator and layer whether the successive-width curve falls, said plainly when it
  does not (with the layer's density at the narrowest and widest width: a global
  generator's, ER's and ERK's layer densities move with width at a fixed global density,
  so their estimates cannot settle where the density keeps moving).

``python -m analysis.width_limit --out DIR`` writes ``width_curves.csv``,
``width_verdicts.csv``, ``width_estimates.npz`` and ``width_study.json`` (config, seeds,
versions, timings, verdicts). The file formats are :data:`CURVE_COLUMNS`,
:data:`VERDICT_COLUMNS` and :func:`write_width_study`'s docstring.

>>> t_interval([1.0, 2.0, 3.0])[0]
2.0
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from tqdm import tqdm

from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.fingerprints import (
    DEFAULT_K,
    LayerGraphons,
    dataset_batch,
    draw_masks,
    layer_graphons,
    mean_estimates,
    width_convergence,
)
from fullspectrum.models import build_model
from fullspectrum.pruning import GENERATOR_NAMES, GENERATORS, get_generator
from fullspectrum.runs.run_file import collect_versions

CURVE_COLUMNS = (
    "generator", "layer", "kind", "width", "other", "distance", "seed_mean", "seed_low", "seed_high",
    "n_seeds", "density", "other_density",
)  # fmt: skip
"""``width_curves.csv``: one row per generator, layer, kind and width.

``kind`` is ``successive`` (``other`` the next width) or ``to_widest`` (``other`` the widest);
``distance`` is between the two widths' fingerprints (seed means); ``seed_mean``,
``seed_low``, ``seed_high`` the per-seed distances' mean and 95% t interval; ``density``,
``other_density`` the layer's mask density (seed mean) at ``width`` and ``other``."""
VERDICT_COLUMNS = (
    "generator", "layer", "first", "last", "ratio", "falls", "flat", "monotone", "drop_mean", "drop_low",
    "drop_high", "density_narrowest", "density_widest", "verdict",
)  # fmt: skip
"""``width_verdicts.csv``: per generator and layer, the fingerprints' successive distance at the
narrowest (``first``) and widest (``last``) pair and ``ratio = last / first``; ``falls`` (last <
first), ``flat`` (``ratio >= FLAT_RATIO``), ``monotone`` (every step falls); the per-seed drop
``first - last`` with its 95% t interval; the layer density at the ends; ``verdict`` one plain
sentence."""
CONFIDENCE = 0.95
FLAT_RATIO = 0.8
"""A curve still at 80% or more of its first distance after five doublings is called flat: it does
not fall appreciably (sampling noise alone, as Random shows, halves it at each doubling)."""
DENSITY_MOVES = 0.25
"""A layer whose density at the widest width differs from the narrowest by more than 25% is said to move."""
FREE_DENSITY_GENERATORS = tuple(name for name, g in GENERATORS.items() if g.scope in ("global", "layer"))
"""The default generators: every one that draws at any density (an N:M pattern implies its own)."""


@dataclass(frozen=True)
class WidthLimitConfig:
    """What the study draws and how it estimates."""

    generators: tuple[str, ...] = FREE_DENSITY_GENERATORS
    """Mask generators (every one of the registry by default)."""
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    """Hidden widths of the MLP family (each hidden layer has this width); at least two."""
    density: float = 0.05
    """Global density of every mask (ITOP21's setting, as elsewhere in the lab)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds: each draws fresh initial weights and the generator's own randomness."""
    K: int = DEFAULT_K
    """Blocks per side (64: this project's default, not G25's); at most the narrowest width."""
    store_K: int | None = None
    """Resolution of the fingerprints the result keeps and writes (None: ``K``); the distances use ``K``."""
    data: str = "digits"
    """Built-in dataset: the input and class counts and the data-driven generators' batch."""
    depth: int = 2
    """Hidden layers: 2 gives one hidden-to-hidden layer, whose both sides grow."""
    examples: int = 100
    """Examples the data-driven generators score on (10 x classes, their default)."""
    options: dict = field(default_factory=dict)
    """Generator options by name, e.g. ``{"synflow": {"rounds": 20}}`` (default: published settings)."""

    def __post_init__(self) -> None:
        for name in self.generators:
            get_generator(name)  # unknown names fail with the list of valid ones
        if len(self.widths) < 2 or sorted(set(self.widths)) != list(self.widths):
            raise FullSpectrumError(f"widths must be at least two distinct ascending ints; got {self.widths}")
        if self.K < 1 or self.K > self.widths[0]:
            raise FullSpectrumError(
                f"K = {self.K} must be in [1, narrowest width {self.widths[0]}]: every width needs K blocks"
            )
        if self.store_K is not None and not 1 <= self.store_K <= self.widths[0]:
            raise FullSpectrumError(
                f"store_K = {self.store_K} must be in [1, narrowest width {self.widths[0]}]"
            )
        if not self.seeds:
            raise FullSpectrumError("the study needs at least one seed")
        if self.depth < 1:
            raise FullSpectrumError(f"depth (hidden layers) must be at least 1; got {self.depth}")

    def as_dict(self) -> dict:
        """Plain JSON-able values."""
        values = asdict(self)
        return {key: list(v) if isinstance(v, tuple) else v for key, v in values.items()}


@dataclass(frozen=True)
class WidthLimitResult:
    """The study's tables, fingerprints and timings."""

    config: WidthLimitConfig
    """What was run."""
    curves: pd.DataFrame
    """Distance curves, :data:`CURVE_COLUMNS`."""
    verdicts: pd.DataFrame
    """Whether each curve falls, :data:`VERDICT_COLUMNS`."""
    fingerprints: dict[tuple[str, int, str], np.ndarray]
    """``(generator, width, layer)`` -> the seed-mean block densities (``(K_out, K_in)`` at ``store_K``)."""
    seconds: dict[str, float]
    """Wall-clock seconds per generator (draws and estimates over every width and seed)."""

    def summary(self) -> list[str]:
        """One plain sentence per generator and layer (the verdicts)."""
        return [f"{r.generator} {r.layer}: {r.verdict}" for r in self.verdicts.itertuples()]

    def as_dict(self) -> dict:
        """Config, verdict rows and timings as plain JSON-able values (the curves: see ``curves``)."""
        return {
            "config": self.config.as_dict(),
            "verdicts": self.verdicts.to_dict(orient="records"),
            "seconds": self.seconds,
        }


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval of ``values`` (NaN bounds for fewer than two)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def mlp_family(data: str, depth: int = 2) -> Callable[[int, int], nn.Module]:
    """``(width, seed) -> MLP`` with ``depth`` hidden layers of ``width`` for ``data``'s inputs and classes."""
    splits = load_dataset(data, flatten=True)

    def build(width: int, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
            torch.manual_seed(seed)
            return build_model("mlp", splits.num_classes, tuple(splits.input_shape), widths=(width,) * depth)

    return build


def _curve_rows(generator: str, per_width: dict[int, list[LayerGraphons]], config: WidthLimitConfig):
    """The curve rows of one generator, and each seed's own width convergence."""
    widths = config.widths
    fp = width_convergence({n: mean_estimates(per_width[n])[0] for n in widths})
    per_seed = [
        width_convergence({n: {k: per_width[n][i].values(k) for k in fp.layers} for n in widths})
        for i in range(len(config.seeds))
    ]
    density = {
        n: {k: float(np.mean([e.densities[k] for e in per_width[n]])) for k in fp.layers} for n in widths
    }
    rows = []
    for row in fp.rows():
        i = widths.index(row["width"])
        mean, low, high = t_interval([getattr(c, row["kind"])[row["layer"]][i] for c in per_seed])
        rows.append(
            {
                "generator": generator,
                **row,
                "seed_mean": mean,
                "seed_low": low,
                "seed_high": high,
                "n_seeds": len(per_seed),
                "density": density[row["width"]][row["layer"]],
                "other_density": density[row["other"]][row["layer"]],
            }
        )
    return rows, per_seed


def _verdicts(curves: pd.DataFrame, config: WidthLimitConfig, drops: dict) -> pd.DataFrame:
    rows = []
    successive = curves[curves.kind == "successive"]
    for (generator, layer), group in successive.groupby(["generator", "layer"], sort=False):
        group = group.sort_values("width")
        d = group.distance.to_numpy()
        drop_mean, drop_low, drop_high = t_interval(drops[generator, layer])
        falls, monotone = bool(d[-1] < d[0]), bool(np.all(np.diff(d) < 0))
        ratio = float(d[-1] / d[0]) if d[0] > 0 else math.nan
        flat = bool(falls and ratio >= FLAT_RATIO)
        lo, hi = float(group.density.iloc[0]), float(group.other_density.iloc[-1])
        w0, wn = config.widths[0], config.widths[-1]
        first_pair, last_pair = f"{w0}->{config.widths[1]}", f"{config.widths[-2]}->{wn}"
        ends = f"{d[0]:.4f} at {first_pair}, {d[-1]:.4f} at {last_pair} (last/first {ratio:.2f})"
        moves = abs(hi - lo) > DENSITY_MOVES * lo
        density = (
            f"; the layer density moves with width ({lo:.3f} at {w0}, {hi:.3f} at {wn})" if moves else ""
        )
        sure = "per-seed drop's 95% CI " + ("excludes 0" if drop_low > 0 else "includes 0")
        collapsed = sorted(int(n) for n, dens in zip(group.width, group.density) if dens == 0)
        collapsed += [wn] if hi == 0 else []
        if collapsed:
            verdict = (
                f"collapsed (no kept weight) at width {', '.join(map(str, collapsed))}: an all-zero estimate,"
                f" so its distances say nothing about convergence (successive {ends})"
            )
        elif not falls:
            verdict = f"does NOT fall: successive distance {ends}{density}"
        elif flat:
            verdict = f"is flat, does NOT fall appreciably: {ends}; {sure}{density}"
        else:
            shape = "falls at every step" if monotone else "falls overall, not at every step"
            verdict = f"{shape}: {ends}; {sure}{density}"
        rows.append(
            dict(generator=generator, layer=layer, first=float(d[0]), last=float(d[-1]), ratio=ratio,
                 falls=falls, flat=flat, monotone=monotone, drop_mean=drop_mean, drop_low=drop_low, drop_high=drop_high,
                 density_narrowest=lo, density_widest=hi, verdict=verdict)
        )  # fmt: skip
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def run_width_limit(
    config: WidthLimitConfig | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    threads: int = 1,
) -> WidthLimitResult:
    """Run the study: every generator x width x seed drawn, estimated, and the distances compared.

    ``progress(done, total, label)`` is called after every draw; ``threads`` caps torch's
    threads while it runs (restored after).
    """
    config = config or WidthLimitConfig()
    build = mlp_family(config.data, config.depth)
    batch = dataset_batch(config.data, config.examples)
    total, done = len(config.generators) * len(config.widths) * len(config.seeds), 0
    rows, fingerprints, seconds, drops = [], {}, {}, {}
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for generator in config.generators:
            start = time.perf_counter()
            per_width: dict[int, list[LayerGraphons]] = {}
            for width in config.widths:
                per_width[width], stored = [], []
                for seed in config.seeds:
                    net = build(width, seed)  # fresh initial weights per seed
                    options = config.options.get(generator, {})
                    masks = draw_masks(generator, net, batch, config.density, seed, **options)
                    per_width[width].append(layer_graphons(masks, K=config.K))
                    if config.store_K is not None:
                        stored.append(layer_graphons(masks, K=config.store_K))
                    done += 1
                    if progress is not None:
                        progress(done, total, f"{generator} width {width} seed {seed}")
                for layer, values in mean_estimates(stored or per_width[width])[0].items():
                    fingerprints[generator, width, layer] = values
            generator_rows, per_seed = _curve_rows(generator, per_width, config)
            rows += generator_rows
            for layer in per_seed[0].layers:  # each seed's drop from the narrowest to the widest pair
                drops[generator, layer] = [c.successive[layer][0] - c.successive[layer][-1] for c in per_seed]
            seconds[generator] = time.perf_counter() - start
    finally:
        torch.set_num_threads(saved_threads)
    curves = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return WidthLimitResult(
        config=config,
        curves=curves,
        verdicts=_verdicts(curves, config, drops),
        fingerprints=fingerprints,
        seconds=seconds,
    )


def write_width_study(
    result: WidthLimitResult, out: str | Path, *, extra: dict | None = None, estimate_dtype: str = "float32"
) -> list[Path]:
    """Write the study into ``out``: the curves and verdicts (CSV), fingerprints and a JSON record.

    * ``width_curves.csv``: :data:`CURVE_COLUMNS`;
    * ``width_verdicts.csv``: :data:`VERDICT_COLUMNS`;
    * ``width_estimates.npz``: one ``estimate_dtype`` array per ``generator|width|layer`` key, the
      seed-mean block densities ``(K_out, K_in)`` at ``store_K`` (rows: output units by descending
      degree, columns: input units by descending degree; float16 keeps 3 significant digits);
    * ``width_study.json``: ``config``, ``versions``, ``seconds`` (per generator and ``total``),
      ``verdicts`` (one sentence per generator and layer) and ``extra``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        out / "width_curves.csv",
        out / "width_verdicts.csv",
        out / "width_estimates.npz",
        out / "width_study.json",
    ]
    result.curves.to_csv(paths[0], index=False, float_format="%.6g")
    result.verdicts.to_csv(paths[1], index=False, float_format="%.6g")
    arrays = {
        f"{g}|{n}|{layer}": v.astype(estimate_dtype) for (g, n, layer), v in result.fingerprints.items()
    }
    np.savez_compressed(paths[2], **arrays)
    record = {
        "study": "width_limit",
        "config": result.config.as_dict(),
        "versions": collect_versions(),
        "seconds": {**result.seconds, "total": float(sum(result.seconds.values()))},
        "verdicts": result.summary(),
        **({"extra": extra} if extra else {}),
    }
    paths[3].write_text(json.dumps(record, indent=2) + "\n")
    return paths


def read_width_estimates(path: str | Path) -> dict[tuple[str, int, str], np.ndarray]:
    """``width_estimates.npz`` back as ``{(generator, width, layer): block densities}``."""
    with np.load(path) as data:
        out = {}
        for key in data.files:
            generator, width, layer = key.split("|")
            out[generator, int(width), layer] = data[key]
        return out


def read_width_study(folder: str | Path) -> dict:
    """A folder :func:`write_width_study` wrote: ``curves``, ``verdicts`` (DataFrames), ``estimates`` and ``record``."""
    folder = Path(folder)
    return {
        "curves": pd.read_csv(folder / "width_curves.csv"),
        "verdicts": pd.read_csv(folder / "width_verdicts.csv"),
        "estimates": read_width_estimates(folder / "width_estimates.npz"),
        "record": json.loads((folder / "width_study.json").read_text()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.width_limit --out DIR [--generators ...] [--widths ...] [--seeds N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.width_limit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="folder for the CSV, NPZ and JSON results")
    parser.add_argument(
        "--generators", nargs="+", default=list(FREE_DENSITY_GENERATORS), choices=GENERATOR_NAMES
    )
    parser.add_argument("--widths", nargs="+", type=int, default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument(
        "--K", type=int, default=DEFAULT_K, help="blocks per side (64: this project's default)"
    )
    parser.add_argument("--store-K", type=int, default=None, help="resolution of the fingerprints written")
    parser.add_argument("--data", default="digits", choices=["digits", "mnist1d"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    args = parser.parse_args(argv)
    config = WidthLimitConfig(
        store_K=args.store_K,
        generators=tuple(args.generators),
        widths=tuple(args.widths),
        density=args.density,
        seeds=tuple(range(args.seeds)),
        K=args.K,
        data=args.data,
    )
    with tqdm(total=len(config.generators) * len(config.widths) * len(config.seeds), unit="mask") as bar:

        def step(done: int, total: int, label: str) -> None:
            bar.set_description(label)
            bar.update(done - bar.n)

        result = run_width_limit(config, progress=step, threads=args.threads)
    for path in write_width_study(result, args.out):
        print(path)
    for line in result.summary():
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
