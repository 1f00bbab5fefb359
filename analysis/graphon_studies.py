"""G25's studies read back for the app, plus the graphon fingerprints and NTK spectra it draws on demand.

G25 (Pham et al., NeurIPS 2025, *The Graphon Limit Hypothesis*) make two claims this lab tests:
a method's masks converge to a graphon as width grows (:mod:`analysis.width_limit`), and NTKs
that concentrate their energy in few eigenvalues train faster early on
(:mod:`analysis.trainability`). ``scripts/make_graphon_studies.py`` caches both under
``cached_runs/graphon/``; this module reads those folders (:func:`load_width_study`,
:func:`load_trainability_study`), lists where the studies find the claims do **not** hold
(:func:`claims_not_holding`, from the cached verdicts, never hard-coded), and computes what the
page draws on demand: a generator's fingerprint on an MLP (:func:`mlp_fingerprint`), and the
empirical NTK spectrum of a set of masks on its zoo network (:func:`mask_ntk_spectrum`).

Estimates use ``K = 64`` blocks per side by default: this project's choice, not G25's (they
state none). The graphon NTK recursion is exact with a dense first layer and a mean-field
approximation with a sparse one (SPEC §7b); the empirical NTK is what is measured here.

>>> eig = pd.DataFrame({"generator": "random", "kind": "generator", "seed": [0, 0, 1, 1],
...                     "k": [1, 2, 1, 2], "eigenvalue": [3.0, 1.0, 1.0, 1.0]})
>>> spectrum_shares(eig)["share"].tolist()
[0.625, 0.375]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import Tensor

from analysis.trainability import verdict as trainability_verdict
from analysis.unrolled_view import zoo_network
from analysis.width_limit import mlp_family, read_width_estimates
from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.fingerprints import DEFAULT_K, Fingerprint, dataset_batch, generator_fingerprint
from fullspectrum.ntk import NTKSpectrum, empirical_ntk, ntk_spectrum

WIDTH_FILES = ("width_curves.csv", "width_verdicts.csv", "width_estimates.npz", "width_study.json")
TRAINABILITY_FILES = (
    "trainability_runs.csv", "trainability_curves.csv.gz", "trainability_eigenvalues.csv.gz",
    "trainability_summary.json",
)  # fmt: skip
SPECTRUM_FIELDS = ("lambda_max", "condition", "effective_rank", "top5_energy", "decay_alpha")


@dataclass(frozen=True)
class WidthStudy:
    """``analysis.width_limit``'s files of one folder."""

    curves: pd.DataFrame
    """``width_limit.CURVE_COLUMNS``."""
    verdicts: pd.DataFrame
    """``width_limit.VERDICT_COLUMNS``: per generator and layer, whether the successive-width curve falls."""
    estimates: dict
    """``(generator, width, layer)`` -> seed-mean block densities."""
    record: dict
    """``width_study.json``: config, versions, seconds, verdict sentences."""


@dataclass(frozen=True)
class TrainabilityStudy:
    """``analysis.trainability``'s files of one folder."""

    runs: pd.DataFrame
    """``trainability.RUN_COLUMNS``."""
    curves: pd.DataFrame
    """``generator, kind, seed, step, loss``."""
    eigenvalues: pd.DataFrame
    """``generator, kind, seed, k, eigenvalue``."""
    record: dict
    """``trainability_summary.json``: config, statistics, verdict, versions."""

    @property
    def verdict(self) -> str:
        """The study's paragraph, recomputed from its stored statistics."""
        return trainability_verdict(self.record["statistics"])


def _need(folder: Path, names) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FullSpectrumError(
            f"{folder}: {', '.join(missing)} missing; run scripts/make_graphon_studies.py"
        )


def load_width_study(folder: str | Path) -> WidthStudy:
    """Read a width-limit folder; a missing file is named in a one-line error."""
    folder = Path(folder)
    _need(folder, WIDTH_FILES)
    return WidthStudy(
        curves=pd.read_csv(folder / WIDTH_FILES[0]),
        verdicts=pd.read_csv(folder / WIDTH_FILES[1]),
        estimates=read_width_estimates(folder / WIDTH_FILES[2]),
        record=json.loads((folder / WIDTH_FILES[3]).read_text(encoding="utf-8")),
    )


