"""IMP's integer schedule, global magnitude masks, the kept-set distance and the Early-Bird criterion.

Each is checked against a hand count or a plain re-implementation written here
(integer arithmetic, sorting), never against the library's own helpers.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from fullspectrum.errors import FullSpectrumError, MaskError
from fullspectrum.tickets import (
    EarlyBirdConfig,
    LotteryConfig,
    check_epoch,
    classifier_name,
    early_bird_checks,
    early_bird_epoch,
    global_magnitude_mask,
    imp_levels,
    kept_set_distance,
    target_count,
)
from fullspectrum.training import TrainConfig

# -- the schedule --------------------------------------------------------------------------------------


def oracle_levels(n: int, density: float) -> list[int]:
    """``c_r = c_{r-1} - ceil(c_{r-1} / 5)`` in integers, the last one replaced by round(d·N)."""
    target, counts = round(density * n), [n]
    while counts[-1] > target:
        counts.append(max(counts[-1] - (counts[-1] + 4) // 5, target))
    return counts


def test_schedule_by_hand():
    # 592 - ceil(118.4) = 473; 473 - ceil(94.6) = 378; 378 - ceil(75.6) = 302; 302 - 61 = 241 < 296
    assert imp_levels(592, 0.5) == (592, 473, 378, 302, 296)
    assert imp_levels(15, 0.5) == (15, 12, 9, 8)  # ceil(0.2 · 15) = 3 exactly, not 4 as in floats
    assert imp_levels(10, 0.9) == (10, 9)  # the first level already reaches the target


@pytest.mark.parametrize("n", [200, 999, 50432, 272_474, 11_173_962])
@pytest.mark.parametrize("density", [0.01, 0.05, 0.1, 0.37, 0.8])
def test_schedule_matches_the_integer_recurrence_and_lands_on_the_target(n, density):
    counts = imp_levels(n, density)
    assert list(counts) == oracle_levels(n, density)
    assert counts[0] == n and counts[-1] == round(density * n)
    assert all(later < earlier for earlier, later in itertools.pairwise(counts))


@pytest.mark.parametrize("n", [50432, 272_474, 11_173_962])
def test_twenty_one_levels_at_one_percent(n):
    assert len(imp_levels(n, 0.01)) - 1 == 21


@pytest.mark.parametrize(
    ("n", "density", "match"),
    [
        (100, 0.0, "in \\(0, 1\\)"),
        (100, 1.0, "in \\(0, 1\\)"),
        (100, 0.004, "keeps round"),
        (100, 0.996, "keeps all"),
    ],
)
def test_schedule_refuses_a_density_that_prunes_nothing_or_everything(n, density, match):
    with pytest.raises(FullSpectrumError, match=match):
        imp_levels(n, density)


def test_target_count():
    assert target_count(592, 0.5) == 296 and target_count(1000, 0.01) == 10


# -- global magnitude masks ------------------------------------------------------------------------------


def test_global_magnitude_mask_by_hand():
    weights = {"a": torch.tensor([[0.5, -3.0], [0.1, 2.5]]), "b": torch.tensor([-2.0, 0.2, 1.0])}
    masks = global_magnitude_mask(weights, 3)  # |w|: 3.0, 2.5, 2.0 are the three largest
    assert masks["a"].tolist() == [[False, True], [False, True]]
    assert masks["b"].tolist() == [True, False, False]
    assert all(mask.dtype == torch.bool for mask in masks.values())


def test_within_keeps_the_result_inside_the_current_mask():
    weights = {"a": torch.tensor([9.0, 1.0, 2.0, 3.0])}
    within = {"a": torch.tensor([False, True, True, True])}  # the largest |w| is already pruned
    assert global_magnitude_mask(weights, 2, within=within)["a"].tolist() == [False, False, True, True]
    with pytest.raises(MaskError, match="cannot keep 4"):
        global_magnitude_mask(weights, 4, within=within)


def test_a_weight_left_out_of_prunable_keeps_its_mask():
    weights = {"a": torch.tensor([1.0, 2.0]), "fc": torch.tensor([0.0, 0.0, 0.0])}
    masks = global_magnitude_mask(weights, 1, prunable=["a"])
    assert masks["a"].tolist() == [False, True] and masks["fc"].tolist() == [True, True, True]
    within = {"a": torch.tensor([True, True]), "fc": torch.tensor([True, False, True])}
    assert global_magnitude_mask(weights, 1, within=within, prunable=["a"])["fc"].tolist() == [
        True,
        False,
        True,
    ]


def test_magnitude_masks_against_sorting_on_random_weights():
    generator = torch.Generator().manual_seed(0)
    weights = {name: torch.randn(shape, generator=generator) for name, shape in [("x", (7, 5)), ("y", (11,))]}
    flat = torch.cat([w.flatten() for w in weights.values()]).abs()
    for kept in (1, 13, 46):
        masks = global_magnitude_mask(weights, kept)
        chosen = torch.cat([m.flatten() for m in masks.values()])
        assert int(chosen.sum()) == kept
        assert flat[chosen].min() > flat[~chosen].max() if kept < flat.numel() else True


def test_classifier_is_the_last_maskable_weight():
    assert (
        classifier_name(["features.1.weight", "features.3.weight", "classifier.weight"])
        == "classifier.weight"
    )


# -- the kept-set distance and the Early-Bird criterion -----------------------------------------------------


def mask_with(kept: set[int], size: int = 40) -> dict[str, torch.Tensor]:
    """A mask over ``size`` weights (split in two layers) keeping the indices in ``kept``."""
    flat = torch.zeros(size, dtype=torch.bool)
    flat[list(kept)] = True
    return {"first": flat[: size // 2].clone(), "second": flat[size // 2 :].clone()}


def swapped(kept: set[int], out: list[int], into: list[int]) -> set[int]:
    return (kept - set(out)) | set(into)


def test_kept_set_distance_by_hand():
    base = set(range(20))
    assert kept_set_distance(mask_with(base), mask_with(base)) == 0.0
    assert kept_set_distance(mask_with(base), mask_with(swapped(base, [0], [30]))) == 1 / 20
    assert kept_set_distance(mask_with(base), mask_with(set(range(20, 40)))) == 1.0
    assert kept_set_distance(mask_with(base), mask_with(swapped(base, [0, 1], [30, 31]))) == 0.1  # exactly
    with pytest.raises(MaskError, match="same nonzero size"):
        kept_set_distance(mask_with(base), mask_with(set(range(5))))


def scripted_sequence() -> list[dict[str, torch.Tensor]]:
    """k = 20 of 40 weights; epoch 2 swaps 3 kept weights, epoch 3 one more, then nothing moves."""
    e1 = set(range(20))
    e2 = swapped(e1, [0, 1, 2], [20, 21, 22])  # 3 of 20 changed: 0.15
    e3 = swapped(e2, [3], [23])  # 0.05 from e2, 0.2 from e1
    return [mask_with(kept) for kept in (e1, e2, e3, e3, e3, e3, e3)]


def test_early_bird_criterion_on_a_scripted_sequence():
    checks = early_bird_checks(scripted_sequence())
    assert [check.epoch for check in checks] == [1, 2, 3, 4, 5, 6, 7]
    assert checks[0].distances == () and checks[1].distances == (0.15,)
    assert checks[2].distances == (0.05, 0.2)
    assert checks[4].distances == (0.0, 0.0, 0.05, 0.2)  # epoch 5 still sees epoch 1 (0.2)
    assert checks[5].distances == (0.0, 0.0, 0.0, 0.05)  # epoch 6: all four below 0.1
    assert [check.emerged for check in checks] == [False] * 5 + [True, True]
    assert early_bird_epoch(scripted_sequence()) == 6


def test_a_distance_of_exactly_the_threshold_does_not_count():
    e1 = set(range(20))
    e2 = swapped(e1, [0, 1], [20, 21])  # 2 of 20 = 0.1, not below it
    masks = [mask_with(kept) for kept in (e1, e2, e2, e2, e2)]
    assert check_epoch(masks).distances == (0.0, 0.0, 0.0, 0.1)
    assert not check_epoch(masks).emerged
    assert check_epoch([*masks, mask_with(e2)]).emerged  # one epoch later e1 is out of the window


def test_no_epoch_qualifies_then_the_last_one_is_the_ticket():
    moving = [
        mask_with(set(range(start, start + 20))) for start in range(0, 14, 2)
    ]  # 2 of 20 move each epoch
    assert not any(check.emerged for check in early_bird_checks(moving))
    assert early_bird_epoch(moving) == len(moving)
    assert early_bird_epoch(scripted_sequence()[:3]) == 3  # fewer than five epochs: the last
    assert early_bird_epoch(scripted_sequence(), window=1) == 3  # epoch 3 is 0.05 from epoch 2
    with pytest.raises(FullSpectrumError, match="at least one"):
        early_bird_epoch([])


# -- configurations ---------------------------------------------------------------------------------------


def test_configs_round_trip_and_store_flat():
    train = TrainConfig(model="mlp", epochs=3, lr=0.1, seed=4)
    lottery = LotteryConfig(train, density=0.2, rewind_iters=7, keep_classifier_dense=True)
    stored = lottery.as_dict()
    assert stored["model"] == "mlp" and stored["density"] == 0.2 and stored["method"] == "lottery"
    assert LotteryConfig.from_dict(stored) == lottery
    early = EarlyBirdConfig(train, density=0.05)
    assert EarlyBirdConfig.from_dict(early.as_dict()) == early
    # the fields each training sets itself do not make two searches differ
    assert LotteryConfig(TrainConfig(epochs=3, lr=0.1, seed=4, method="rigl", density=0.3), density=0.2,
                         rewind_iters=7, keep_classifier_dense=True) == lottery  # fmt: skip


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LotteryConfig(density=1.0), "density"),
        (lambda: LotteryConfig(density=0.0), "density"),
        (lambda: LotteryConfig(density=0.1, rewind_iters=-1), "rewind_iters"),
        (lambda: LotteryConfig(TrainConfig(mask="m.pt", method="static"), density=0.1), "mask"),
        (lambda: LotteryConfig(TrainConfig(sparse_init=True), density=0.1), "sparse_init"),
        (lambda: EarlyBirdConfig(density=1.5), "density"),
        (lambda: EarlyBirdConfig(density=0.1, window=0), "window"),
        (lambda: EarlyBirdConfig.from_dict({**LotteryConfig(density=0.1).as_dict()}), "not a earlybird"),
    ],
)
def test_configs_refuse_bad_values(make, match):
    with pytest.raises(FullSpectrumError, match=match):
        make()
