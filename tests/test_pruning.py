"""Mask generators (SPEC §6b): registry-wide invariants and per-method oracles on tiny nets."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fullspectrum.errors import MaskError, UnknownNameError
from fullspectrum.pruning import (
    GENERATOR_NAMES,
    GENERATORS,
    LayerCollapseWarning,
    apply_masks,
    apportion,
    compute_scores,
    erk_densities,
    generate_masks,
    maskable_parameters,
    top_k_global,
    top_k_per_layer,
)

N_CLASSES = 5
# tiny nets at low density collapse layers now and then; the collapse test checks the warning itself
pytestmark = pytest.mark.filterwarnings("ignore::fullspectrum.pruning.LayerCollapseWarning")


def tiny_cnn() -> nn.Module:
    """Conv stem, BatchNorm, 1x1 shortcut-like conv, grouped conv (not maskable), classifier."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2),
        nn.Conv2d(8, 6, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, N_CLASSES),
    )


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 4))


def image_batches(n: int = 80, batch: int = 16, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=generator)
    y = torch.randint(0, N_CLASSES, (n,), generator=generator)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def vector_batch(n: int = 12, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=generator), torch.randint(0, 4, (n,), generator=generator)


# nm's density is N/M, not chosen: tests/test_nm_generator.py checks the same invariants at its own density
DENSITY_GENERATORS = tuple(name for name in GENERATOR_NAMES if GENERATORS[name].scope != "group")


def fast_options(method: str) -> dict:
    return {"rounds": 4} if method in ("iter_snip", "synflow") else {}


# ---------------------------------------------------------------- registry-wide


@pytest.mark.parametrize("method", DENSITY_GENERATORS)
@pytest.mark.parametrize("density", [0.05, 0.3, 1.0])
def test_exact_density_shapes_and_dtype(method, density):
    model = tiny_cnn()
    result = generate_masks(model, method, density, data=image_batches(), seed=3, **fast_options(method))
    layers = maskable_parameters(model)
    assert list(result.masks) == [name for name, _, _ in layers]
    for name, _, param in layers:
        assert result.masks[name].dtype == torch.bool
        assert result.masks[name].shape == param.shape
    total = sum(param.numel() for _, _, param in layers)
    assert result.total == total
    assert result.kept == round(density * total)
    if method == "random":
        for mask in result.masks.values():
            assert abs(int(mask.sum()) - density * mask.numel()) < 1.0


@pytest.mark.parametrize("method", DENSITY_GENERATORS)
def test_deterministic_for_a_seed(method):
    model, data = tiny_cnn(), image_batches()
    first = generate_masks(model, method, 0.2, data=data, seed=7, **fast_options(method))
    second = generate_masks(model, method, 0.2, data=data, seed=7, **fast_options(method))
    assert all(torch.equal(first.masks[name], second.masks[name]) for name in first.masks)
    if method in ("random", "er", "erk"):
        other = generate_masks(model, method, 0.2, data=data, seed=8)
        assert any(not torch.equal(first.masks[name], other.masks[name]) for name in first.masks)


@pytest.mark.parametrize("method", DENSITY_GENERATORS)
@pytest.mark.parametrize("training", [True, False])
def test_model_rng_and_mode_left_untouched(method, training):
    model = tiny_cnn()
    model.train(training)
    model[4].train(not training)  # a mixed state must come back module by module
    flags = [module.training for module in model.modules()]
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    options = {**fast_options(method), **({"train_mode": True} if GENERATORS[method].uses_data else {})}
    generate_masks(model, method, 0.1, data=image_batches(), seed=0, **options)
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)  # weights, signs, BN statistics
    assert all(param.grad is None for param in model.parameters())
    assert [module.training for module in model.modules()] == flags
    assert torch.equal(torch.get_rng_state(), rng)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown mask generator 'snipp'; choose from .*synflow"):
        generate_masks(tiny_mlp(), "snipp", 0.1)
    with pytest.raises(UnknownNameError, match="rounds"):
        generate_masks(tiny_mlp(), "synflow", 0.1, input_shape=(6,), roundz=3)
    with pytest.raises(MaskError, match="takes no options"):
        generate_masks(tiny_mlp(), "magnitude", 0.1, rounds=3)


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, "a"])
def test_bad_density_is_refused(density):
    with pytest.raises(MaskError, match="density"):
        generate_masks(tiny_mlp(), "random", density)


def test_data_methods_need_data_and_synflow_a_shape():
    with pytest.raises(MaskError, match="needs data"):
        generate_masks(tiny_mlp(), "snip", 0.1)
    with pytest.raises(MaskError, match="input_shape"):
        generate_masks(tiny_mlp(), "synflow", 0.1)