def load_trainability_study(folder: str | Path) -> TrainabilityStudy:
    """Read a trainability folder; a missing file is named in a one-line error."""
    folder = Path(folder)
    _need(folder, TRAINABILITY_FILES)
    return TrainabilityStudy(
        runs=pd.read_csv(folder / TRAINABILITY_FILES[0]),
        curves=pd.read_csv(folder / TRAINABILITY_FILES[1]),
        eigenvalues=pd.read_csv(folder / TRAINABILITY_FILES[2]),
        record=json.loads((folder / TRAINABILITY_FILES[3]).read_text(encoding="utf-8")),
    )


def trainability_folders(root: str | Path) -> list[Path]:
    """The trainability study folders under a graphon root (standard and sparse-aware initialisation)."""
    root = Path(root)
    return sorted(p.parent for p in root.glob("*/trainability_summary.json"))


def claims_not_holding(width: WidthStudy | None, trainability: Mapping[str, TrainabilityStudy]) -> list[str]:
    """Where the cached studies find G25's claims do not hold, one sentence each (from their verdicts)."""
    lines = []
    if width is not None:
        for row in width.verdicts.to_dict("records"):
            # a curve that rises, stays flat (a ``flat`` column, where the study has one) or collapsed
            failed = (
                not row["falls"]
                or bool(row.get("flat", False))
                or str(row["verdict"]).startswith("collapsed")
            )
            if failed or "does NOT" in str(row["verdict"]):
                lines.append(f"Width limit, {row['generator']} {row['layer']}: {row['verdict']}.")
    for name, study in trainability.items():
        text = study.verdict
        if "does NOT hold" in text:
            lines.append(f"Trainability ({name}): " + text[text.index("G25's claim does NOT hold") :])
    return lines


def spectrum_shares(eigenvalues: pd.DataFrame, kind: str = "generator") -> pd.DataFrame:
    """Per generator, each eigenvalue's share of the trace ``λ_k / Σλ``, averaged over seeds: the shape
    of the spectrum, comparable across scales (``generator, k, share``)."""
    rows = eigenvalues[eigenvalues["kind"] == kind].copy()
    rows["eigenvalue"] = rows["eigenvalue"].clip(lower=0)  # round-off of a PSD matrix
    rows["share"] = rows["eigenvalue"] / rows.groupby(["generator", "seed"])["eigenvalue"].transform("sum")
    shares = rows.groupby(["generator", "k"], sort=False)["share"].mean().reset_index()
    return shares[["generator", "k", "share"]]


def mlp_fingerprint(
    generator: str,
    data: str,
    density: float,
    width: int,
    seeds: tuple[int, ...] = (0, 1, 2),
    K: int = DEFAULT_K,
) -> Fingerprint:
    """``generator``'s fingerprint on the two-hidden-layer MLP of ``width`` for ``data`` (fresh weights per seed;
    the data-driven generators score on 10 × classes training examples). ``K = 64``: this project's default."""
    build = mlp_family(data)
    batch = dataset_batch(data, 10 * load_dataset(data).num_classes)
    return generator_fingerprint(generator, lambda seed: build(width, seed), batch, density, seeds=seeds, K=K)


def mask_ntk_spectrum(
    masks: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    model: str,
    data: str,
    *,
    inputs: int = 64,
    model_options: Mapping | None = None,
    data_dir: str | None = None,
) -> NTKSpectrum:
    """The empirical NTK's spectral summary of ``masks`` on their zoo network with ``weights``, on the first
    ``inputs`` training examples of ``data`` (SPEC §7b: kept weights only, float64)."""
    net, _ = zoo_network(model, data, weights, model_options=model_options, data_dir=data_dir)
    x, _ = load_dataset(data, data_dir=data_dir).split("train").tensors(int(inputs))
    return ntk_spectrum(empirical_ntk(net, x, dict(masks)))


def summary_row(label: str, spectrum: NTKSpectrum) -> dict:
    """``label`` and the spectral summary's numbers, for a table."""
    return {"mask": label, **{name: float(getattr(spectrum, name)) for name in SPECTRUM_FIELDS}}


def eigenvalue_shares(label: str, spectrum: NTKSpectrum) -> pd.DataFrame:
    """``mask, k, share`` of one spectrum (``λ_k / Σλ``, negative round-off as 0)."""
    values = np.clip(spectrum.eigenvalues, 0, None)
    return pd.DataFrame({"mask": label, "k": np.arange(1, len(values) + 1), "share": values / values.sum()})
