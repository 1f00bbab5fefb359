"""Does NTK energy concentration at initialisation track faster early descent? (G25, SPEC §7b)

G25 (Pham et al., NeurIPS 2025, *The Graphon Limit Hypothesis*) report that pruning
methods whose NTK concentrates its energy in few eigenvalues (SynFlow, SNIP) lose
training loss faster early on than Random. The study: for every generator at one density
and several seeds (each seed: fresh initial weights, its masks drawn from a stream of
their own (:func:`fullspectrum.fingerprints.mask_seed`), the same data order),

1. the empirical NTK (:func:`fullspectrum.ntk.empirical_ntk`) of the MLP with its masks at
   initialisation on the first ``N`` training examples, and its spectral summary
   (:func:`fullspectrum.ntk.ntk_spectrum`: ``top5_energy``, ``decay_alpha``, ...);
2. the first few hundred iterations of static sparse training from exactly those weights
   and masks (:func:`fullspectrum.training.train`, ``method="static"``, constant learning
   rate), the loss on the validation split every ``eval_every`` iterations (the trainer's
   evaluation, which tracks the training loss this early); ``descent = 1 - mean early loss /
   step-0 loss``, the share of the initial loss lost on average (higher: faster; relative, so
   a higher initial loss, as GraSP's under sparse-aware initialisation, earns no credit);
3. two baselines: **Random** (every generator's ``descent`` minus Random's, paired by seed:
   the same seed is the same initialisation and data order) and **density-only** (each
   mask's own per-layer kept counts placed uniformly at random in its layers: what is left
   of a method once only its layer densities are kept, paired by seed);
4. the correlation (Pearson and Spearman over runs, percentile bootstrap 95% intervals)
   between each concentration measure and ``descent``, over the runs whose layers all
   keep weights (a collapsed layer's NTK is the biases' alone; such runs are counted).

:func:`verdict` says in one paragraph whether G25's claim holds here, and where not.

>>> round(bootstrap_correlation([1, 2, 3, 4], [2, 4, 5, 9], resamples=200)["pearson"], 4)
0.9648
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

from analysis.width_limit import FREE_DENSITY_GENERATORS
from analysis.width_limit import t_interval as mean_interval
from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.fingerprints import mask_seed
from fullspectrum.models import build_model
from fullspectrum.ntk import empirical_ntk, ntk_spectrum
from fullspectrum.pruning import (
    GENERATOR_NAMES,
    LayerCollapseWarning,
    generate_masks,
    get_generator,
)
from fullspectrum.runs import RunStore
from fullspectrum.runs.run_file import collect_versions
from fullspectrum.seeds import derived_seed
from fullspectrum.training import TrainConfig, train

SPECTRUM_FIELDS = ("lambda_max", "condition", "effective_rank", "top5_energy", "decay_alpha")
"""The NTK summary fields each run carries."""
CONCENTRATION = ("top5_energy", "decay_alpha")
"""Measures of energy concentration: higher means more energy in the first eigenvalues."""
RUN_COLUMNS = (
    "generator", "kind", "seed", *SPECTRUM_FIELDS, "collapsed", "loss_0", "loss_end", "early_mean_loss",
    "descent", "steps_to_half",
)  # fmt: skip
"""``trainability_runs.csv``: one row per generator, mask ``kind`` (``generator`` or
``density_only``: its layer counts placed at random) and seed; ``collapsed`` when some layer
keeps no weight; ``loss_0`` / ``loss_end`` the validation loss at step 0 and at the window's end,
``early_mean_loss`` its mean over the window's evaluations (step 0 included), ``descent =
1 - early_mean_loss / loss_0``, ``steps_to_half`` the first evaluated step at which the loss is at
most half ``loss_0`` (NaN if none)."""
CONFIDENCE = 0.95
DENSITY_ONLY_STREAM = 13
"""Stream of a seed that places the density-only baseline's weights (apart from init and mask streams)."""


