"""analysis.graphon_studies: G25's cached studies read back, the claims that fail, fingerprints and NTK spectra."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.graphon_studies import (
    claims_not_holding,
    eigenvalue_shares,
    load_trainability_study,
    load_width_study,
    mask_ntk_spectrum,
    mlp_fingerprint,
    spectrum_shares,
    trainability_folders,
)
from analysis.trainability import (
    TrainabilityConfig,
    TrainabilityResult,
    summarise,
    verdict,
    write_trainability_study,
)
from analysis.unrolled_view import zoo_network
from analysis.width_limit import WidthLimitConfig, run_width_limit, write_width_study
from fullspectrum.data import load_dataset
from fullspectrum.errors import FullSpectrumError
from fullspectrum.ntk import empirical_ntk, ntk_spectrum


def tiny_trainability(slower_snip: bool) -> TrainabilityResult:
    """A trainability result from a hand-made run table (no training): SNIP more concentrated than Random,
    and descending faster (the claim holds) or slower (it does not)."""
    rows = []
    for seed in range(4):
        for generator, energy in (("random", 0.5 + 0.01 * seed), ("snip", 0.8 + 0.01 * seed)):
            fast = generator == "snip" and not slower_snip
            descent = (1.0 if fast else 0.5) + 0.05 * seed * (1 if not slower_snip else -1)
            if slower_snip and generator == "snip":
                descent = 0.2 - 0.03 * seed
            rows.append({"generator": generator, "kind": "generator", "seed": seed, "lambda_max": 1.0,
                         "condition": 10.0, "effective_rank": 2.0, "top5_energy": energy,
                         "decay_alpha": energy * 2, "collapsed": False, "loss_0": 2.3, "loss_end": 2.3 - descent,
                         "early_mean_loss": 2.3 - descent, "descent": descent, "steps_to_half": np.nan})  # fmt: skip
    runs = pd.DataFrame(rows)
    eigenvalues = pd.DataFrame(
        [{"generator": g, "kind": "generator", "seed": s, "k": k, "eigenvalue": 1.0 / k} for g in ("random", "snip")
         for s in range(4) for k in range(1, 5)]
    )  # fmt: skip
    curves = pd.DataFrame(
        {"generator": "random", "kind": "generator", "seed": 0, "step": [0, 10], "loss": [2.3, 2.0]}
    )
    config = TrainabilityConfig(generators=("random", "snip"), seeds=(0, 1, 2, 3), bootstrap=200)
    return TrainabilityResult(config, runs, curves, eigenvalues, summarise(runs, resamples=200), seconds=0.0)


@pytest.fixture(scope="module")
def graphon_root(tmp_path_factory):
    """``graphon/`` with a tiny real width study and two hand-made trainability studies."""
    root = tmp_path_factory.mktemp("graphon") / "graphon"
    config = WidthLimitConfig(generators=("random", "snip"), widths=(16, 32, 64), seeds=(0, 1), K=4)
    write_width_study(run_width_limit(config), root / "width")
    write_trainability_study(tiny_trainability(slower_snip=False), root / "trainability")
    write_trainability_study(tiny_trainability(slower_snip=True), root / "trainability_sparse_init")
    return root


def test_studies_read_back_and_the_failing_claims_come_from_their_verdicts(graphon_root):
    width = load_width_study(graphon_root / "width")
    assert set(width.verdicts["generator"]) == {"random", "snip"} and len(width.curves)
    assert {(g, n) for g, n, _ in width.estimates} == {
        (g, n) for g in ("random", "snip") for n in (16, 32, 64)
    }
    folders = trainability_folders(graphon_root)
    assert [f.name for f in folders] == ["trainability", "trainability_sparse_init"]
    studies = {f.name: load_trainability_study(f) for f in folders}
    assert studies["trainability"].verdict == verdict(studies["trainability"].record["statistics"])
    assert "holds here" in studies["trainability"].verdict
    assert "does NOT hold" in studies["trainability_sparse_init"].verdict
    lines = claims_not_holding(width, studies)
    verdicts = width.verdicts
    failing = verdicts[
        ~verdicts["falls"] | verdicts.get("flat", False) | verdicts["verdict"].str.contains("collapsed|NOT")
    ]
    width_lines = [line for line in lines if line.startswith("Width limit")]
    assert len(width_lines) == len(failing)
    text = studies["trainability_sparse_init"].verdict
    assert [line for line in lines if line.startswith("Trainability")] == [
        "Trainability (trainability_sparse_init): " + text[text.index("G25's claim does NOT hold") :]
    ]


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FullSpectrumError, match="width_curves.csv") as error:
        load_width_study(tmp_path)
    assert "make_graphon_studies" in str(error.value) and "\n" not in str(error.value)


def test_spectrum_shares_are_seed_means_of_trace_shares():
    eig = tiny_trainability(False).eigenvalues
    shares = spectrum_shares(eig)
    h = sum(1.0 / k for k in range(1, 5))
    assert shares[shares["generator"] == "snip"]["share"].tolist() == pytest.approx(
        [1 / k / h for k in range(1, 5)]
    )
    assert shares.groupby("generator")["share"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_fingerprint_of_random_is_flat_at_the_density():
    fp = mlp_fingerprint("random", "digits", 0.25, 64, seeds=(0, 1), K=4)
    assert fp.K == 4 and set(fp.layers) == {"features.1.weight", "features.3.weight", "classifier.weight"}
    assert abs(fp.mean["features.3.weight"].mean() - 0.25) < 0.03


def test_mask_ntk_spectrum_is_the_librarys_on_the_zoo_network():
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    masks = {"features.1.weight": torch.rand(256, 64, generator=generator) < 0.1}
    weights = {"features.1.weight": torch.randn(256, 64, generator=generator)}
    got = mask_ntk_spectrum(masks, weights, "mlp", "digits", inputs=6)
    net, _ = zoo_network("mlp", "digits", weights)
    x, _ = load_dataset("digits").split("train").tensors(6)
    expected = ntk_spectrum(empirical_ntk(net, x, masks))
    assert got.eigenvalues == pytest.approx(expected.eigenvalues)
    shares = eigenvalue_shares("m", got)
    assert shares["share"].sum() == pytest.approx(1.0) and shares["k"].tolist() == list(range(1, 7))
