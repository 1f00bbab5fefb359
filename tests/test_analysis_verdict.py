"""analysis.dead_paths, analysis.evidence and analysis.verdict: cross-layer dead paths, the runs that
measured a mask, and the verdict that sets predictions beside measurements."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.compare import overlap_sentence, shared_fraction
from analysis.dead_paths import dead_links, wasted_weight_count
from analysis.evidence import (
    EXACT,
    MADE,
    Measured,
    TrainedRun,
    evidence_table,
    mask_digest,
    measured_accuracy,
)
from analysis.verdict import PREDICTORS, MaskPair, Prediction, mask_verdict
from fullspectrum.runs import RunStore
from tests.app_fixtures import make_run


def _random_masks(seed: int, shapes=((12, 16), (10, 12), (4, 10)), density=0.3) -> dict:
    rng = np.random.default_rng(seed)
    return {
        f"fc{i + 1}.weight": torch.from_numpy(rng.random(shape) < density) for i, shape in enumerate(shapes)
    }


# -- dead paths ------------------------------------------------------------------------------------------


def _brute_force(masks: dict) -> tuple[list, int]:
    """Per pair (dead outputs, useless inputs, useless weights), and the union of wasted weights, by loops."""
    arrays = [m.numpy() for m in masks.values()]
    wasted = [np.zeros_like(a) for a in arrays]
    per_pair = []
    for index, (up, down) in enumerate(zip(arrays, arrays[1:], strict=False)):
        dead = [j for j in range(up.shape[0]) if not up[j].any()]
        useless = [j for j in dead if down[:, j].any()]
        per_pair.append((len(dead), len(useless), int(sum(down[:, j].sum() for j in dead))))
        for j in range(up.shape[0]):
            for i in range(down.shape[0]):
                if down[i, j] and j in dead:
                    wasted[index + 1][i, j] = True
            if up[j].any() and not down[:, j].any():
                wasted[index][j] |= up[j]
    return per_pair, int(sum(w.sum() for w in wasted))


@pytest.mark.parametrize("seed", range(5))
def test_dead_links_match_a_brute_force_count(seed):
    masks = _random_masks(seed, density=0.12)  # sparse enough for dead units
    links = dead_links(masks)
    per_pair, wasted = _brute_force(masks)
    assert [(k.dead_outputs, k.useless_inputs, k.useless_weights) for k in links] == per_pair
    assert wasted_weight_count(masks) == wasted
    assert [k.upstream for k in links] == ["fc1", "fc2"] and [k.downstream for k in links] == ["fc2", "fc3"]


def test_dead_links_skip_pairs_whose_sizes_do_not_match_and_name_their_layers():
    masks = {
        "features.1.weight": torch.zeros(4, 3, dtype=torch.bool),
        "classifier.weight": torch.ones(2, 9, dtype=torch.bool),
    }
    assert dead_links(masks) == []  # a flatten in between: no pairing
    masks = {"features.1.weight": torch.tensor([[1, 0], [0, 0], [0, 0]], dtype=torch.bool),
             "features.3.weight": torch.ones(2, 3, dtype=torch.bool)}  # fmt: skip
    link = dead_links(masks)[0]
    assert link.sentence() == (
        "2 dead outputs of `features.1` make 2 inputs of `features.3` useless (4 kept weights there carry nothing)"
    )
    assert dead_links(_random_masks(0, density=1.0))[0].sentence() == ""  # nothing wasted


# -- the IoU sentence ------------------------------------------------------------------------------------


def test_shared_fraction_is_the_share_of_each_masks_weights():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.random(200) < 0.3, rng.random(200) < rng.uniform(0.1, 0.5)
        shared, union = (a & b).sum(), (a | b).sum()
        assert shared_fraction(shared / union, a.sum(), b.sum()) == pytest.approx(shared / a.sum())
    assert shared_fraction(0.41) == pytest.approx(0.5816, abs=1e-4)  # 0.41 IoU is 58% shared, not 41%


def test_overlap_sentence_wording():
    table = pd.DataFrame(
        {"iou": [0.4, 0.42], "edges_a": [10, 20], "edges_b": [10, 20], "shared_edges": [5, 12]}
    )
    assert overlap_sentence(table) == (
        "Across 2 layers the mean IoU is 41% (about 58% of each mask's kept weights are shared)"
    )
    unequal = table.assign(edges_b=[20, 40])
    assert "of A's and" in overlap_sentence(unequal) and "budgets differ" in overlap_sentence(unequal)


# -- evidence --------------------------------------------------------------------------------------------


def test_mask_digest_sees_every_bit_and_name():
    masks = _random_masks(0)
    flipped = {**masks, "fc2.weight": masks["fc2.weight"].clone()}
    flipped["fc2.weight"][0, 0] ^= True
    renamed = {"other." + k: v for k, v in masks.items()}
    assert len({mask_digest(masks), mask_digest(flipped), mask_digest(renamed)}) == 3
    assert mask_digest(masks) == mask_digest({k: v.numpy() for k, v in masks.items()})


def _table(root) -> tuple[pd.DataFrame, dict]:
    runs = pd.DataFrame([{"kind": "train", "path": str(p), **RunStore.open(p).info["config"],
                          "seed": RunStore.open(p).info["seed"],
                          "final_accuracy": RunStore.open(p).info["final"]["test_accuracy"]}
                         for p in sorted(root.iterdir())])  # fmt: skip
    digests = {str(p): mask_digest(RunStore.open(p).load_masks(0)) for p in root.iterdir()}
    return evidence_table(runs, digests), digests


def test_measured_accuracy_finds_the_runs_that_trained_this_very_mask(tmp_path):
    for seed, accuracy in ((0, 0.95), (1, 0.97)):
        make_run(
            tmp_path / f"static_{seed}",
            density=0.05,
            seed=seed,
            accuracy=accuracy,
            method="static",
            mask_seed=7,
        )
    make_run(tmp_path / "itop_0", density=0.0500079, seed=0, accuracy=0.80, method="itop")
    make_run(tmp_path / "itop_1", density=0.05, seed=1, accuracy=0.84, method="itop")
    table, digests = _table(tmp_path)
    measured = measured_accuracy(
        ("run", str(tmp_path / "static_0"), 0), digests[str(tmp_path / "static_0")], table
    )
    assert measured.how == EXACT and [r.seed for r in measured.runs] == [0, 1]
    assert measured.mean == pytest.approx(0.96)
    low, high = measured.ci
    assert low < 0.95 < 0.97 < high  # t with 1 degree of freedom is wide
    # a dynamic run's final mask: the run that made it and its sibling seeds at the requested density
    made = measured_accuracy(("run", str(tmp_path / "itop_0"), 30), "not-a-step-0-mask", table)
    assert made.how == MADE and [r.accuracy for r in made.runs] == [0.80, 0.84]
    assert measured_accuracy(("candidate", "x", -1), "unknown", table) is None


def _prediction(favours: str) -> Prediction:
    return Prediction("stub", favours, 1.0, 0.0, "higher", "stub")


def test_verdict_says_plainly_when_measured_disagrees_with_predicted():
    pair = MaskPair.of(_random_masks(1), _random_masks(2))
    better = Measured(
        EXACT, tuple(TrainedRun(f"b{s}", "static", s, v) for s, v in enumerate((0.96, 0.965, 0.97)))
    )
    worse = Measured(
        EXACT, tuple(TrainedRun(f"a{s}", "static", s, v) for s, v in enumerate((0.90, 0.905, 0.91)))
    )
    predictors = {"stub": lambda pair: _prediction("A")}
    verdict = mask_verdict(pair, worse, better, predictors=predictors)
    assert (verdict.predicted, verdict.measured, verdict.agrees) == ("A", "B", False)
    assert any("disagrees with the prediction: B trained better" in s for s in verdict.sentences)
    agreeing = mask_verdict(pair, better, worse, predictors=predictors)
    assert agreeing.agrees is True and any("agrees" in s for s in agreeing.sentences)
    untested = mask_verdict(pair, None, None, predictors=predictors)
    assert untested.agrees is None and any("untested" in s for s in untested.sentences)
    noisy = Measured(EXACT, (TrainedRun("c0", "static", 0, 0.85), TrainedRun("c1", "static", 1, 0.99)))
    assert mask_verdict(pair, noisy, better, predictors=predictors).measured == "tie"
    table = verdict.table()
    assert list(table["predictor"]) == ["stub", "measured test accuracy (mean over seeds)"]
    assert list(table["favours"]) == ["A", "B"]


def test_every_registered_predictor_names_itself_and_a_direction():
    pair = MaskPair.of(_random_masks(1, density=0.15), _random_masks(2, density=0.15))
    for name, predictor in PREDICTORS.items():
        prediction = predictor(pair)
        assert prediction is not None and prediction.predictor == name
        assert prediction.better in ("higher", "lower") and prediction.favours in ("A", "B", None)
        assert math.isfinite(prediction.value_a) or math.isfinite(prediction.value_b)
    hollow = {name: torch.zeros_like(mask) for name, mask in _random_masks(1).items()}
    hollow["fc1.weight"][:, 0] = True  # degree-1 inputs: no class qualifies
    assert PREDICTORS["Δr_imdb"](MaskPair.of(hollow, _random_masks(2))).favours == "B"
    same = MaskPair.of(_random_masks(1), _random_masks(1))
    verdict = mask_verdict(same)
    assert verdict.predicted is None and verdict.sentences[0].startswith("A and B are the same mask")