@dataclass(frozen=True)
class TrainabilityConfig:
    """What the study trains and measures."""

    generators: tuple[str, ...] = FREE_DENSITY_GENERATORS
    """Mask generators (Random must be among them for the paired comparison)."""
    density: float = 0.05
    """Global density of every mask."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds: initial weights, masks and data order."""
    data: str = "digits"
    """Built-in dataset (``digits`` or ``mnist1d``), flattened for the MLP."""
    widths: tuple[int, ...] = (256, 128)
    """The MLP's hidden widths (the zoo's default)."""
    ntk_inputs: int = 64
    """``N``: training examples the empirical NTK is computed on."""
    iterations: int = 300
    """The early window: iterations of static sparse training."""
    eval_every: int = 10
    """Iterations between loss evaluations."""
    batch_size: int = 64
    """Minibatch size (the digits preset)."""
    lr: float = 0.05
    """Constant SGD learning rate (the digits preset, without decay inside the window)."""
    sparse_init: bool = False
    """Keep PyTorch's initialisation (G25's setting); True rescales kept weights (Evci et al. 2020)."""
    bootstrap: int = 2000
    """Bootstrap resamples behind each correlation interval."""

    def __post_init__(self) -> None:
        for name in self.generators:
            get_generator(name)
        if "random" not in self.generators:
            raise FullSpectrumError("the generators must include 'random', the paired baseline")
        if len(self.seeds) < 2:
            raise FullSpectrumError("the study needs at least two seeds for its intervals")
        if self.iterations < self.eval_every:
            raise FullSpectrumError("iterations must cover at least one evaluation interval")

    def as_dict(self) -> dict:
        """Plain JSON-able values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class TrainabilityResult:
    """The study's tables and statistics."""

    config: TrainabilityConfig
    """What was run."""
    runs: pd.DataFrame
    """One row per generator, kind and seed: :data:`RUN_COLUMNS`."""
    curves: pd.DataFrame
    """``generator, kind, seed, step, loss``: the early validation-loss curves."""
    eigenvalues: pd.DataFrame
    """``generator, kind, seed, k, eigenvalue``: each NTK's spectrum (descending, ``k`` from 1)."""
    statistics: dict
    """Correlations, per-generator means and paired differences (see :func:`summarise`)."""
    seconds: float
    """Wall-clock seconds of the whole study."""

    def as_dict(self) -> dict:
        """Config, statistics, verdict and timing as plain JSON-able values."""
        return {
            "config": self.config.as_dict(),
            "statistics": self.statistics,
            "verdict": verdict(self.statistics),
            "seconds": self.seconds,
        }


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """``mean``, ``low``, ``high`` (two-sided t interval) and ``n`` of the finite ``values``."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    mean, low, high = mean_interval(x, confidence) if x.size else (math.nan, math.nan, math.nan)
    return {"mean": mean, "low": low, "high": high, "n": int(x.size)}


def bootstrap_correlation(
    x, y, *, resamples: int = 2000, seed: int = 0, confidence: float = CONFIDENCE
) -> dict:
    """Pearson and Spearman of ``x`` and ``y`` with percentile bootstrap intervals over the points.

    Resamples whose ``x`` or ``y`` is constant (no correlation defined) are dropped and counted.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = {"n": int(x.size), "pearson": math.nan, "spearman": math.nan}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {**out, "pearson_low": math.nan, "pearson_high": math.nan, "spearman_low": math.nan,
                "spearman_high": math.nan, "resamples_used": 0}  # fmt: skip
    out["pearson"] = float(stats.pearsonr(x, y)[0])
    out["spearman"] = float(stats.spearmanr(x, y)[0])
    index = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    keep = (np.ptp(x[index], axis=1) > 0) & (np.ptp(y[index], axis=1) > 0)
    xs, ys = x[index[keep]], y[index[keep]]
    pearson = _rowwise_pearson(xs, ys)
    spearman = _rowwise_pearson(stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1))  # ties: mean ranks
    tail = 100 * (1 - confidence) / 2
    for name, values in (("pearson", pearson), ("spearman", spearman)):
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if values.size else (math.nan, math.nan)
        out[f"{name}_low"], out[f"{name}_high"] = float(low), float(high)
    out["resamples_used"] = int(keep.sum())
    return out


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of every row of ``a`` with the same row of ``b``."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def summarise(runs: pd.DataFrame, *, resamples: int = 2000) -> dict:
    """The study's statistics from its run table (:data:`RUN_COLUMNS`).

    * ``per_generator``: per generator and kind, the t interval of ``descent``, ``top5_energy``
      and ``decay_alpha`` over seeds, and how many runs collapsed;
    * ``vs_random``: per generator, ``descent`` minus Random's, paired by seed (t interval);
    * ``vs_density_only``: per generator, ``descent`` minus its density-only masks', paired by seed;
    * ``correlations``: per concentration measure, :func:`bootstrap_correlation` with ``descent``
      over the non-collapsed runs of kind ``generator`` (``runs_all`` and ``excluded`` say how many).
    """
    own = runs[runs.kind == "generator"]
    per_generator = {}
    for (generator, kind), group in runs.groupby(["generator", "kind"], sort=False):
        per_generator.setdefault(generator, {})[kind] = {
            **{field: t_interval(group[field]) for field in ("descent", *CONCENTRATION)},
            "collapsed_runs": int(group.collapsed.sum()),
        }
    by_seed = own.set_index(["generator", "seed"])
    random = by_seed.loc["random"]
    vs_random, vs_density = {}, {}
    for generator, group in own.groupby("generator", sort=False):
        g = group.set_index("seed")
        vs_random[generator] = t_interval((g.descent - random.descent.reindex(g.index)).to_numpy())
        base = runs[(runs.kind == "density_only") & (runs.generator == generator)].set_index("seed")
        if len(base):
            vs_density[generator] = t_interval((g.descent - base.descent.reindex(g.index)).to_numpy())
    live = own[~own.collapsed]
    correlations = {
        measure: {
            **bootstrap_correlation(live[measure], live.descent, resamples=resamples),
            "runs_all": int(len(own)),
            "excluded": int(own.collapsed.sum()),
        }
        for measure in CONCENTRATION
    }
    return {
        "per_generator": per_generator,
        "vs_random": vs_random,
        "vs_density_only": vs_density,
        "correlations": correlations,
    }