# ---------------------------------------------------------------- data budget


def test_budget_defaults_to_ten_examples_per_class():
    data = image_batches(n=80, batch=16)
    assert generate_masks(tiny_cnn(), "snip", 0.1, data=data).examples_used == 10 * N_CLASSES
    assert generate_masks(tiny_cnn(), "snip", 0.1, data=data, n_examples=20).examples_used == 20
    assert generate_masks(tiny_cnn(), "snip", 0.1, data=data[:1]).examples_used == 16  # data ran out
    assert generate_masks(tiny_cnn(), "erk", 0.1, data=data).examples_used == 0
    assert generate_masks(tiny_cnn(), "grasp", 0.1, data=data, n_examples="all").examples_used == 80
    for bad in (0, -3, 2.5, "some"):
        with pytest.raises(MaskError, match="n_examples"):
            generate_masks(tiny_cnn(), "snip", 0.1, data=data, n_examples=bad)


def test_a_dataloader_is_accepted_and_batches_combine_into_the_full_gradient():
    x = torch.cat([b[0] for b in image_batches()])[:50]
    y = torch.cat([b[1] for b in image_batches()])[:50]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    model = tiny_cnn()
    split = compute_scores(model, "snip", loader)
    whole = compute_scores(model, "snip", [(x, y)])
    for name in split:
        torch.testing.assert_close(split[name], whole[name], rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- per method


def test_snip_equals_hand_computed_connection_sensitivity():
    model, (x, y) = tiny_mlp(), vector_batch()
    reference = copy.deepcopy(model)
    F.cross_entropy(reference(x), y).backward()
    names = [name for name, _, _ in maskable_parameters(model)]
    params = dict(reference.named_parameters())
    expected = {name: (params[name] * params[name].grad).abs().detach() for name in names}
    scores = compute_scores(model, "snip", [(x, y)])
    for name in names:
        torch.testing.assert_close(scores[name], expected[name])
    flat = torch.cat([expected[name].flatten() for name in names])
    k = round(0.2 * flat.numel())
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[flat.topk(k).indices] = True
    mask = generate_masks(model, "snip", 0.2, data=[(x, y)]).masks
    assert torch.equal(torch.cat([mask[name].flatten() for name in names]), keep)


def test_grasp_keeps_the_highest_signed_theta_hg():
    model, (x, y) = tiny_mlp(), vector_batch()
    names = [name for name, _, _ in maskable_parameters(model)]
    params = {name: p.detach() for name, p in model.named_parameters()}
    shapes = [params[name].shape for name in names]
    theta = torch.cat([params[name].flatten() for name in names])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        weights = dict(zip(names, torch.split(flat, [math.prod(s) for s in shapes])))
        weights = {name: w.reshape(s) for (name, w), s in zip(weights.items(), shapes)}
        return F.cross_entropy(functional_call(model, {**params, **weights}, (x,)) / 200.0, y)

    g = torch.autograd.functional.jacobian(loss, theta)
    _, hg = torch.autograd.functional.hvp(loss, theta, g)
    expected = theta * hg
    scores = compute_scores(model, "grasp", [(x, y)])
    got = torch.cat([scores[name].flatten() for name in names])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-12)
    assert (expected < 0).any() and (expected > 0).any()
    k = round(0.25 * theta.numel())
    keep = torch.zeros_like(theta, dtype=torch.bool)
    keep[expected.topk(k).indices] = True  # highest signed, not highest magnitude
    assert not torch.equal(keep, torch.zeros_like(keep).index_fill(0, expected.abs().topk(k).indices, True))
    mask = generate_masks(model, "grasp", 0.25, data=[(x, y)]).masks
    assert torch.equal(torch.cat([mask[name].flatten() for name in names]), keep)


