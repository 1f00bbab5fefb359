"""Tests for analysis.trainability: NTK concentration at initialisation beside early descent (G25)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from analysis.trainability import (
    RUN_COLUMNS,
    TrainabilityConfig,
    bootstrap_correlation,
    density_only_masks,
    read_trainability_study,
    run_trainability,
    summarise,
    t_interval,
    verdict,
    write_trainability_study,
)
from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.fingerprints import mask_seed
from fullspectrum.models import build_model
from fullspectrum.ntk import empirical_ntk, ntk_spectrum
from fullspectrum.pruning import generate_masks

T_975_DF2 = 0.95 / np.sqrt(2 * 0.975 * 0.025)  # Student t, 2 dof: t_p = (2p - 1)/sqrt(2p(1 - p))


def test_t_interval_against_hand_computed_values():
    ci = t_interval([0.3, 0.2, 0.4])  # mean 0.3, sd 0.1
    half = T_975_DF2 * 0.1 / np.sqrt(3)
    assert (ci["mean"], ci["low"], ci["high"], ci["n"]) == pytest.approx((0.3, 0.3 - half, 0.3 + half, 3))
    assert t_interval([np.nan, 1.0])["n"] == 1


def test_bootstrap_correlation_against_scipy_and_a_perfect_line():
    line = bootstrap_correlation([1, 2, 3, 4, 5], [3, 5, 7, 9, 11], resamples=300)
    assert line["pearson"] == pytest.approx(1.0) and line["spearman_low"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(30)
    y = x + rng.standard_normal(30)
    got = bootstrap_correlation(x, y, resamples=500, seed=3)
    assert got["pearson"] == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-12)
    assert got["spearman"] == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-12)
    assert got["pearson_low"] < got["pearson"] < got["pearson_high"]
    assert got == bootstrap_correlation(x, y, resamples=500, seed=3)  # seeded
    flat = bootstrap_correlation([1, 1, 1], [1, 2, 3])
    assert np.isnan(flat["pearson"]) and flat["resamples_used"] == 0


def _runs() -> pd.DataFrame:
    rows = []
    table = {  # (generator, kind): per seed (descent, top5_energy, collapsed)
        ("random", "generator"): [(0.1, 0.99, False), (0.2, 0.98, False), (0.3, 0.97, False)],
        ("snip", "generator"): [(0.4, 0.90, False), (0.4, 0.91, False), (0.7, 0.85, False)],
        ("snip", "density_only"): [(0.1, 0.99, False), (0.1, 0.99, False), (0.2, 0.99, False)],
        ("magnitude", "generator"): [(0.0, 1.0, True), (0.0, 1.0, True), (0.0, 1.0, True)],
    }
    for (generator, kind), values in table.items():
        for seed, (descent, top5, collapsed) in enumerate(values):
            rows.append(dict(generator=generator, kind=kind, seed=seed, descent=descent, top5_energy=top5,
                             decay_alpha=10 * top5, collapsed=collapsed))  # fmt: skip
    return pd.DataFrame(rows)


def test_the_statistics_against_hand_computed_values():
    s = summarise(_runs(), resamples=200)
    # snip - random by seed: 0.3, 0.2, 0.4 -> mean 0.3, sd 0.1
    half = T_975_DF2 * 0.1 / np.sqrt(3)
    vs = s["vs_random"]["snip"]
    assert (vs["mean"], vs["low"], vs["high"]) == pytest.approx((0.3, 0.3 - half, 0.3 + half))
    assert s["vs_random"]["random"]["mean"] == 0.0
    # snip - its density-only masks: 0.3, 0.3, 0.5 -> mean 11/30
    assert s["vs_density_only"]["snip"]["mean"] == pytest.approx(11 / 30)
    assert "magnitude" not in s["vs_density_only"]
    assert s["per_generator"]["magnitude"]["generator"]["collapsed_runs"] == 3
    assert s["per_generator"]["snip"]["generator"]["descent"]["mean"] == pytest.approx(0.5)
    # correlations over the 6 live runs of kind "generator": the 3 collapsed ones are left out
    c = s["correlations"]["top5_energy"]
    live = _runs().query("kind == 'generator' and not collapsed")
    assert (c["n"], c["runs_all"], c["excluded"]) == (6, 9, 3)
    assert c["spearman"] == pytest.approx(stats.spearmanr(live.top5_energy, live.descent)[0])
    assert c["spearman"] < 0
    text = verdict(s)
    assert "does NOT hold" in text and "SLOWER" in text
    assert "snip descends faster than Random" in text


def test_the_verdict_says_when_the_claim_holds():
    runs = _runs()
    runs.loc[runs.kind == "generator", "top5_energy"] = 1 - runs.loc[runs.kind == "generator", "top5_energy"]
    runs["decay_alpha"] = runs.top5_energy
    text = verdict(summarise(runs, resamples=200))
    assert "G25's claim holds here" in text, text


def test_density_only_masks_keep_each_layers_count_and_move_the_weights():
    masks = {"a": torch.eye(8, dtype=torch.bool), "b": torch.zeros(3, 4, dtype=torch.bool)}
    got = density_only_masks(masks, seed=0)
    assert int(got["a"].sum()) == 8 and int(got["b"].sum()) == 0
    assert not torch.equal(got["a"], masks["a"])
    assert all(torch.equal(got[k], v) for k, v in density_only_masks(masks, seed=0).items())


def test_bad_configs_are_refused():
    with pytest.raises(FullSpectrumError, match="'random'"):
        TrainabilityConfig(generators=("snip",))
    with pytest.raises(FullSpectrumError, match="two seeds"):
        TrainabilityConfig(seeds=(0,))


@pytest.mark.slow
def test_the_study_runs_end_to_end_on_a_tiny_setting(tmp_path):
    config = TrainabilityConfig(
        generators=("random", "snip"), seeds=(0, 1), widths=(16,), ntk_inputs=8, iterations=20, eval_every=10,
        bootstrap=50,
    )  # fmt: skip
    result = run_trainability(config)
    runs = result.runs
    assert list(runs.columns) == list(RUN_COLUMNS) and len(runs) == 2 * 2 * 2
    assert sorted(result.curves.step.unique()) == [0, 10, 20]
    for row in runs.itertuples():
        curve = result.curves.query(
            f"generator == '{row.generator}' and kind == '{row.kind}' and seed == {row.seed}"
        )
        assert row.descent == pytest.approx(1 - curve.loss.mean() / curve.loss.iloc[0])
        assert row.loss_0 == pytest.approx(curve.loss.iloc[0])
    # the NTK and the training start from one network: rebuild seed 1's snip net by hand
    splits = load_dataset("digits", flatten=True)
    torch.manual_seed(1)
    model = build_model("mlp", 10, (64,), widths=(16,))
    x, y = splits.split("train").tensors(100)
    masks = generate_masks(model, "snip", 0.05, data=[(x, y)], seed=mask_seed(1)).masks
    spectrum = ntk_spectrum(empirical_ntk(model, x[:8], masks))
    row = runs.query("generator == 'snip' and kind == 'generator' and seed == 1").iloc[0]
    assert row.top5_energy == pytest.approx(spectrum.top5_energy, rel=1e-9)
    eig = result.eigenvalues.query("generator == 'snip' and kind == 'generator' and seed == 1").eigenvalue
    np.testing.assert_allclose(eig, spectrum.eigenvalues, rtol=1e-9)
    with torch.no_grad():  # the step-0 loss is this masked network's loss on the validation split
        for name, p in model.named_parameters():
            if name in masks:
                p.mul_(masks[name])
        xv, yv = splits.split("val").tensors()
        assert row.loss_0 == pytest.approx(float(F.cross_entropy(model.eval()(xv), yv)), rel=1e-5)
    paths = write_trainability_study(result, tmp_path)
    record = json.loads(paths[-1].read_text())
    assert record["config"]["seeds"] == [0, 1] and "G25" in record["verdict"] and record["versions"]["torch"]
    assert len(pd.read_csv(paths[0])) == len(runs)


CACHED = Path(__file__).resolve().parents[1] / "cached_runs" / "graphon"


@pytest.mark.parametrize("folder", ["trainability", "trainability_sparse_init"])
def test_the_cached_study_is_whole_and_its_statistics_follow_from_its_runs(folder):
    study = read_trainability_study(CACHED / folder)
    runs, record = study["runs"], study["record"]
    assert list(runs.columns) == list(RUN_COLUMNS)
    config = record["config"]
    assert len(runs) == len(config["generators"]) * len(config["seeds"]) * 2
    assert record["versions"]["torch"] and record["verdict"].startswith("top5_energy")
    # every run's descent is its curve's (the curves are what the runs were computed from)
    curves = study["curves"].groupby(["generator", "kind", "seed"]).loss
    first, mean = curves.first(), curves.mean()
    got = runs.set_index(["generator", "kind", "seed"]).descent
    np.testing.assert_allclose(got, (1 - mean / first).reindex(got.index), rtol=1e-4, atol=1e-5)
    assert (study["eigenvalues"].groupby(["generator", "kind", "seed"]).size() == config["ntk_inputs"]).all()
    # the stored statistics are summarise() of the stored runs (to the CSV's 6 significant digits)
    runs["collapsed"] = runs.collapsed.astype(bool)
    again = summarise(runs, resamples=config["bootstrap"])
    for g, ci in record["statistics"]["vs_random"].items():
        assert again["vs_random"][g]["mean"] == pytest.approx(ci["mean"], abs=1e-4)
    c = record["statistics"]["correlations"]["top5_energy"]
    assert again["correlations"]["top5_energy"]["spearman"] == pytest.approx(c["spearman"], abs=1e-3)