def _interval_text(ci: dict) -> str:
    return f"{ci['mean']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"


def _direction(c: dict) -> str:
    if c["spearman_low"] > 0:
        return "positive"
    return "negative" if c["spearman_high"] < 0 else "not distinguishable from 0"


def verdict(statistics: dict) -> str:
    """One plain paragraph: does concentration track faster early descent here, and do SynFlow/SNIP beat Random?

    The claim holds when every concentration measure's Spearman interval lies above 0 and SynFlow
    or SNIP descends faster than Random (paired interval above 0); otherwise the paragraph says
    which part fails.
    """
    lines, directions = [], {}
    for measure, c in statistics["correlations"].items():
        directions[measure] = _direction(c)
        lines.append(
            f"{measure} vs early descent over {c['n']} runs ({c['excluded']} collapsed left out): Spearman "
            f"{c['spearman']:+.2f} [{c['spearman_low']:+.2f}, {c['spearman_high']:+.2f}], Pearson "
            f"{c['pearson']:+.2f} [{c['pearson_low']:+.2f}, {c['pearson_high']:+.2f}]: {directions[measure]}."
        )
    beats = []
    for generator in ("synflow", "snip"):
        if generator in statistics["vs_random"]:
            ci = statistics["vs_random"][generator]
            faster = ci["low"] > 0
            beats += [generator] if faster else []
            than = (
                "faster than"
                if faster
                else "slower than"
                if ci["high"] < 0
                else "not distinguishably faster than"
            )
            lines.append(
                f"{generator} descends {than} Random (paired difference in descent {_interval_text(ci)})."
            )
    if all(d == "positive" for d in directions.values()) and beats:
        lines.append("G25's claim holds here: more concentrated NTK energy goes with faster early descent.")
        return " ".join(lines)
    reasons = []
    negative = [m for m, d in directions.items() if d == "negative"]
    unclear = [m for m, d in directions.items() if d == "not distinguishable from 0"]
    if negative:
        reasons.append(f"more concentration ({', '.join(negative)}) goes with SLOWER early descent")
    if unclear:
        reasons.append(f"{', '.join(unclear)} does not track early descent (interval includes 0)")
    if not beats:
        reasons.append("neither SynFlow nor SNIP descends faster than Random with 95% confidence")
    lines.append("G25's claim does NOT hold here: " + "; ".join(reasons) + ".")
    return " ".join(lines)