def test_synflow_one_round_equals_hand_computed_flow_and_ignores_data():
    model = tiny_cnn()
    model.train()
    absolute = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for tensor in [*absolute.parameters(), *absolute.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    absolute(torch.ones(1, 3, 8, 8, dtype=torch.float64)).sum().backward()
    params = dict(absolute.named_parameters())
    names = [name for name, _, _ in maskable_parameters(model)]
    expected = {name: (params[name] * params[name].grad).abs().detach() for name in names}
    scores = compute_scores(model, "synflow", density=0.1, rounds=1, input_shape=(3, 8, 8))
    for name in names:
        assert scores[name].dtype == torch.float64
        torch.testing.assert_close(scores[name], expected[name])
    masks = [
        generate_masks(model, "synflow", 0.1, data=data, rounds=5).masks
        for data in (
            image_batches(seed=1),
            image_batches(seed=2),
            [(torch.zeros(3, 3, 8, 8), torch.zeros(3))],
        )
    ]
    masks.append(generate_masks(model, "synflow", 0.1, input_shape=(3, 8, 8), rounds=5).masks)
    assert all(torch.equal(masks[0][name], other[name]) for other in masks[1:] for name in names)


def test_synflow_never_revives_a_pruned_weight():
    model = tiny_cnn()
    scores = compute_scores(model, "synflow", density=0.05, rounds=6, input_shape=(3, 8, 8))
    pruned_earlier = sum(int(torch.isinf(s).sum()) for s in scores.values())
    total = sum(s.numel() for s in scores.values())
    assert pruned_earlier == total - round(0.05 ** (5 / 6) * total)


def test_erk_densities_follow_the_formula_with_dense_layers():
    shapes = {"conv": (4, 1, 3, 3), "fc": (10, 400)}
    densities = erk_densities(shapes, 0.5)
    # r_conv = 11/36, r_fc = 410/4000; ε = 2018/421 gives ε·r_conv = 1.46 > 1, so conv is dense and
    # the fc takes the rest of the budget: (0.5 * 4036 - 36) / 4000
    assert densities["conv"] == 1.0
    assert densities["fc"] == pytest.approx((0.5 * 4036 - 36) / 4000)
    shapes = {"a": (16, 3, 3, 3), "b": (64, 16, 3, 3), "c": (128, 64, 3, 3), "d": (10, 128)}
    for kind in ("erk", "er"):
        densities = erk_densities(shapes, 0.1, kind)
        score = {
            n: sum(s) / math.prod(s) if kind == "erk" else (s[0] + s[1]) / (s[0] * s[1])
            for n, s in shapes.items()
        }
        sparse = [n for n in shapes if densities[n] < 1.0]
        assert 0 < len(sparse) < len(shapes)
        epsilon = densities[sparse[0]] / score[sparse[0]]
        assert all(densities[n] == pytest.approx(epsilon * score[n]) for n in sparse)
        assert all(epsilon * score[n] > 1.0 for n in shapes if n not in sparse)
        kept = sum(densities[n] * math.prod(s) for n, s in shapes.items())
        assert kept == pytest.approx(0.1 * sum(math.prod(s) for s in shapes.values()))
    assert erk_densities(shapes, 0.1, "erk")["a"] == 1.0  # the small first conv ends dense
    assert erk_densities(shapes, 0.05, "erk")["a"] < 1.0 and erk_densities(shapes, 0.05, "er")["d"] < 1.0
    assert erk_densities(shapes, 1.0) == {n: 1.0 for n in shapes}


def test_erk_generator_realises_the_layer_densities():
    model = tiny_cnn()
    layers = maskable_parameters(model)
    expected = erk_densities({name: tuple(p.shape) for name, _, p in layers}, 0.3)
    result = generate_masks(model, "erk", 0.3)
    for name, _, param in layers:
        assert abs(result.layer_densities[name] - expected[name]) * param.numel() < 1.0


def test_iter_snip_follows_the_exponential_schedule():
    model, data = tiny_cnn(), image_batches()
    result = generate_masks(model, "iter_snip", 0.02, data=data, rounds=5)
    total = result.total
    assert result.rounds_kept == tuple(round(0.02 ** (t / 5) * total) for t in range(1, 6))
    assert result.kept == round(0.02 * total)
    one_round = generate_masks(model, "iter_snip", 0.02, data=data, rounds=1)
    snip = generate_masks(model, "snip", 0.02, data=data)
    assert all(torch.equal(one_round.masks[n], snip.masks[n]) for n in snip.masks)


def test_iter_snip_two_rounds_by_hand():
    model, (x, y) = tiny_mlp(), vector_batch()
    names = [name for name, _, _ in maskable_parameters(model)]
    params = {name: p.detach() for name, p in model.named_parameters()}
    total = sum(params[n].numel() for n in names)

    def scores_at(masks):
        weights = {n: (params[n] * masks[n]).requires_grad_() for n in names}
        loss = F.cross_entropy(functional_call(model, {**params, **weights}, (x,)), y)
        grads = torch.autograd.grad(loss, list(weights.values()))
        return {n: (params[n] * g).abs() for n, g in zip(names, grads)}

    first = top_k_global(scores_at({n: torch.ones_like(params[n]) for n in names}), round(0.1**0.5 * total))
    second = scores_at({n: first[n].float() for n in names})
    expected = top_k_global(second, round(0.1 * total))
    got = generate_masks(model, "iter_snip", 0.1, data=[(x, y)], rounds=2).masks
    assert all(torch.equal(got[n], expected[n]) for n in names)
    # pruned weights still carry a score and may come back (FORCE)
    assert any(bool((second[n][~first[n]] > 0).any()) for n in names)


def test_magnitude_layer_collapse_is_warned_and_reported():
    model = tiny_mlp()
    with torch.no_grad():
        model[2].weight.mul_(1e-3)
    with pytest.warns(LayerCollapseWarning, match="2.weight"):
        result = generate_masks(model, "magnitude", 0.2)
    assert result.collapsed_layers == ("2.weight",)
    assert result.layer_densities["2.weight"] == 0.0
    assert "2.weight" in result.meta()["collapsed_layers"]


def test_random_scores_are_iid_uniform_and_reseeded():
    model = tiny_cnn()
    a, b = compute_scores(model, "erk", seed=1), compute_scores(model, "erk", seed=2)
    values = torch.cat([s.flatten() for s in a.values()])
    assert 0.0 <= float(values.min()) and float(values.max()) < 1.0
    assert abs(float(values.mean()) - 0.5) < 0.05
    assert not torch.equal(a["0.weight"], b["0.weight"])


# ---------------------------------------------------------------- helpers


def test_top_k_breaks_ties_by_layer_then_index():
    scores = {"a": torch.tensor([1.0, 2.0, 2.0]), "b": torch.tensor([[2.0, 3.0], [2.0, float("nan")]])}
    masks = top_k_global(scores, 3)
    assert masks["a"].tolist() == [False, True, True] and masks["b"].tolist() == [
        [False, True],
        [False, False],
    ]
    masks = top_k_global(scores, 5)
    assert masks["b"].tolist() == [[True, True], [True, False]]
    per_layer = top_k_per_layer(scores, {"a": 1, "b": 2})
    assert per_layer["a"].tolist() == [False, True, False] and int(per_layer["b"].sum()) == 2
    with pytest.raises(MaskError):
        top_k_global(scores, 8)


def test_apportion_sums_exactly_and_stays_within_one():
    sizes = {f"l{i}": 50 + 7 * i for i in range(9)}
    targets = {name: 0.137 * size for name, size in sizes.items()}
    counts = apportion(targets, sizes, round(sum(targets.values())))
    assert sum(counts.values()) == round(sum(targets.values()))
    assert all(abs(counts[name] - targets[name]) < 1.0 for name in sizes)


def test_maskable_parameters_skip_grouped_convs():
    names = [name for name, _, _ in maskable_parameters(tiny_cnn())]
    assert names == ["0.weight", "4.weight", "8.weight"]


def test_apply_masks_installs_prune_masks():
    model = tiny_mlp()
    result = generate_masks(model, "random", 0.3, seed=4)
    reference = copy.deepcopy(model)
    apply_masks(model, result.masks)
    assert hasattr(model[0], "weight_orig") and hasattr(model[0], "weight_mask")
    assert torch.equal(model[0].weight, reference[0].weight * result.masks["0.weight"])
    x, _ = vector_batch()
    with torch.no_grad():
        for name, _, param in maskable_parameters(reference):
            param.mul_(result.masks[name])
        torch.testing.assert_close(model(x), reference(x))
    with pytest.raises(MaskError, match="prune"):
        generate_masks(model, "random", 0.3)
    with pytest.raises(MaskError, match="no Conv/Linear"):
        apply_masks(tiny_mlp(), {"9.weight": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(MaskError, match="shape"):
        apply_masks(tiny_mlp(), {"0.weight": torch.ones(2, 2, dtype=torch.bool)})


def test_mask_checkpoint_round_trip_through_the_package(tmp_path):
    from fullspectrum.pruning import load_mask_checkpoint, save_mask_checkpoint

    model = tiny_cnn()
    result = generate_masks(model, "snip", 0.2, data=image_batches(), seed=5)
    path = save_mask_checkpoint(tmp_path / "m.pt", result.masks, model.state_dict(), result.meta())
    loaded = load_mask_checkpoint(path)
    assert all(torch.equal(loaded.masks[n], result.masks[n]) for n in result.masks)
    assert loaded.meta["generator"] == "snip" and loaded.meta["kept"] == result.kept
    assert loaded.meta["examples_used"] == 10 * N_CLASSES and loaded.meta["seed"] == 5
