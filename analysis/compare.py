"""Compare two masks of one network layer by layer: *why* does one mask beat another?

For every layer both masks share, the full-spectrum metrics of Hoang et al.
(R23, FS23; SPEC §2–3) of mask A and mask B with their differences (B − A),
the overlap of their kept weights (IoU), dead units and dead input channels,
and the composition of their nested regular subgraphs (degree classes: how
many, how many qualify for ``delta_r_imdb``). A short plain-language summary,
computed from those numbers, names the layers where A and B differ most (by the
distance between their 4-D full-spectrum vectors ``u``, SPEC §4) and how, e.g.
``layer3.1.conv2: B has 40 more dead input channels and no qualifying degree
class; its Δr_imdb is 0.8 lower``.

>>> import torch
>>> a = {"fc.weight": torch.ones(4, 6, dtype=torch.bool)}
>>> b = {"fc.weight": torch.eye(4, 6, dtype=torch.bool)}
>>> result = compare_masks(a, b)
>>> round(float(result.table.loc[0, "iou"]), 3), int(result.table.loc[0, "edges_delta"])
(0.167, -20)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.names import layer_name
from fullspectrum.spectrum import (
    SPECTRUM_FIELDS,
    full_spectrum_vector,
    layer_spectrum,
    metric_symbol,
    regular_subgraphs,
)
from fullspectrum.spectrum.graph import check_mask, to_numpy

COMPOSITION_FIELDS = ("classes", "qualifying_units")
"""Per-mask class composition columns besides ``n_classes`` (qualifying classes, a SPECTRUM field)."""
METRIC_FIELDS = (*SPECTRUM_FIELDS, *COMPOSITION_FIELDS)
"""Every per-mask number of the table; each appears as ``<name>_a``, ``<name>_b``, ``<name>_delta``."""
CLASS_COLUMNS = (
    "layer",
    "mask",
    "d_c",
    "n_c",
    "l_c",
    "r_c",
    "edges",
    "delta_r_c",
    "lambda_c",
    "f_c",
    "qualifies",
)
"""Columns of :attr:`MaskComparison.classes` (``mask`` is ``"A"`` or ``"B"``)."""
SUMMARY_METRICS = ("delta_r_imdb", "delta_r", "lambda_w", "lambda_imsg")


@dataclass(frozen=True)
class MaskComparison:
    """Two masks of one network compared layer by layer."""

    table: pd.DataFrame
    """One row per shared layer: ``layer``, ``shape``, ``iou``, ``shared_edges``, ``u_distance``, then
    ``<metric>_a``, ``<metric>_b``, ``<metric>_delta`` (B − A) for every name in :data:`METRIC_FIELDS`."""
    classes: pd.DataFrame
    """Every degree class (SPEC §3) of every layer of both masks, :data:`CLASS_COLUMNS`."""
    summary: tuple[str, ...]
    """Plain-language sentences computed from the numbers: the overall picture, then the layers that differ most."""
    skipped: tuple[tuple[str, str], ...]
    """``(layer, reason)`` for layers not compared (only in one mask, or of different shapes)."""

    def long(self, metrics: tuple[str, ...] = SUMMARY_METRICS) -> pd.DataFrame:
        """Tidy form for charts: ``layer``, ``metric``, ``a``, ``b``, ``delta``."""
        parts = [
            pd.DataFrame(
                {
                    "layer": self.table["layer"],
                    "metric": metric,
                    "a": self.table[f"{metric}_a"].astype(float),
                    "b": self.table[f"{metric}_b"].astype(float),
                    "delta": self.table[f"{metric}_delta"].astype(float),
                }
            )
            for metric in metrics
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _by_layer(tensors: Mapping | None) -> dict:
    """Re-key a mapping of parameter names (``layer1.0.conv1.weight``) by module path."""
    return {layer_name(str(name)): value for name, value in (tensors or {}).items()}


def _side(mask, weight, name: str) -> tuple[dict, list]:
    spectrum = layer_spectrum(mask, weight, name=name).as_dict()
    classes = regular_subgraphs(mask, weight)
    live = spectrum["n_left"]
    in_qualifying = sum(c.n_c for c in classes if c.qualifies)
    spectrum["classes"] = len(classes)
    spectrum["qualifying_units"] = in_qualifying / live if live else float("nan")
    return spectrum, classes


def _delta(a, b) -> float | int:
    if isinstance(a, bool | np.bool_) or isinstance(b, bool | np.bool_):
        return int(b) - int(a)
    if isinstance(a, int | np.integer) and isinstance(b, int | np.integer):
        return int(b) - int(a)
    return float(b) - float(a)


def compare_masks(
    masks_a: Mapping,
    masks_b: Mapping,
    *,
    weights_a: Mapping | None = None,
    weights_b: Mapping | None = None,
    convention: str = "fs23",
    top: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> MaskComparison:
    """Compare mask A with mask B layer by layer (names as parameter names or module paths).

    ``weights_*`` (same keys, optional) give the weighted metrics (``lambda_w``,
    ``lambda_imsg``); without them those are NaN. ``top`` is how many layers
    the summary names. ``progress(done, total)`` is called after each layer.
    """
    a, b = _by_layer(masks_a), _by_layer(masks_b)
    wa, wb = _by_layer(weights_a), _by_layer(weights_b)
    skipped = [(name, "only in mask A") for name in a if name not in b]
    skipped += [(name, "only in mask B") for name in b if name not in a]
    shared = []
    for name in (name for name in a if name in b):
        shape_a, shape_b = (
            tuple(np.shape(to_numpy(a[name], name=name))),
            tuple(np.shape(to_numpy(b[name], name=name))),
        )
        if shape_a != shape_b:
            skipped.append((name, f"shapes differ: A {shape_a}, B {shape_b}"))
        else:
            shared.append(name)
    if not shared:
        raise FullSpectrumError(
            f"masks A and B share no layer of the same shape (A: {len(a)} layers, B: {len(b)} layers)"
        )
    rows, class_rows = [], []
    for done, name in enumerate(shared, start=1):
        mask_a = check_mask(a[name], name=f"{name} (A)")
        mask_b = check_mask(b[name], name=f"{name} (B)")
        spec_a, classes_a = _side(mask_a, wa.get(name), f"{name} (A)")
        spec_b, classes_b = _side(mask_b, wb.get(name), f"{name} (B)")
        union = int(np.logical_or(mask_a, mask_b).sum())
        shared_edges = int(np.logical_and(mask_a, mask_b).sum())
        row = {
            "layer": name,
            "shape": "x".join(str(s) for s in mask_a.shape),
            "iou": shared_edges / union if union else 1.0,
            "shared_edges": shared_edges,
            "u_distance": float(np.linalg.norm(full_spectrum_vector(spec_b) - full_spectrum_vector(spec_a))),
        }
        for field in METRIC_FIELDS:
            row[f"{field}_a"], row[f"{field}_b"] = spec_a[field], spec_b[field]
            row[f"{field}_delta"] = _delta(spec_a[field], spec_b[field])
        rows.append(row)
        for label, classes in (("A", classes_a), ("B", classes_b)):
            class_rows += [
                {"layer": name, "mask": label, **{c: getattr(k, c) for c in CLASS_COLUMNS[2:]}}
                for k in classes
            ]
        if progress is not None:
            progress(done, len(shared))
    table = pd.DataFrame(rows)
    classes = pd.DataFrame(class_rows, columns=list(CLASS_COLUMNS))
    return MaskComparison(table, classes, tuple(summarize(table, top=top, skipped=skipped)), tuple(skipped))


# --- the plain-language summary --------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{abs(value):.3g}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _count_phrase(row: pd.Series, field: str, what: str) -> str | None:
    """'B has 40 more dead input channels (A 0, B 40)' when the counts differ."""
    a, b = int(row[f"{field}_a"]), int(row[f"{field}_b"])
    if a == b:
        return None
    more = "more" if b > a else "fewer"
    return f"B has {abs(b - a)} {more} {what} ({a} vs {b})"


def _class_phrase(row: pd.Series) -> str | None:
    a, b = int(row["n_classes_a"]), int(row["n_classes_b"])
    if a == b:
        return None
    if b == 0:
        return f"B has no qualifying degree class (A has {a})"
    if a == 0:
        return f"A has no qualifying degree class, B has {b}"
    return f"B has {b} qualifying degree classes to A's {a}"


def _metric_phrase(row: pd.Series, metric: str) -> str | None:
    a, b = float(row[f"{metric}_a"]), float(row[f"{metric}_b"])
    name = metric_symbol(metric)
    if np.isnan(a) and np.isnan(b):
        return None
    if np.isnan(b):
        return f"its {name} is undefined in B (A: {a:.3g})"
    if np.isnan(a):
        return f"its {name} is undefined in A (B: {b:.3g})"
    delta = b - a
    if abs(delta) <= 1e-6 * max(1.0, abs(a), abs(b)):
        return None
    return f"its {name} is {_number(delta)} {'higher' if delta > 0 else 'lower'} in B"


def describe_layer(row: pd.Series) -> str:
    """One sentence on how B differs from A in one table row (empty if they agree)."""
    facts = [
        _count_phrase(row, "dead_in_channels", "dead input channels"),
        _count_phrase(row, "dead_right", "dead output units"),
        _class_phrase(row),
    ]
    if bool(row["in_regime_a"]) != bool(row["in_regime_b"]):
        facts.append(
            "B is " + ("inside" if row["in_regime_b"] else "outside") + " the Ramanujan regime (degrees ≥ 3)"
        )
    metrics = [_metric_phrase(row, m) for m in SUMMARY_METRICS]
    # Δr_imdb (FS23's selection metric) when it changed, then the largest relative other change
    changed = [m for m, phrase in zip(SUMMARY_METRICS, metrics, strict=True) if phrase]
    chosen = [m for m in changed if m == "delta_r_imdb"]
    others = sorted(
        (m for m in changed if m != "delta_r_imdb"),
        key=lambda m: -abs(_relative(row, m)),
    )
    chosen += others[: 2 - len(chosen)]
    facts += [_metric_phrase(row, m) for m in chosen]
    facts = [fact for fact in facts if fact]
    if not facts:
        return ""
    head, tail = [f for f in facts if not f.startswith("its ")], [f for f in facts if f.startswith("its ")]
    head = head[:1] + [f[2:] if f.startswith("B ") and head[0].startswith("B ") else f for f in head[1:]]
    text = head[0] if len(head) == 1 else ", ".join(head[:-1]) + " and " + head[-1] if head else ""
    if tail:
        text = f"{text}; {', '.join(tail)}" if text else ", ".join(tail)
    overlap = f" (IoU {row['iou']:.2f})"
    return f"{row['layer']}: {text}{overlap}"


def _relative(row: pd.Series, metric: str) -> float:
    a, b = float(row[f"{metric}_a"]), float(row[f"{metric}_b"])
    if np.isnan(a) or np.isnan(b):
        return np.inf
    return (b - a) / max(1e-12, abs(a), abs(b))


def shared_fraction(iou: float, kept_a: float = 1.0, kept_b: float = 1.0) -> float:
    """The fraction of mask A's kept weights that B keeps too, from their IoU and budgets.

    With ``S`` shared weights, ``IoU = S / (|A| + |B| - S)``, so ``S = IoU (|A| + |B|) / (1 + IoU)`` and
    ``S / |A| = IoU (1 + |B|/|A|) / (1 + IoU)``; for equal budgets ``2 IoU / (1 + IoU)`` (an IoU of 0.41
    means 58% of each mask's weights are shared, not 41%).

    >>> round(shared_fraction(0.41), 3), round(shared_fraction(0.25, 100, 300), 3)  # 80 of A's 100 shared
    (0.582, 0.8)
    """
    return iou * (1 + kept_b / kept_a) / (1 + iou) if kept_a else float("nan")


def overlap_sentence(table: pd.DataFrame) -> str:
    """'Across N layers the mean IoU is X% (about Y% of each mask's kept weights are shared)'; with unequal
    budgets the shares of A's and of B's kept weights, each the mean over layers of ``S / |A|``, ``S / |B|``."""
    layers = _plural(len(table), "layer")
    mean_iou = float(table["iou"].mean())
    edges_a, edges_b = table["edges_a"].astype(float), table["edges_b"].astype(float)
    if (edges_a == edges_b).all():
        return (
            f"Across {layers} the mean IoU is {mean_iou:.0%} (about {shared_fraction(mean_iou):.0%} of each "
            "mask's kept weights are shared)"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        share_a = float(np.nanmean(table["shared_edges"] / edges_a.where(edges_a > 0)))
        share_b = float(np.nanmean(table["shared_edges"] / edges_b.where(edges_b > 0)))
    return (
        f"Across {layers} the mean IoU is {mean_iou:.0%} (about {share_a:.0%} of A's and {share_b:.0%} of "
        "B's kept weights are shared; their budgets differ)"
    )


def summarize(table: pd.DataFrame, *, top: int = 3, skipped=()) -> list[str]:
    """The plain-language summary of a comparison table (see :class:`MaskComparison`)."""
    if table.empty:
        return ["No layer to compare."]
    sentences = []
    if (table["iou"] == 1.0).all():
        sentences.append(f"A and B are the same mask in all {_plural(len(table), 'layer')}.")
    else:
        parts = [overlap_sentence(table)]
        imdb_a, imdb_b = table["delta_r_imdb_a"].mean(), table["delta_r_imdb_b"].mean()
        if np.isfinite(imdb_a) and np.isfinite(imdb_b) and abs(imdb_b - imdb_a) > 1e-9:
            word = "higher" if imdb_b > imdb_a else "lower"
            parts.append(f"B's mean {metric_symbol('delta_r_imdb')} is {_number(imdb_b - imdb_a)} {word}")
        sentences.append("; ".join(parts) + ".")
        ranked = table.assign(
            _dead=(table["dead_in_channels_delta"].abs() + table["dead_right_delta"].abs())
        ).sort_values(["u_distance", "_dead"], ascending=False, kind="stable")
        named = 0
        for _, row in ranked.iterrows():
            if named >= top:
                break
            text = describe_layer(row)
            if text:
                sentences.append(text + ".")
                named += 1
    for name, reason in skipped:
        sentences.append(f"{name} not compared: {reason}.")
    return sentences
