"""Which metrics predict accuracy? MGE24's predictor study, with density as the baseline.

MGE24 (Cunegatti et al., TMLR 2024, §4) fit a regressor from each family of graph
metrics of a set of trained masks to their final accuracies and find that the
per-layer densities alone predict about as well as rolled Ramanujan metrics. This
module runs that study over a feature table (one row per run, see
:mod:`analysis.run_features`): for each feature set, out-of-fold predictions of a
random forest under seeded k-fold cross-validation, then

* cross-validated R² and Spearman ρ between predicted and measured accuracy, each with a
  bootstrap 95% interval over runs;
* the paired difference of R² against the density-only baseline (the same bootstrap
  resamples), and whether its interval lies above zero (``beats_density``);
* impurity feature importances of a forest fitted on every run;
* a plain verdict that says so when no feature set beats density.

Runs of different models or datasets are never pooled: :func:`predictor_studies`
makes one study per (model, dataset).

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> d = rng.uniform(0.01, 0.2, 24)
>>> table = pd.DataFrame({"model": "mlp", "data": "digits", "accuracy": 0.5 + 2 * d,
...                       "density:fc1": d, "delta_r:fc1": rng.normal(size=24)})
>>> study = predictor_study(table, bootstrap=200)
>>> study.baseline.r2 > 0.8, study.score("ramanujan").r2 < study.baseline.r2
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold

from fullspectrum.errors import FullSpectrumError

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "density": ("density:",),
    "ramanujan": ("delta_r:", "lambda_w:"),
    "full_spectrum": ("delta_r_imdb:", "moving_distance:", "final_distance"),
    "topometrics": ("topo:",),
    "effective_density": ("effective_density", "effective:"),
}
"""Feature sets by the column prefixes (or whole names) of a feature table; ``all`` is their union."""
BASELINE = "density"
MIN_RUNS = 6
"""Fewer runs than this cannot be cross-validated meaningfully; the study refuses them."""
FEW_RUNS = 20
"""Below this many runs the verdict warns that the intervals are wide."""
SCORE_COLUMNS = (
    "feature_set",
    "features",
    "r2",
    "r2_low",
    "r2_high",
    "spearman",
    "spearman_low",
    "spearman_high",
    "r2_minus_density",
    "difference_low",
    "difference_high",
    "beats_density",
)


@dataclass(frozen=True)
class PredictorScore:
    """How well one feature set predicts accuracy, out of fold."""

    feature_set: str
    features: int
    """Columns in the set (after dropping constant and missing ones)."""
    r2: float
    r2_ci: tuple[float, float]
    spearman: float
    spearman_ci: tuple[float, float]
    r2_minus_density: float
    """Cross-validated R² minus the density-only baseline's (0 for the baseline itself)."""
    difference_ci: tuple[float, float]
    """Bootstrap 95% interval of that difference, paired by run."""

    @property
    def beats_density(self) -> bool:
        """True when the whole interval of the R² difference lies above zero."""
        return self.feature_set != BASELINE and self.difference_ci[0] > 0

    def as_dict(self) -> dict:
        return {
            "feature_set": self.feature_set,
            "features": self.features,
            "r2": self.r2,
            "r2_low": self.r2_ci[0],
            "r2_high": self.r2_ci[1],
            "spearman": self.spearman,
            "spearman_low": self.spearman_ci[0],
            "spearman_high": self.spearman_ci[1],
            "r2_minus_density": self.r2_minus_density,
            "difference_low": self.difference_ci[0],
            "difference_high": self.difference_ci[1],
            "beats_density": self.beats_density,
        }


@dataclass(frozen=True)
class PredictorStudy:
    """The study for one model and dataset."""

    model: str
    data: str
    runs: int
    folds: int
    seed: int
    scores: tuple[PredictorScore, ...]
    importances: pd.DataFrame
    """``feature_set``, ``feature``, ``importance`` (impurity importances, summing to 1 per set)."""
    skipped: tuple[str, ...]
    """Feature sets with no usable column in this table (e.g. topometrics of untraceable models)."""

    @property
    def baseline(self) -> PredictorScore:
        return self.score(BASELINE)

    def score(self, feature_set: str) -> PredictorScore:
        for score in self.scores:
            if score.feature_set == feature_set:
                return score
        raise KeyError(feature_set)

    def table(self) -> pd.DataFrame:
        """One row per feature set (``SCORE_COLUMNS``)."""
        return pd.DataFrame([s.as_dict() for s in self.scores], columns=list(SCORE_COLUMNS))

    @property
    def verdict(self) -> str:
        winners = [s for s in self.scores if s.beats_density]
        base = self.baseline
        head = f"{self.model} on {self.data}, {self.runs} runs, {self.folds}-fold CV: "
        head += f"density alone R² {base.r2:.2f} [{base.r2_ci[0]:.2f}, {base.r2_ci[1]:.2f}]. "
        if winners:
            parts = [
                f"{s.feature_set} (R² {s.r2:.2f}, {s.r2_minus_density:+.3f} "
                f"[{s.difference_ci[0]:+.3f}, {s.difference_ci[1]:+.3f}] over density)"
                for s in winners
            ]
            text = head + "Beats density: " + "; ".join(parts) + "."
        else:
            best = max(
                (s for s in self.scores if s.feature_set != BASELINE), key=lambda s: s.r2, default=None
            )
            text = head + "No feature set beats density"
            if best is not None:
                text += (
                    f" (best: {best.feature_set}, R² {best.r2:.2f}, {best.r2_minus_density:+.3f} "
                    f"[{best.difference_ci[0]:+.3f}, {best.difference_ci[1]:+.3f}])"
                )
            text += ": MGE24's warning holds here."
        if self.runs < FEW_RUNS:
            text += f" With {self.runs} runs the intervals are wide; more seeds would narrow them."
        return text


