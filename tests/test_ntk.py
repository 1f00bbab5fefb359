"""The NTK of sparse networks (G25, SPEC §7b): oracles, closed forms and invariants.

* the empirical NTK equals one built by hand from per-sample gradients (``torch.autograd.grad``
  in a loop), on a tiny MLP and a tiny convnet with BatchNorm, with and without masks;
* pruned weights contribute nothing, and the caller's model is not touched;
* the graphon NTK: a constant graphon ``c`` scales the dense recursion by ``c^L``, ``c = 1``
  is the standard ReLU NTK (written here independently), and the empirical NTK of masks
  drawn from a block graphon approaches it as width grows;
* the spectral summary against closed forms.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from fullspectrum.errors import FullSpectrumError, MaskError
from fullspectrum.ntk import NTKSpectrum, empirical_ntk, graphon_ntk, ntk_spectrum


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3))


def _convnet() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 3, 3, bias=False),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 4),
    )
    net[1].running_mean.normal_()  # running statistics that differ from a batch's: eval mode matters
    net[1].running_var.uniform_(0.5, 2.0)
    return net


def _masks(model: nn.Module, density: float = 0.5, seed: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) < density for n, p in model.named_parameters() if p.ndim > 1}


def _ntk_by_hand(model: nn.Module, x: torch.Tensor, masks: dict[str, torch.Tensor]) -> np.ndarray:
    """Per-sample gradients in a loop, masks installed the ``torch.nn.utils.prune`` way."""
    net = copy.deepcopy(model).double().eval()
    for name, mask in masks.items():
        module = net.get_submodule(name.rpartition(".")[0])
        prune.custom_from_mask(module, name.rpartition(".")[2], mask)
    params = [p for p in net.parameters() if p.requires_grad]
    rows = []
    for sample in x.double():
        out = net(sample.unsqueeze(0)).reshape(-1)
        grads = [torch.autograd.grad(out[c], params, retain_graph=True) for c in range(len(out))]
        rows.append(torch.stack([torch.cat([g.reshape(-1) for g in gs]) for gs in grads]))  # (C, P)
    jac = torch.stack(rows)  # (N, C, P)
    return (torch.einsum("ncp,mcp->nm", jac, jac) / jac.shape[1]).numpy()


@pytest.mark.parametrize(("build", "shape"), [(_mlp, (5,)), (_convnet, (2, 6, 6))], ids=["mlp", "convnet"])
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
def test_empirical_ntk_equals_per_sample_gradients_by_hand(build, shape, masked):
    model = build()
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(3))
    masks = _masks(model) if masked else {}
    got = empirical_ntk(model, x, masks, chunk_size=4)  # 4 does not divide 6: a short last chunk
    assert got.shape == (6, 6) and got.dtype == np.float64
    np.testing.assert_allclose(got, _ntk_by_hand(model, x, masks), rtol=0, atol=1e-10)


def test_class_groups_and_chunks_do_not_change_the_result():
    model, x = _convnet(), torch.randn(5, 2, 6, 6)
    whole = empirical_ntk(model, x, chunk_size=5)
    split = empirical_ntk(model, x, chunk_size=2, max_jacobian_bytes=1)  # one class per group
    np.testing.assert_allclose(split, whole, rtol=1e-12, atol=1e-12)


def test_pruned_weights_contribute_nothing():
    model, x = _mlp(), torch.randn(4, 5)
    masks = _masks(model, density=0.3)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for name, mask in masks.items():
            p = moved.get_parameter(name)
            p[~mask] = 100.0 * torch.randn(int((~mask).sum()))  # a pruned entry's value is irrelevant
    np.testing.assert_array_equal(empirical_ntk(moved, x, masks), empirical_ntk(model, x, masks))
    # the masked NTK is that of the net with pruned entries at 0 and frozen (their gradients dropped)
    frozen = copy.deepcopy(model).double()
    with torch.no_grad():
        for name, mask in masks.items():
            frozen.get_parameter(name).mul_(mask)
    rows = []
    for sample in x.double():
        out = frozen(sample.unsqueeze(0)).reshape(-1)
        per_class = []
        for c in range(len(out)):
            grads = torch.autograd.grad(out[c], list(frozen.parameters()), retain_graph=True)
            kept = [
                g[masks[n]] if n in masks else g.reshape(-1)
                for (n, _), g in zip(frozen.named_parameters(), grads)
            ]
            per_class.append(torch.cat(kept))
        rows.append(torch.stack(per_class))
    jac = torch.stack(rows)
    expected = (torch.einsum("ncp,mcp->nm", jac, jac) / jac.shape[1]).numpy()
    np.testing.assert_allclose(empirical_ntk(model, x, masks), expected, rtol=0, atol=1e-10)
    assert not np.allclose(empirical_ntk(model, x), expected)  # the mask did change the kernel


def test_a_model_with_prune_masks_installed_gives_the_masked_ntk():
    model, x = _mlp(), torch.randn(4, 5)
    masks = _masks(model, density=0.4)
    installed = copy.deepcopy(model)
    for name, mask in masks.items():
        prune.custom_from_mask(installed.get_submodule(name.rpartition(".")[0]), "weight", mask)
    expected = empirical_ntk(model, x, masks)
    np.testing.assert_allclose(empirical_ntk(installed, x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(empirical_ntk(installed, x, masks), expected, rtol=1e-12, atol=1e-12)


def test_frozen_parameters_are_left_out():
    model, x = _mlp(), torch.randn(4, 5)
    model[0].weight.requires_grad_(False)
    model[0].bias.requires_grad_(False)
    np.testing.assert_allclose(empirical_ntk(model, x), _ntk_by_hand(model, x, {}), rtol=0, atol=1e-10)


def test_the_callers_model_is_not_touched():
    model = _convnet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    empirical_ntk(model, np.random.default_rng(0).normal(size=(3, 2, 6, 6)), _masks(model))
    assert model.training
    for k, v in model.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    ("masks", "match"),
    [
        ({"nope.weight": torch.ones(7, 5, dtype=torch.bool)}, "matches no trainable parameter"),
        ({"0.weight": torch.ones(5, 7, dtype=torch.bool)}, "has shape"),
        ({"0.weight": torch.full((7, 5), 0.5)}, "not binary"),
    ],
)
def test_bad_masks_raise_one_line_mask_errors(masks, match):
    with pytest.raises(MaskError, match=match):
        empirical_ntk(_mlp(), torch.randn(2, 5), masks)


def test_bad_inputs_raise():
    with pytest.raises(FullSpectrumError, match="batch of N"):
        empirical_ntk(_mlp(), torch.randn(5))
    with pytest.raises(FullSpectrumError, match="NaN"):
        empirical_ntk(_mlp(), torch.full((2, 5), float("nan")))


# --- the graphon NTK ---------------------------------------------------------------------------


def _standard_relu_ntk(x: np.ndarray, depth: int, sigma_w: float) -> np.ndarray:
    """The dense bias-free ReLU NTK (Jacot et al. 2018; Arora et al. 2019's sum-of-products form).

    ``Θ^(L) = Σ_h Σ^(h) Π_{h'>h} Σ̇^(h')`` with the normalised arc-cosine kernels
    ``κ1(ρ) = (√(1-ρ²) + (π - arccos ρ) ρ)/π`` and ``κ0(ρ) = (π - arccos ρ)/π``.
    """
    s2 = sigma_w**2
    sig = [s2 / x.shape[1] * x @ x.T]  # Σ^(1)
    dots = []
    for _ in range(depth - 1):
        d = np.sqrt(np.diag(sig[-1]))
        rho = np.clip(sig[-1] / np.outer(d, d), -1, 1)
        sig.append(s2 / 2 * np.outer(d, d) * (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho) / np.pi)
        dots.append(s2 / 2 * (np.pi - np.arccos(rho)) / np.pi)  # Σ̇^(h+1)
    total = np.zeros_like(sig[0])
    for h in range(depth):
        term = sig[h]
        for dot in dots[h:]:
            term = term * dot
        total = total + term
    return total


def _inputs(n: int = 6, n0: int = 5, seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n0))


@pytest.mark.parametrize("sigma_w", [2**0.5, 1.3])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_a_dense_graphon_is_the_standard_relu_ntk(depth, sigma_w):
    x = _inputs()
    graphons = [np.ones((3, 5))] + [np.ones((3, 3))] * (depth - 2) + [np.ones((2, 3))] * (depth > 1)
    # rtol 1e-7: both sides take arccos of a rounded cos θ, good to ~1e-8 near θ = 0
    np.testing.assert_allclose(
        graphon_ntk(graphons, x, sigma_w), _standard_relu_ntk(x, depth, sigma_w), rtol=1e-7
    )


@pytest.mark.parametrize("c", [0.0, 0.3, 0.8])
def test_a_constant_graphon_scales_the_dense_ntk_by_c_to_the_depth(c):
    x = _inputs()
    shapes = [(4, 5), (3, 4), (3, 3), (2, 3)]  # L = 4
    dense = graphon_ntk([np.ones(s) for s in shapes], x, 1.7)
    np.testing.assert_allclose(graphon_ntk([np.full(s, c) for s in shapes], x, 1.7), c**4 * dense, rtol=1e-12)


def test_block_graphon_kernels_follow_the_blocks():
    # the readout sees only the second hidden block, which sees only inputs 0 and 1: that path's NTK,
    # scaled by 2/3 (two of n_0 = 3 inputs, homogeneous of degree 1) and 1/2 (p_b of the readout)
    x = _inputs(n0=3)
    graphons = [np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]), np.array([[0.0, 1.0]])]
    one_path = _standard_relu_ntk(x[:, :2], 2, 2**0.5)
    np.testing.assert_allclose(graphon_ntk(graphons, x), one_path / 3, rtol=1e-7)


def test_the_network_ntk_is_the_mean_over_output_blocks():
    x = _inputs()
    hidden = [np.random.default_rng(6).uniform(size=(3, 5)), np.random.default_rng(7).uniform(size=(4, 3))]
    readout = np.array([[0.9, 0.1, 0.5, 0.0], [0.2, 1.0, 0.3, 0.7]])
    per_block = [graphon_ntk([*hidden, readout[a : a + 1]], x) for a in range(2)]
    assert not np.allclose(per_block[0], per_block[1])
    np.testing.assert_allclose(graphon_ntk([*hidden, readout], x), np.mean(per_block, axis=0), rtol=1e-12)


class _NTKMLP(nn.Module):
    """A bias-free ReLU MLP in the NTK parameterisation: ``h = σ_w/√n_in · W φ(h)``, ``W ~ N(0, 1)``."""

    def __init__(self, widths: list[int], generator: torch.Generator, sigma_w: float = 2**0.5):
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(o, i, generator=generator)) for i, o in zip(widths, widths[1:])
        )
        self.sigma_w = sigma_w

    def forward(self, x):
        for k, w in enumerate(self.weights):
            x = x if k == 0 else torch.relu(x)
            x = self.sigma_w / math.sqrt(w.shape[1]) * x @ w.T
        return x


def _draw(graphon: np.ndarray, rows: int, cols: int, g: torch.Generator, full_columns: bool) -> torch.Tensor:
    w = torch.as_tensor(graphon, dtype=torch.float64)
    w = w.repeat_interleave(rows // w.shape[0], 0)
    w = w if full_columns else w.repeat_interleave(cols // w.shape[1], 1)
    return torch.rand(rows, cols, generator=g, dtype=torch.float64) < w


def test_the_empirical_ntk_of_graphon_masks_approaches_the_graphon_ntk_as_width_grows():
    x = _inputs(n=6, n0=8)
    graphons = [np.ones((2, 8)), np.array([[0.9, 0.2], [0.4, 0.7]]), np.array([[0.8, 0.3], [0.5, 1.0]])]
    target = graphon_ntk(graphons, x)
    errors = {}
    for width in (32, 512):
        errs = []
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            net = _NTKMLP([8, width, width, 8], g)
            masks = {
                f"weights.{k}": _draw(w, p.shape[0], p.shape[1], g, full_columns=k == 0)
                for k, (w, p) in enumerate(zip(graphons, net.weights))
            }
            got = empirical_ntk(net, x, masks)
            errs.append(np.linalg.norm(got - target) / np.linalg.norm(target))
        errors[width] = float(np.mean(errs))
    assert errors[512] < 0.5 * errors[32], errors
    assert errors[512] < 0.2, errors  # measured 0.35 → 0.10 (≈ 1/√width)


@pytest.mark.parametrize(
    ("graphons", "inputs", "match"),
    [
        ([], _inputs(), "non-empty list"),
        ([np.ones(5)], _inputs(), "2-D"),
        ([np.full((2, 5), 1.5)], _inputs(), r"outside \[0, 1\]"),
        ([np.ones((2, 5)), np.ones((2, 3))], _inputs(), "3 input blocks but graphons\\[0\\] has 2"),
    ],
)
def test_bad_graphons_raise_one_line_mask_errors(graphons, inputs, match):
    with pytest.raises(MaskError, match=match):
        graphon_ntk(graphons, inputs)


def test_bad_graphon_inputs_raise():
    with pytest.raises(FullSpectrumError, match="4 features but graphons\\[0\\] has 5"):
        graphon_ntk([np.ones((2, 5))], _inputs(n0=4))
    with pytest.raises(FullSpectrumError, match="sigma_w"):
        graphon_ntk([np.ones((2, 5))], _inputs(), sigma_w=0.0)


# --- the spectral summary ----------------------------------------------------------------------


def _rotated(eigenvalues: np.ndarray, seed: int = 5) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigenvalues),) * 2))
    gram = q @ np.diag(eigenvalues) @ q.T
    return 0.5 * (gram + gram.T)


@pytest.mark.parametrize("rotate", [False, True], ids=["diagonal", "rotated"])
def test_spectral_summary_of_known_eigenvalues(rotate):
    lam = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.0, 0.0])
    gram = _rotated(lam) if rotate else np.diag(lam[::-1])
    s = ntk_spectrum(gram)
    assert isinstance(s, NTKSpectrum)
    np.testing.assert_allclose(s.eigenvalues, lam, atol=1e-12)
    assert s.lambda_max == pytest.approx(8.0)
    assert s.condition == pytest.approx(32.0)  # the zero eigenvalues are below 1e-12·λ_max
    p = lam[:6] / lam.sum()
    assert s.effective_rank == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert s.top5_energy == pytest.approx(15.5 / 15.75)
    # k = 1..4: log λ_k = log 8 - (k-1) log 2; its least-squares slope on log k, by hand
    k = np.arange(1, 5)
    y = np.log(lam[:4])
    lk = np.log(k)
    slope = ((lk - lk.mean()) * (y - y.mean())).sum() / ((lk - lk.mean()) ** 2).sum()
    assert s.decay_alpha == pytest.approx(-slope, rel=1e-9)


@pytest.mark.parametrize("a", [0.5, 1.0, 2.5])
def test_power_law_eigenvalues_give_their_exponent(a):
    lam = np.arange(1, 41, dtype=np.float64) ** -a
    assert ntk_spectrum(_rotated(lam)).decay_alpha == pytest.approx(a, rel=1e-6)


def test_a_flat_spectrum_has_full_effective_rank():
    s = ntk_spectrum(3.0 * np.eye(10))
    assert s.effective_rank == pytest.approx(10.0)
    assert s.condition == pytest.approx(1.0)
    assert s.top5_energy == pytest.approx(0.5)
    assert s.decay_alpha == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(AttributeError):
        s.lambda_max = 1.0  # frozen


@pytest.mark.parametrize(
    ("gram", "match"),
    [
        (np.ones((2, 3)), "square"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), "not symmetric"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), "NaN"),
        (np.zeros((3, 3)), "no positive eigenvalue"),
    ],
)
def test_bad_gram_matrices_raise(gram, match):
    with pytest.raises(FullSpectrumError, match=match):
        ntk_spectrum(gram)


def test_empirical_and_graphon_ntks_feed_the_summary():
    x = _inputs(n=8)
    for gram in (
        empirical_ntk(_mlp(), torch.as_tensor(x, dtype=torch.float32)),
        graphon_ntk([np.ones((2, 5))] * 1, x),
    ):
        s = ntk_spectrum(gram)
        assert s.lambda_max == pytest.approx(np.linalg.eigvalsh(gram).max())
        assert 1.0 <= s.effective_rank <= 8.0 and 0.0 < s.top5_energy <= 1.0
