"""Tests of dynamic sparse training (SPEC §6): masks, prune/grow rules, schedule, config.

The trainer end to end (runs on digits, stop and resume, checkpoints) is in ``test_trainer_runs.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fullspectrum.errors import FullSpectrumError, UnknownNameError
from fullspectrum.training import (
    GROW_FNS,
    METHODS,
    PRUNE_FNS,
    RewireContext,
    SparseState,
    TrainConfig,
    layer_densities,
    maskable_weights,
    prune_rate,
    random_masks,
    rewire,
)


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 24),
        nn.ReLU(),
        nn.Linear(24, 5),
    )


def sparse_setup(density: float = 0.3, init: str = "erk", seed: int = 0):
    net = tiny_net()
    weights = maskable_weights(net)
    shapes = {name: tuple(w.shape) for name, w in weights.items()}
    masks = random_masks(shapes, layer_densities(shapes, density, init), torch.Generator().manual_seed(seed))
    state = SparseState.from_masks(masks)
    state.apply(weights)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return net, weights, state, optimizer


def sgd_step(net, optimizer, state, weights, generator) -> dict[str, torch.Tensor]:
    x = torch.randn(16, 1, 6, 6, generator=generator)
    y = torch.randint(0, 5, (16,), generator=generator)
    optimizer.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    grads = {name: w.grad.detach().clone() for name, w in weights.items()}
    optimizer.step()
    state.apply(weights, optimizer)
    return grads


# -- what is masked ------------------------------------------------------------------------------------


def test_every_conv_and_linear_weight_is_masked_but_no_bias_or_norm():
    names = list(maskable_weights(tiny_net()))
    assert names == ["0.weight", "4.weight", "6.weight"]


@pytest.mark.parametrize("init", ["uniform", "er", "erk"])
@pytest.mark.parametrize("density", [0.05, 0.3])
def test_initial_masks_have_exact_layer_counts(init, density):
    weights = maskable_weights(tiny_net())
    shapes = {name: tuple(w.shape) for name, w in weights.items()}
    densities = layer_densities(shapes, density, init)
    masks = random_masks(shapes, densities, torch.Generator().manual_seed(1))
    for name, mask in masks.items():
        assert mask.dtype == torch.bool and tuple(mask.shape) == shapes[name]
        assert int(mask.sum()) == round(densities[name] * mask.numel())
    total = sum(int(m.sum()) for m in masks.values())
    assert abs(total - density * sum(m.numel() for m in masks.values())) <= len(masks)
    if init == "uniform":
        assert set(densities.values()) == {density}
    again = random_masks(shapes, densities, torch.Generator().manual_seed(1))
    assert all(torch.equal(masks[n], again[n]) for n in masks)


def test_unknown_init_is_refused_with_the_choices():
    with pytest.raises(UnknownNameError, match="choose from er, erk, uniform"):
        layer_densities({"w": (3, 3)}, 0.5, "gaussian")


def test_apply_zeroes_masked_weights_and_momentum():
    net, weights, state, optimizer = sparse_setup()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        sgd_step(net, optimizer, state, weights, generator)
    for name, weight in weights.items():
        inactive = ~state.masks[name]
        assert torch.all(weight[inactive] == 0)
        assert torch.all(optimizer.state[weight]["momentum_buffer"][inactive] == 0)
    biases = [p for n, p in net.named_parameters() if not n.endswith("weight") or n.startswith("1.")]
    assert all(bool((p != 0).any()) for p in biases)  # biases and norm parameters are never masked


# -- prune / grow rules --------------------------------------------------------------------------------


def random_context(shape=(6, 7), seed=0, gradient=True) -> RewireContext:
    g = torch.Generator().manual_seed(seed)
    return RewireContext(
        weight=torch.randn(shape, generator=g),
        gradient=torch.randn(shape, generator=g) if gradient else None,
        generator=torch.Generator().manual_seed(seed + 1),
    )


@pytest.mark.parametrize("rule", [*(("prune", n) for n in PRUNE_FNS), *(("grow", n) for n in GROW_FNS)])
@pytest.mark.parametrize("k", [0, 1, 5, 17])
def test_every_rule_picks_exactly_k_candidates_deterministically(rule, k):
    kind, name = rule
    fn = (PRUNE_FNS if kind == "prune" else GROW_FNS)[name]
    candidates = torch.rand(6, 7, generator=torch.Generator().manual_seed(3)) < 0.5
    chosen = fn(candidates, k, random_context())
    assert chosen.dtype == torch.bool and chosen.shape == candidates.shape
    assert int(chosen.sum()) == k
    assert not bool((chosen & ~candidates).any())
    assert torch.equal(chosen, fn(candidates, k, random_context()))


def test_magnitude_prune_removes_the_smallest_active_weights():
    context = random_context()
    candidates = torch.rand(6, 7, generator=torch.Generator().manual_seed(3)) < 0.5
    chosen = PRUNE_FNS["magnitude"](candidates, 4, context)
    magnitudes = context.weight.abs()
    assert magnitudes[chosen].max() <= magnitudes[candidates & ~chosen].min()


def test_gradient_growth_takes_the_largest_gradients_among_inactive():
    context = random_context()
    candidates = torch.rand(6, 7, generator=torch.Generator().manual_seed(4)) < 0.5
    chosen = GROW_FNS["gradient"](candidates, 5, context)
    grad = context.gradient.abs()
    assert grad[chosen].min() >= grad[candidates & ~chosen].max()


def test_gradient_growth_without_gradient_fails():
    with pytest.raises(ValueError, match="gradient"):
        GROW_FNS["gradient"](torch.ones(2, 2, dtype=torch.bool), 1, random_context(gradient=False))


def test_regrown_weight_starts_at_exactly_zero():
    # all but one weight active and k = nnz: every pruned weight but one must be regrown
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[0, 0] = False
    weight = torch.randn(4, 5) * mask
    weights = {"w": nn.Parameter(weight.clone())}
    state = SparseState.from_masks({"w": mask})
    optimizer = torch.optim.SGD(weights.values(), lr=0.1, momentum=0.9)
    optimizer.state[weights["w"]]["momentum_buffer"] = torch.randn(4, 5) * mask
    updates = rewire(
        state, weights, optimizer, rate=1.0, prune="magnitude", grow="random",
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    new_mask = state.masks["w"]
    assert updates[0].pruned == updates[0].grown == 19
    assert int(new_mask.sum()) == 19
    assert torch.all(weights["w"] == 0)  # every active weight was pruned and regrown
    assert torch.all(optimizer.state[weights["w"]]["momentum_buffer"] == 0)


def test_unknown_rules_and_methods_are_refused():
    net, weights, state, optimizer = sparse_setup()
    with pytest.raises(UnknownNameError, match="choose from"):
        rewire(state, weights, optimizer, rate=0.1, prune="snip", grow="random", generator=torch.Generator())
    with pytest.raises(UnknownNameError, match="choose from gradient, random"):
        rewire(state, weights, optimizer, rate=0.1, prune="magnitude", grow="x", generator=torch.Generator())
    with pytest.raises(UnknownNameError, match="dense, itop, rigl, static"):
        TrainConfig(method="set")


# -- ITOP / RigL invariants over a real optimisation ---------------------------------------------------


@pytest.mark.parametrize("method", ["itop", "rigl"])
def test_invariants_hold_after_every_update(method):
    net, weights, state, optimizer = sparse_setup(density=0.25)
    spec = METHODS[method]
    counts = {name: int(mask.sum()) for name, mask in state.masks.items()}
    generator, growth = torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)
    total, delta_t, rates = 60, 6, [state.exploration_rate()]
    for step in range(1, total + 1):
        grads = sgd_step(net, optimizer, state, weights, generator)
        if step % delta_t:
            continue
        before = {name: mask.clone() for name, mask in state.masks.items()}
        updates = rewire(
            state, weights, optimizer, rate=prune_rate(step, total), prune=spec.prune, grow=spec.grow,
            generator=growth, gradients=grads,
        )  # fmt: skip
        for update, (name, mask) in zip(updates, state.masks.items()):
            assert int(mask.sum()) == counts[name]  # per-layer density exact
            assert update.grown == update.pruned
            if counts[name] < mask.numel():
                assert update.pruned == math.ceil(prune_rate(step, total) * counts[name])
            new = mask & ~before[name]
            assert torch.all(weights[name][new] == 0)  # grown weights start at zero
            assert torch.all(weights[name][~mask] == 0)
            momentum = optimizer.state[weights[name]]["momentum_buffer"]
            assert torch.all(momentum[~mask] == 0) and torch.all(momentum[new] == 0)
            assert bool((state.fired[name] | mask).eq(state.fired[name]).all())  # fired ⊇ mask
        rates.append(state.exploration_rate())
        if method == "rigl":  # grown entries are the largest-gradient inactive ones (after pruning)
            for name, mask in state.masks.items():
                new = mask & ~before[name]
                if new.any():
                    outside = ~mask & ~before[name]
                    if outside.any():
                        assert grads[name].abs()[new].min() >= grads[name].abs()[outside].max()
    assert all(b >= a for a, b in zip(rates, rates[1:]))
    assert rates[-1] > rates[0]


# -- schedule ------------------------------------------------------------------------------------------


def test_cosine_prune_rate_closed_form():
    assert prune_rate(0, 1000) == 0.5
    assert prune_rate(1000, 1000) == pytest.approx(0.005, abs=1e-15)
    assert prune_rate(500, 1000) == pytest.approx((0.5 + 0.005) / 2)
    values = [prune_rate(t, 1000) for t in range(0, 1001, 50)]
    assert all(b < a for a, b in zip(values, values[1:]))
    assert prune_rate(250, 1000, p_0=0.3, p_min=0.1) == pytest.approx(
        0.1 + 0.2 * (1 + math.cos(math.pi / 4)) / 2
    )


# -- config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, iters", [("digits", 21), ("mnist1d", 29), ("digits", 3)])
@pytest.mark.parametrize("method", ["itop", "rigl"])
def test_offline_presets_give_twenty_updates_and_snapshots(data, iters, method):
    config = TrainConfig(data=data, method=method).resolved(iters)
    total = config.epochs * iters
    updates = len([t for t in range(1, total) if t % config.delta_t == 0])
    snapshots = len([t for t in range(1, total + 1) if t % config.snapshot_every == 0])
    assert updates >= 20 and snapshots >= 20
    assert config.eval_every == iters


def test_cifar_defaults_follow_itop():
    itop = TrainConfig(model="resnet18", data="cifar10").resolved(391)
    assert (itop.epochs, itop.batch_size, itop.lr, itop.delta_t) == (250, 128, 0.1, 1500)
    assert (itop.momentum, itop.nesterov, itop.weight_decay, itop.init, itop.density) == (
        0.9,
        True,
        5e-4,
        "erk",
        0.05,
    )
    assert TrainConfig(data="cifar100", method="rigl").resolved(391).delta_t == 4000
    assert itop.lr_at(0) == 0.1 and itop.lr_at(124) == 0.1
    assert itop.lr_at(125) == pytest.approx(0.01) and itop.lr_at(187) == pytest.approx(0.001)


def test_config_round_trips_and_validates():
    config = TrainConfig(density=0.1, lr_milestones=(0.3,), model_options={"widths": [8]}).resolved(10)
    assert TrainConfig.from_dict(config.as_dict()) == config
    with pytest.raises(FullSpectrumError, match="density"):
        TrainConfig(density=0.0)
    with pytest.raises(FullSpectrumError, match="unknown keys"):
        TrainConfig.from_dict({"sparsity": 0.9})
    with pytest.raises(FullSpectrumError, match="static"):
        TrainConfig(method="dense", mask="m.pt")
    with pytest.raises(UnknownNameError, match="device"):
        TrainConfig(device="tpu")