def feature_columns(table: pd.DataFrame, feature_set: str) -> list[str]:
    """The usable columns of one feature set: present, finite in every run, not constant."""
    if feature_set == "all":
        names = [c for s in FEATURE_SETS for c in feature_columns(table, s)]
        return list(dict.fromkeys(names))
    prefixes = FEATURE_SETS[feature_set]
    chosen = []
    for column in table.columns:
        if not any(column == p or (p.endswith(":") and column.startswith(p)) for p in prefixes):
            continue
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().all() and values.nunique() > 1:
            chosen.append(column)
    return chosen


def predictor_study(
    table: pd.DataFrame,
    *,
    target: str = "accuracy",
    folds: int = 5,
    seed: int = 0,
    bootstrap: int = 2000,
    trees: int = 200,
) -> PredictorStudy:
    """MGE24's study on a feature table of one model and dataset (one row per run)."""
    groups = table[["model", "data"]].drop_duplicates()
    if len(groups) != 1:
        raise FullSpectrumError(
            f"predictor study: {len(groups)} (model, dataset) groups given; runs of different models "
            "or datasets are not pooled (use predictor_studies)"
        )
    table = table[pd.to_numeric(table[target], errors="coerce").notna()].reset_index(drop=True)
    if len(table) < MIN_RUNS:
        raise FullSpectrumError(
            f"predictor study: {len(table)} runs with an accuracy; at least {MIN_RUNS} needed"
        )
    y = table[target].to_numpy(dtype=float)
    folds = min(folds, len(table))
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(y))
    resamples = np.random.default_rng(seed).integers(0, len(y), size=(bootstrap, len(y)))
    predictions, importances, skipped = {}, [], []
    for name in (*FEATURE_SETS, "all"):
        columns = feature_columns(table, name)
        if not columns:
            if name == BASELINE:  # every run at one density: the baseline predicts the mean
                predictions[name] = (0, _mean_predictions(y, splits))
            else:
                skipped.append(name)
            continue
        x = table[columns].to_numpy(dtype=float)
        predictions[name] = (len(columns), _out_of_fold(x, y, splits, seed, trees))
        forest = _forest(seed, trees).fit(x, y)
        importances += [
            {"feature_set": name, "feature": c, "importance": float(v)}
            for c, v in zip(columns, forest.feature_importances_)
        ]
    base = predictions[BASELINE][1]
    base_r2 = _r2_rows(y, base, resamples)
    scores = []
    for name, (width, predicted) in predictions.items():
        r2_boot = _r2_rows(y, predicted, resamples)
        rho_boot = _spearman_rows(y, predicted, resamples)
        difference = r2_boot - base_r2
        scores.append(
            PredictorScore(
                feature_set=name,
                features=width,
                r2=_r2(y, predicted),
                r2_ci=_interval(r2_boot),
                spearman=_spearman(y, predicted),
                spearman_ci=_interval(rho_boot),
                r2_minus_density=_r2(y, predicted) - _r2(y, base),
                difference_ci=(0.0, 0.0) if name == BASELINE else _interval(difference),
            )
        )
    return PredictorStudy(
        model=str(table["model"].iloc[0]),
        data=str(table["data"].iloc[0]),
        runs=len(table),
        folds=folds,
        seed=seed,
        scores=tuple(scores),
        importances=pd.DataFrame(importances, columns=["feature_set", "feature", "importance"]),
        skipped=tuple(skipped),
    )


def predictor_studies(table: pd.DataFrame, **options) -> dict[tuple[str, str], PredictorStudy]:
    """One study per (model, dataset) with at least ``MIN_RUNS`` runs; smaller groups are left out."""
    studies = {}
    for (model, data), group in table.groupby(["model", "data"], sort=True):
        if pd.to_numeric(group[options.get("target", "accuracy")], errors="coerce").notna().sum() >= MIN_RUNS:
            studies[(str(model), str(data))] = predictor_study(group, **options)
    return studies


def _forest(seed: int, trees: int) -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=1)


def _out_of_fold(x: np.ndarray, y: np.ndarray, splits, seed: int, trees: int) -> np.ndarray:
    predicted = np.empty_like(y)
    for train, test in splits:
        predicted[test] = _forest(seed, trees).fit(x[train], y[train]).predict(x[test])
    return predicted


def _mean_predictions(y: np.ndarray, splits) -> np.ndarray:
    predicted = np.empty_like(y)
    for train, test in splits:
        predicted[test] = y[train].mean()
    return predicted


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return math.nan if total == 0 else 1.0 - float(((y - predicted) ** 2).sum()) / total


def _r2_rows(y: np.ndarray, predicted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """R² on every bootstrap resample (a row of run indices) at once."""
    ys, ps = y[rows], predicted[rows]
    total = ((ys - ys.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    residual = ((ys - ps) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1.0 - residual / total, np.nan)


def _spearman(y: np.ndarray, predicted: np.ndarray) -> float:
    if np.ptp(y) == 0 or np.ptp(predicted) == 0:
        return math.nan
    return float(stats.spearmanr(y, predicted).statistic)


def _spearman_rows(y: np.ndarray, predicted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    ry = stats.rankdata(y[rows], axis=1)
    rp = stats.rankdata(predicted[rows], axis=1)
    ry -= ry.mean(axis=1, keepdims=True)
    rp -= rp.mean(axis=1, keepdims=True)
    norm = np.sqrt((ry**2).sum(axis=1) * (rp**2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, (ry * rp).sum(axis=1) / norm, np.nan)


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (math.nan, math.nan)
    low, high = np.percentile(finite, [2.5, 97.5])
    return (float(low), float(high))