# --- the runs -----------------------------------------------------------------------------------


def density_only_masks(masks: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Each layer's kept count placed uniformly at random in that layer (the density-only baseline)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, mask in masks.items():
        order = torch.randperm(mask.numel(), generator=g)[: int(mask.sum())]
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        flat[order] = True
        out[name] = flat.reshape(mask.shape)
    return out


def _loss_curve(
    config: TrainabilityConfig, model, masks: dict, seed: int, folder: Path, splits
) -> pd.DataFrame:
    """Static sparse training from ``model``'s weights and ``masks``; the validation loss curve."""
    mask_path = save_mask_checkpoint(folder / "mask.pt", masks, model.state_dict(), {"seed": seed})
    iters_per_epoch = math.ceil(len(splits.train) / config.batch_size)
    train_config = TrainConfig(
        model="mlp", data=config.data, method="static", mask=str(mask_path), seed=seed, device="cpu",
        epochs=math.ceil(config.iterations / iters_per_epoch), batch_size=config.batch_size, lr=config.lr,
        lr_milestones=(), eval_every=config.eval_every, snapshot_every=10**9, record_spectra=False,
        spectra_worker=False, sparse_init=config.sparse_init, model_options={"widths": list(config.widths)},
    )  # fmt: skip
    result = train(train_config, folder / "run")
    evals = RunStore.open(result.run_dir).evals()
    evals = evals[(evals.split == "val") & (evals.step <= config.iterations)]
    return evals[["step", "loss"]].sort_values("step").reset_index(drop=True)


def _run_row(generator: str, kind: str, seed: int, model, masks, x, curve: pd.DataFrame, n: int) -> tuple:
    spectrum = ntk_spectrum(empirical_ntk(model, x, masks))
    loss = curve.loss.to_numpy()
    half = curve.step[loss <= loss[0] / 2]
    row = {
        "generator": generator, "kind": kind, "seed": seed,
        **{f: getattr(spectrum, f) for f in SPECTRUM_FIELDS},
        "collapsed": not all(bool(m.any()) for m in masks.values()),
        "loss_0": float(loss[0]), "loss_end": float(loss[-1]), "early_mean_loss": float(loss.mean()),
        "descent": float(1 - loss.mean() / loss[0]), "steps_to_half": float(half.iloc[0]) if len(half) else math.nan,
    }  # fmt: skip
    eig = pd.DataFrame(
        {
            "generator": generator,
            "kind": kind,
            "seed": seed,
            "k": np.arange(1, n + 1),
            "eigenvalue": spectrum.eigenvalues,
        }
    )
    return row, eig


def run_trainability(
    config: TrainabilityConfig | None = None,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    threads: int = 1,
    density_only: bool = True,
) -> TrainabilityResult:
    """Run the study (see the module docstring); ``density_only`` adds the density-only baseline runs."""
    config = config or TrainabilityConfig()
    start = time.perf_counter()
    splits = load_dataset(config.data, flatten=True)
    x_all, y_all = splits.split("train").tensors(max(config.ntk_inputs, 10 * splits.num_classes))
    x_ntk, batch = (
        x_all[: config.ntk_inputs],
        [(x_all[: 10 * splits.num_classes], y_all[: 10 * splits.num_classes])],
    )
    kinds = ("generator", "density_only") if density_only else ("generator",)
    total, done = len(config.generators) * len(config.seeds) * len(kinds), 0
    rows, curves, eigenvalues = [], [], []
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="trainability-") as tmp:
            for generator in config.generators:
                for seed in config.seeds:
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(seed)
                        model = build_model(
                            "mlp", splits.num_classes, tuple(splits.input_shape), widths=config.widths
                        )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", LayerCollapseWarning)  # counted in the table instead
                        masks = generate_masks(
                            model, generator, config.density, data=batch, seed=mask_seed(seed)
                        ).masks
                    for kind in kinds:
                        use = (
                            masks
                            if kind == "generator"
                            else density_only_masks(masks, derived_seed(seed, DENSITY_ONLY_STREAM))
                        )
                        folder = Path(tmp) / f"{generator}-{kind}-{seed}"
                        curve = _loss_curve(config, model, use, seed, folder, splits)
                        row, eig = _run_row(generator, kind, seed, model, use, x_ntk, curve, len(x_ntk))
                        rows.append(row)
                        eigenvalues.append(eig)
                        curves.append(curve.assign(generator=generator, kind=kind, seed=seed))
                        done += 1
                        if progress is not None:
                            progress(done, total, f"{generator} {kind} seed {seed}")
    finally:
        torch.set_num_threads(saved_threads)
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    curve_table = pd.concat(curves, ignore_index=True)[["generator", "kind", "seed", "step", "loss"]]
    return TrainabilityResult(
        config=config,
        runs=runs,
        curves=curve_table,
        eigenvalues=pd.concat(eigenvalues, ignore_index=True),
        statistics=summarise(runs, resamples=config.bootstrap),
        seconds=time.perf_counter() - start,
    )


