"""Sparse-aware initialisation (Evci et al. 2020; ``fullspectrum.training.sparse_init``).

Each unit's kept weights are multiplied by ``sqrt(fan_in / k_i)``: the per-unit std
after it, pruned entries, the dense case, the preset, ``run.json`` and old configs,
and that a sparse network without normalisation trains better with it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fullspectrum.cli import main
from fullspectrum.models import MODEL_NAMES, build_model
from fullspectrum.runs import RunStore
from fullspectrum.training import TrainConfig, maskable_weights, train
from fullspectrum.training.initial import initial_state, load_splits, resolved_config, with_sparse_init
from fullspectrum.training.loop import Session
from fullspectrum.training.sparse_init import has_normalisation, rescale_for_masks_, unit_scales

NORMALISED = {"resnet20", "resnet18", "resnet34", "vgg16"}
"""Zoo models with BatchNorm; the others (mlp, lenet5, conv6) have no normalisation layer."""


def row_density_masks(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """A random mask whose rows keep very different fractions (0.1 to 0.5) of their fan-in."""
    fan_in = math.prod(shape[1:])
    rows = []
    for _ in range(shape[0]):
        keep = int(torch.randint(fan_in // 10, fan_in // 2, (1,), generator=generator))
        row = torch.zeros(fan_in, dtype=torch.bool)
        row[torch.randperm(fan_in, generator=generator)[:keep]] = True
        rows.append(row)
    return torch.stack(rows).reshape(shape)


@pytest.mark.parametrize("shape", [(256, 1024), (128, 64, 4, 4)], ids=["linear", "conv"])
def test_each_unit_gets_the_sparse_he_std_of_its_kept_fan_in(shape):
    generator = torch.Generator().manual_seed(1)
    fan_in = math.prod(shape[1:])
    weight = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)  # Kaiming fan-in
    mask = row_density_masks(shape, generator)
    rescale_for_masks_({"w": weight}, {"w": mask})
    kept = mask.reshape(shape[0], -1).sum(1)
    rows, row_mask = weight.reshape(shape[0], -1), mask.reshape(shape[0], -1)
    stds = torch.stack([rows[i][row_mask[i]].std() for i in range(shape[0])])
    ratio = stds / torch.sqrt(2.0 / kept)  # Evci et al.: std_i = sqrt(2 / k_i)
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.02)
    assert float((ratio - 1).abs().max()) < 0.3  # every unit, not just on average (k_i >= 102)
    # a per-layer scale would leave the sparse rows' std far from their own sqrt(2 / k_i)
    assert float(kept.max()) / float(kept.min()) > 3


def test_kept_entries_scale_by_sqrt_fan_in_over_kept_and_pruned_ones_are_untouched():
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(6, 3, 2, 2, generator=generator)
    mask = torch.rand(6, 3, 2, 2, generator=generator) < 0.4
    mask[5] = False  # a unit that keeps nothing
    before = weight.clone()
    rescale_for_masks_({"w": weight}, {"w": mask})
    kept = mask.reshape(6, -1).sum(1)
    for i in range(6):
        factor = math.sqrt(12 / int(kept[i])) if kept[i] else 1.0
        assert torch.allclose(weight[i][mask[i]], before[i][mask[i]] * factor, rtol=1e-6, atol=0)
        assert torch.equal(weight[i][~mask[i]], before[i][~mask[i]])
    assert unit_scales(mask)[5] == 1.0


def digits_session(**options) -> Session:
    config = TrainConfig(data="digits", record_spectra=False, spectra_worker=False, device="cpu", **options)
    splits = load_splits(config)
    torch.manual_seed(config.seed)
    return Session(resolved_config(config, splits), torch.device("cpu"), splits)


def fresh_weights(model: str, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = build_model(model, 10, (1, 8, 8))
    return {name: w.detach().clone() for name, w in maskable_weights(net).items()}


def test_the_trainer_starts_from_rescaled_kept_weights_and_zero_pruned_ones():
    session = digits_session(model="lenet5", method="static", density=0.1, sparse_init=True)
    drawn = fresh_weights("lenet5")
    session.initialise()
    for name, weight in session.weights.items():
        mask = session.state.masks[name]
        assert bool((weight[~mask] == 0).all()), name
        scales = unit_scales(mask).to(weight.dtype).reshape((-1,) + (1,) * (weight.dim() - 1))
        assert torch.allclose(weight, drawn[name] * scales * mask, rtol=1e-6, atol=0), name
    assert any(float(unit_scales(mask).max()) > 2 for mask in session.state.masks.values())


def test_without_it_the_run_starts_from_the_plain_initialisation():
    session = digits_session(model="lenet5", method="static", density=0.1, sparse_init=False)
    drawn = fresh_weights("lenet5")
    session.initialise()
    for name, weight in session.weights.items():
        assert torch.equal(weight, drawn[name] * session.state.masks[name]), name


@pytest.mark.parametrize("method", ["dense", "static"])
def test_a_dense_mask_leaves_the_weights_bit_for_bit(method):
    torch.manual_seed(0)
    net = build_model("lenet5", 10, (1, 8, 8))
    weights = maskable_weights(net)
    before = {name: w.detach().clone() for name, w in weights.items()}
    config = TrainConfig(model="lenet5", method=method, density=1.0, init="uniform", sparse_init=True)
    state = initial_state(config, net, weights)
    assert all(bool(mask.all()) for mask in state.masks.values())
    for name, weight in weights.items():
        assert torch.equal(weight, before[name]), name


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_preset_is_on_exactly_for_models_without_normalisation(name):
    torch.manual_seed(0)
    net = build_model(name, 10, (3, 32, 32))
    assert has_normalisation(net) == (name in NORMALISED)
    assert with_sparse_init(TrainConfig(model=name), net).sparse_init == (name not in NORMALISED)
    assert with_sparse_init(TrainConfig(model=name, method="dense"), net).sparse_init is False
    assert with_sparse_init(TrainConfig(model=name, sparse_init=False), net).sparse_init is False
    assert with_sparse_init(TrainConfig(model=name, sparse_init=True), net).sparse_init is True


def test_norm_layers_other_than_batchnorm_count():
    assert has_normalisation(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)))
    assert has_normalisation(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4)))
    assert not has_normalisation(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)))


@pytest.mark.parametrize(("flag", "expected"), [([], True), (["--no-sparse-init"], False)])
def test_the_resolved_choice_reaches_run_json(tmp_path, flag, expected):
    out = tmp_path / "run"
    args = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--device", "cpu"]
    assert main([*args, *flag, "--out", str(out)]) == 0
    config = RunStore.open(out).info["config"]
    assert config["sparse_init"] is expected
    assert TrainConfig.from_dict(config).sparse_init is expected


def test_an_old_config_without_the_key_reads_as_trained_without_it():
    old = TrainConfig(model="lenet5").as_dict()
    del old["sparse_init"]
    assert TrainConfig.from_dict(old).sparse_init is False
    assert TrainConfig.from_dict(TrainConfig().as_dict()).sparse_init is None  # unset stays unset
    with pytest.raises(Exception, match="sparse_init"):
        TrainConfig(sparse_init="yes")


def accuracy_after(tmp_path, sparse_init: bool) -> float:
    config = TrainConfig(
        model="lenet5",
        data="digits",
        method="static",
        density=0.05,
        epochs=6,
        sparse_init=sparse_init,
        record_spectra=False,
        spectra_worker=False,
        device="cpu",
    )
    return train(config, tmp_path / f"run-{sparse_init}").test_accuracy


def test_a_sparse_lenet_learns_with_it_and_stays_near_chance_without(tmp_path):
    without, with_it = accuracy_after(tmp_path, False), accuracy_after(tmp_path, True)
    assert without < 0.2  # ten classes: chance is 0.1
    assert with_it > without + 0.2  # measured: 0.10 -> 0.35 after 6 epochs (~130 iterations)


@pytest.mark.parametrize(
    ("with_weights", "option", "rescaled"),
    [(True, None, False), (True, True, True), (False, None, True), (False, False, False)],
)
def test_a_mask_file_s_own_weights_are_kept_as_saved_unless_asked(tmp_path, with_weights, option, rescaled):
    from fullspectrum.checkpoints.mask_file import load_mask_checkpoint, save_mask_checkpoint

    torch.manual_seed(3)
    source = build_model("mlp", 10, (1, 8, 8))
    generator = torch.Generator().manual_seed(4)
    masks = {n: torch.rand(w.shape, generator=generator) < 0.1 for n, w in maskable_weights(source).items()}
    state_dict = source.state_dict() if with_weights else {}
    save_mask_checkpoint(tmp_path / "mask.pt", masks, state_dict, {"generator": "test"})
    torch.manual_seed(5)  # the run's own draw differs from the file's weights
    net = build_model("mlp", 10, (1, 8, 8))
    weights = maskable_weights(net)
    start = {n: (source if with_weights else net).state_dict()[n].clone() for n in weights}
    config = TrainConfig(method="static", mask=str(tmp_path / "mask.pt"), sparse_init=option)
    mask_file = load_mask_checkpoint(config.mask)
    assert with_sparse_init(config, net, mask_file).sparse_init is rescaled
    initial_state(config, net, weights, mask_file)
    for name, weight in weights.items():
        scale = unit_scales(masks[name]).float().reshape(-1, 1) if rescaled else 1.0
        expected = torch.where(masks[name], start[name] * scale, start[name])
        assert torch.allclose(weight.detach(), expected, rtol=1e-6, atol=0), name
