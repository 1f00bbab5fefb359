"""The FS23-table report: mean ± 95% CI per method, cost in iterations, verdicts per claim.

Input is one row per trained network (:data:`POINT_COLUMNS`): which method found its mask
(``method`` one of :data:`METHODS`; ``generator`` the pruning-at-initialisation method it
started from, empty for lotteries and early birds), the density, the seed, the final test
accuracy and the iterations it cost (finding the mask — PEGS warm-up, IMP levels, Early-Bird
epochs, 0 for a generator — plus the final training). :func:`results_table` is
``results.csv``; :func:`fs23_claims` lists the claims of FS23 Tables 2–3 this data can test;
:func:`render_report` writes ``report.md``.

>>> import pandas as pd
>>> points = pd.DataFrame({"method": ["generator"] * 2 + ["pags"] * 2, "generator": "snip",
...     "density": 0.05, "seed": [0, 1, 0, 1], "accuracy": [0.90, 0.92, 0.91, 0.94],
...     "iterations": 100})
>>> results_table(points)[["method", "n", "mean_accuracy"]].values.tolist()
[['generator', 2, 0.91], ['pags', 2, 0.925]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from fullspectrum.reproduction.statistics import (
    BootstrapCorrelation,
    ClaimVerdict,
    claim_verdicts,
    mean_interval,
)

METHODS = ("generator", "pags", "pegs100", "pegs500", "lottery_rewind0", "lottery_rewindk", "earlybird")
"""The ``method`` values of ``results.csv``, in report order."""
METHOD_LABELS = {
    "generator": "{generator}",
    "pags": "PAGS@0 over {generator}",
    "pegs100": "PEGS@100 over {generator}",
    "pegs500": "PEGS@500 over {generator}",
    "lottery_rewind0": "IMP (LTH, rewind 0)",
    "lottery_rewindk": "IMP (rewind k)",
    "earlybird": "Early-Bird",
}
POINT_COLUMNS = ("method", "generator", "density", "seed", "accuracy", "iterations")
RESULT_COLUMNS = (
    "method",
    "generator",
    "density",
    "n",
    "mean_accuracy",
    "ci95_low",
    "ci95_high",
    "std",
    "iterations",
)


def results_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, generator, density): ``RESULT_COLUMNS``; ``iterations`` is the mean cost."""
    points = _normalised(points)
    rows = []
    for (method, generator, density), group in points.groupby(["method", "generator", "density"], sort=False):
        interval = mean_interval(group["accuracy"].tolist())
        rows.append(
            {
                "method": method,
                "generator": generator,
                "density": float(density),
                "n": interval.n,
                "mean_accuracy": round(interval.mean, 12),
                "ci95_low": interval.low,
                "ci95_high": interval.high,
                "std": interval.std,
                "iterations": float(group["iterations"].mean()),
            }
        )
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    order = {m: i for i, m in enumerate(METHODS)}
    table["_order"] = table["method"].map(order)
    table = table.sort_values(["density", "_order", "generator"], kind="stable").drop(columns="_order")
    return table.reset_index(drop=True)


def fs23_claims(points: pd.DataFrame) -> tuple[ClaimVerdict, ...]:
    """FS23's claims that ``points`` can test, paired by seed and Holm-corrected together.

    Per density and generator: PAGS@0, PEGS@100 and PEGS@500 over the generator's mask;
    per density: IMP (rewind k) over PEGS@500 (FS23: PEGS@500 approaches the lottery ticket,
    so a significant difference here means it does not), IMP (rewind k) over rewind 0, and
    PEGS@500 over Early-Bird for each generator.
    """
    points = _normalised(points)
    by_seed = {
        key: dict(zip(group["seed"], group["accuracy"]))
        for key, group in points.groupby(["method", "generator", "density"], sort=False)
    }
    claims: dict[str, tuple[dict, dict]] = {}
    for density in sorted(points["density"].unique()):
        generators = sorted(g for g in points.loc[points["density"] == density, "generator"].unique() if g)
        for generator in generators:
            base = by_seed.get(("generator", generator, density))
            for method in ("pags", "pegs100", "pegs500"):
                found = by_seed.get((method, generator, density))
                if base and found:
                    claims[
                        f"{METHOD_LABELS[method].format(generator=generator)} beats {generator} at d={density:g}"
                    ] = (
                        found,
                        base,
                    )
        lottery = by_seed.get(("lottery_rewindk", "", density))
        for generator in generators:
            pegs = by_seed.get(("pegs500", generator, density))
            if lottery and pegs:
                claims[f"IMP (rewind k) beats PEGS@500 over {generator} at d={density:g}"] = (lottery, pegs)
            early = by_seed.get(("earlybird", "", density))
            if early and pegs:
                claims[f"PEGS@500 over {generator} beats Early-Bird at d={density:g}"] = (pegs, early)
        rewind0 = by_seed.get(("lottery_rewind0", "", density))
        if lottery and rewind0:
            claims[f"IMP rewind k beats rewind 0 at d={density:g}"] = (lottery, rewind0)
    return claim_verdicts(claims)


def render_report(
    title: str,
    results: pd.DataFrame,
    verdicts: Sequence[ClaimVerdict],
    *,
    correlation: Sequence[tuple[str, BootstrapCorrelation]] = (),
    notes: Sequence[str] = (),
) -> str:
    """``report.md``: the results table, the cost of each method, the verdicts, the correlation study."""
    lines = [f"# {title}", ""]
    lines += [*(f"* {note}" for note in notes), ""] if notes else []
    lines += [
        "## Accuracy (mean ± 95% CI over seeds, Student's t) and cost",
        "",
        "| density | method | n | accuracy | 95% CI | iterations |",
        "|---|---|---|---|---|---|",
    ]
    for row in results.itertuples(index=False):
        label = METHOD_LABELS.get(row.method, row.method).format(generator=row.generator or "")
        ci = "—" if math.isnan(row.ci95_low) else f"[{row.ci95_low:.4f}, {row.ci95_high:.4f}]"
        lines.append(
            f"| {row.density:g} | {label} | {row.n} | {row.mean_accuracy:.4f} | {ci} | {row.iterations:,.0f} |"
        )
    lines += ["", "## Claims (differences paired by seed, Holm-corrected over this report)", ""]
    lines += [f"* {v.text}" for v in verdicts] or ["* no claim could be tested on these runs"]
    if correlation:
        lines += ["", "## ℓ2-moving distance vs accuracy (FS23 Fig. 3), bootstrap 95% CI over runs", ""]
        for name, c in correlation:
            value = "n/a" if math.isnan(c.pearson) else f"{c.pearson:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"
            lines.append(f"* {name}: Pearson r = {value} (n={c.n})")
    return "\n".join(lines) + "\n"


def _normalised(points: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in POINT_COLUMNS if c not in points.columns]
    if missing:
        raise ValueError(f"reproduction points lack columns: {missing}")
    points = points.copy()
    points["generator"] = points["generator"].fillna("").astype(str)
    points["density"] = points["density"].astype(float)
    return points