def write_trainability_study(
    result: TrainabilityResult, out: str | Path, *, extra: dict | None = None
) -> list[Path]:
    """Write the study into ``out``.

    ``trainability_runs.csv`` (:data:`RUN_COLUMNS`), ``trainability_curves.csv.gz`` (``generator,
    kind, seed, step, loss``), ``trainability_eigenvalues.csv.gz`` (``generator, kind, seed, k,
    eigenvalue``; gzip: ``pandas.read_csv`` reads both as they are) and
    ``trainability_summary.json`` (config, versions, statistics, verdict, seconds, ``extra``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = ("trainability_runs.csv", "trainability_curves.csv.gz", "trainability_eigenvalues.csv.gz")
    paths = [out / name for name in names] + [out / "trainability_summary.json"]
    result.runs.to_csv(paths[0], index=False, float_format="%.6g")
    gzip = {"method": "gzip", "mtime": 0}  # the same bytes for the same results
    result.curves.to_csv(paths[1], index=False, float_format="%.6g", compression=gzip)
    result.eigenvalues.to_csv(paths[2], index=False, float_format="%.6g", compression=gzip)
    record = {"study": "trainability", **result.as_dict(), "versions": collect_versions()}
    if extra:
        record["extra"] = extra
    paths[3].write_text(json.dumps(record, indent=2, default=float) + "\n")
    return paths


def read_trainability_study(folder: str | Path) -> dict:
    """A folder :func:`write_trainability_study` wrote: ``runs``, ``curves``, ``eigenvalues`` and ``record``."""
    folder = Path(folder)
    return {
        "runs": pd.read_csv(folder / "trainability_runs.csv"),
        "curves": pd.read_csv(folder / "trainability_curves.csv.gz"),
        "eigenvalues": pd.read_csv(folder / "trainability_eigenvalues.csv.gz"),
        "record": json.loads((folder / "trainability_summary.json").read_text()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m analysis.trainability --out DIR [--generators ...] [--density D] [--seeds N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.trainability", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="folder for the CSV and JSON results")
    parser.add_argument(
        "--generators", nargs="+", default=list(FREE_DENSITY_GENERATORS), choices=GENERATOR_NAMES
    )
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument("--data", default="digits", choices=["digits", "mnist1d"])
    parser.add_argument("--inputs", type=int, default=64, help="N, the NTK's inputs")
    parser.add_argument("--iterations", type=int, default=300, help="the early window")
    parser.add_argument("--no-density-only", action="store_true", help="skip the density-only baseline runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    args = parser.parse_args(argv)
    config = TrainabilityConfig(
        generators=tuple(args.generators), density=args.density, seeds=tuple(range(args.seeds)),
        data=args.data, ntk_inputs=args.inputs, iterations=args.iterations,
    )  # fmt: skip
    kinds = 1 if args.no_density_only else 2
    with tqdm(total=len(config.generators) * len(config.seeds) * kinds, unit="run") as bar:

        def step(done: int, total: int, label: str) -> None:
            bar.set_description(label)
            bar.update(done - bar.n)

        result = run_trainability(
            config, progress=step, threads=args.threads, density_only=not args.no_density_only
        )
    for path in write_trainability_study(result, args.out):
        print(path)
    print(verdict(result.statistics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
