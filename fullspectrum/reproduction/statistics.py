"""The statistics of a reproduction report: t intervals, differences paired by seed, Holm's correction.

SPEC §9: each method's accuracy is reported as mean ± 95% confidence interval over
seeds (Student's t); a claim "A beats B" is tested on the differences of runs paired by
seed (the same seed gives the same initialisation and data order), with Holm's
step-down correction over the claims of one report; a correlation gets a bootstrap
interval over runs.

>>> interval = mean_interval([0.90, 0.92, 0.94])
>>> round(interval.mean, 4), round(interval.half_width, 4)
(0.92, 0.0497)
>>> holm([0.01, 0.04, 0.03])
(0.03, 0.06, 0.06)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


@dataclass(frozen=True)
class MeanInterval:
    """A mean with its Student-t confidence interval (NaN bounds with fewer than two values)."""

    n: int
    mean: float
    low: float
    high: float
    std: float
    """Sample standard deviation (ddof 1)."""

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "ci95_low": self.low, "ci95_high": self.high, "std": self.std}


@dataclass(frozen=True)
class PairedDifference:
    """``mean(a - b)`` over the seeds both have, with its t interval and two-sided p-value."""

    n: int
    seeds: tuple
    mean: float
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim of a report, tested and corrected for the report's other claims."""

    claim: str
    """E.g. ``"PAGS over SNIP"``: the first method is claimed to beat the second."""
    difference: PairedDifference
    p_holm: float

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    @property
    def holds(self) -> bool:
        """The claimed direction, significantly."""
        return self.significant and self.difference.mean > 0

    @property
    def text(self) -> str:
        d = self.difference
        if d.n < 2:
            return f"{self.claim}: {d.n} paired seed(s), cannot be tested"
        if not math.isfinite(d.p_value):
            return (
                f"{self.claim}: {100 * d.mean:+.1f} points at each of {d.n} seeds, no spread between seeds "
                "to test against: not tested (more seeds needed)"
            )
        points = 100 * d.mean
        spread = 100 * (d.high - d.low) / 2
        if self.holds:
            word = "significant, the claim holds here"
        elif self.significant:
            word = "significant in the opposite direction, the claim does not hold here"
        else:
            word = "not significant"
        return (
            f"{self.claim}: {points:+.1f} ± {spread:.1f} points (n={d.n}, Holm p={self.p_holm:.3g}), {word}"
        )

    def as_dict(self) -> dict:
        d = self.difference
        return {
            "claim": self.claim,
            "n": d.n,
            "difference": d.mean,
            "ci95_low": d.low,
            "ci95_high": d.high,
            "p": d.p_value,
            "p_holm": self.p_holm,
            "holds": self.holds,
            "verdict": self.text,
        }


@dataclass(frozen=True)
class BootstrapCorrelation:
    """Pearson's r of two columns over runs, with a percentile bootstrap interval over runs."""

    n: int
    pearson: float
    low: float
    high: float


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanInterval:
    """Mean and Student-t interval of the finite ``values``."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return MeanInterval(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return MeanInterval(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * std / math.sqrt(x.size)
    return MeanInterval(int(x.size), mean, mean - half, mean + half, std)


def paired_difference(a: Mapping, b: Mapping, confidence: float = CONFIDENCE) -> PairedDifference:
    """``a[seed] - b[seed]`` over the seeds with a finite value in both (maps seed -> accuracy)."""
    seeds = tuple(sorted(s for s in a.keys() & b.keys() if _finite(a[s]) and _finite(b[s])))
    diffs = [float(a[s]) - float(b[s]) for s in seeds]
    interval = mean_interval(diffs, confidence)
    if len(diffs) < 2:
        p = math.nan
    elif interval.std <= 1e-12 * max(1.0, abs(interval.mean)):  # equal up to rounding
        # every pair moved by the same amount (accuracies are quantised by the test set's size):
        # no seed noise to test against, so no p-value, however many seeds
        p = math.nan
    else:
        p = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    return PairedDifference(len(seeds), seeds, interval.mean, interval.low, interval.high, p)


def holm(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm's step-down adjusted p-values, in the order given (NaN stays NaN and counts no test)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if _finite(p)]
    indexed.sort()
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = round(running, 15)
    return tuple(adjusted)


def claim_verdicts(claims: Mapping[str, tuple[Mapping, Mapping]]) -> tuple[ClaimVerdict, ...]:
    """Test every claim ``name -> (accuracies of A by seed, of B by seed)`` of one report."""
    differences = {name: paired_difference(a, b) for name, (a, b) in claims.items()}
    corrected = holm([d.p_value for d in differences.values()])
    return tuple(ClaimVerdict(name, d, p) for (name, d), p in zip(differences.items(), corrected))


def bootstrap_correlation(
    x: Sequence[float], y: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> BootstrapCorrelation:
    """Pearson's r with a 95% percentile interval from resampling runs (pairs) with replacement."""
    pairs = np.asarray([(a, b) for a, b in zip(x, y) if _finite(a) and _finite(b)], dtype=float)
    n = len(pairs)
    if n < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return BootstrapCorrelation(n, math.nan, math.nan, math.nan)
    r = float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    xs, ys = pairs[rows, 0], pairs[rows, 1]
    xs = xs - xs.mean(axis=1, keepdims=True)
    ys = ys - ys.mean(axis=1, keepdims=True)
    norm = np.sqrt((xs**2).sum(axis=1) * (ys**2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = (xs * ys).sum(axis=1) / norm
    boot = boot[np.isfinite(boot)]
    low, high = np.percentile(boot, [2.5, 97.5]) if boot.size else (math.nan, math.nan)
    return BootstrapCorrelation(n, r, float(low), float(high))


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
