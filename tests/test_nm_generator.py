"""The ``nm`` mask generator (magnitude N:M) and mask checkpoints as ``.safetensors`` files.

Oracles: a loop over every group that keeps the N largest |w| (ties: lower index), and the
detection's own loop oracle (tests/test_nm.py) for the pattern of every layer.
"""

from __future__ import annotations

import copy
import io
import json
import warnings

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_nm import oracle
from torch import nn

from fullspectrum.checkpoints import load_mask_checkpoint, load_sparse_checkpoint, save_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.errors import CheckpointError, FullSpectrumError, MaskError
from fullspectrum.layers.nm import nm_pattern
from fullspectrum.pruning import GENERATORS, generate_masks, maskable_parameters, top_k_per_layer
from fullspectrum.pruning.nm import DenseLayerWarning, nm_layer_counts
from fullspectrum.spectrum.network import analyze


def grouped_net(seed: int = 0) -> nn.Module:
    """Every layer's input dimension a multiple of 8: conv 4*2*2 = 16, conv 8*1*1 = 8, linear 32."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(4, 8, 2), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.Flatten(), nn.Linear(32, 5))


def slow_nm(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the n largest |w| of each group of m along the flattened row, ties to the lower index."""
    rows = weight.detach().abs().reshape(weight.shape[0], -1).tolist()
    keep = []
    for row in rows:
        kept_row = []
        for start in range(0, len(row), m):
            group = row[start : start + m]
            best = sorted(range(m), key=lambda i: (-group[i], i))[:n]
            kept_row += [i in best for i in range(m)]
        keep.append(kept_row)
    return torch.tensor(keep).reshape(weight.shape)


@pytest.mark.parametrize("pattern", ["2:4", "1:4", "1:2", "3:8"])
def test_masks_are_exactly_n_m_and_keep_the_largest_magnitudes(pattern):
    n, m = map(int, pattern.split(":"))
    model = grouped_net()
    result = generate_masks(model, "nm", None, nm=pattern)
    layers = maskable_parameters(model)
    assert list(result.masks) == [name for name, _, _ in layers]
    for name, _, param in layers:
        mask = result.masks[name]
        assert mask.dtype == torch.bool and mask.shape == param.shape
        assert torch.equal(mask, slow_nm(param, n, m))
        assert oracle(mask.numpy()) == nm_pattern(mask) != ""  # N:M, reported at its smallest M
    assert result.kept * m == result.total * n and result.density == n / m
    assert result.meta()["nm"] == pattern and result.meta()["generator"] == "nm"


def test_ties_go_to_the_lower_index():
    layer = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]))
    mask = generate_masks(nn.Sequential(layer), "nm", 0.5, nm="2:4").masks["0.weight"]
    assert mask.tolist() == [[True, True, False, False, True, True, False, False]]


def test_a_layer_whose_inputs_are_not_a_multiple_of_m_is_left_dense_with_a_warning():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))  # 27 inputs per unit
    with pytest.warns(DenseLayerWarning, match=r"0\.weight \(27 inputs per unit\)"):
        result = generate_masks(model, "nm", None)  # default 2:4
    assert bool(result.masks["0.weight"].all())
    assert torch.equal(result.masks["2.weight"], slow_nm(model[2].weight, 2, 4))
    assert result.kept == 4 * 27 + 4


def test_a_disagreeing_density_is_refused_and_the_implied_one_accepted():
    with pytest.raises(MaskError, match=r"density 0\.3 disagrees with the N:M pattern 2:4.*N/M = 0\.5"):
        generate_masks(grouped_net(), "nm", 0.3, nm="2:4")
    same = generate_masks(grouped_net(), "nm", 0.25, nm="1:4")
    assert same.kept * 4 == same.total
    with pytest.raises(FullSpectrumError, match="0 < N < M"):
        generate_masks(grouped_net(), "nm", None, nm="4:4")
    with pytest.raises(MaskError, match="needs a density"):
        generate_masks(grouped_net(), "magnitude", None)


def test_deterministic_and_the_model_left_untouched():
    model = grouped_net()
    model.train()
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    first = generate_masks(model, "nm", None, seed=1)
    second = generate_masks(model, "nm", None, seed=2)  # magnitude: the seed changes nothing
    assert all(torch.equal(first.masks[k], second.masks[k]) for k in first.masks)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert all(param.grad is None for param in model.parameters())


def test_pags_style_rethresholding_of_noisy_scores_keeps_the_pattern():
    from fullspectrum.pruning import compute_scores  # why: PAGS's own path, not generate_masks

    scores = compute_scores(grouped_net(), "nm", density=0.5)
    counts = nm_layer_counts(scores)
    generator = torch.Generator().manual_seed(0)
    noisy = {
        k: v * (1 + 1e-3 * torch.randn(v.shape, generator=generator, dtype=v.dtype))
        for k, v in scores.items()
    }
    reference = generate_masks(grouped_net(), "nm", 0.5).masks
    again = top_k_per_layer(noisy, counts)
    assert all(torch.equal(again[k], reference[k]) for k in reference)
    assert GENERATORS["nm"].scope == "group" and GENERATORS["nm"].options == {"nm": "2:4"}


def test_an_input_major_conv1d_is_grouped_along_its_inputs():
    class Conv1D(nn.Module):  # HF GPT-2's layout: weight stored (in, out), nf outputs
        def __init__(self, nf: int, nx: int) -> None:
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(torch.randn(nx, nf))

    torch.manual_seed(3)
    model = nn.Sequential(Conv1D(6, 8))
    mask = generate_masks(model, "nm", None).masks["0.weight"]
    assert mask.shape == (8, 6)
    assert torch.equal(mask.T, slow_nm(model[0].weight.T, 2, 4))  # groups of 4 along the 8 inputs


# -- mask checkpoints as .safetensors ---------------------------------------------------------------------


def tied_net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 8))
    net[2].weight = net[0].weight  # tied: one storage under two names
    return net


META = {"generator": "nm", "density": 0.5, "seed": 3, "nm": "2:4", "exact": True, "ratio": 1 / 3, "tag": "7"}


def test_safetensors_mask_checkpoint_round_trips(tmp_path):
    net = tied_net()
    state = net.state_dict()
    masks = generate_masks(net, "nm", None).masks
    path = save_mask_checkpoint(tmp_path / "mask.safetensors", masks, state, META)
    loaded = load_mask_checkpoint(path)
    assert loaded.meta == META and all(type(loaded.meta[k]) is type(v) for k, v in META.items())
    assert loaded.masks.keys() == masks.keys()
    assert all(loaded.masks[k].dtype == torch.bool and torch.equal(loaded.masks[k], masks[k]) for k in masks)
    assert loaded.state_dict.keys() == state.keys()
    assert all(
        torch.equal(loaded.state_dict[k], v) and loaded.state_dict[k].dtype == v.dtype
        for k, v in state.items()
    )
    pt = load_mask_checkpoint(save_mask_checkpoint(tmp_path / "mask.pt", masks, state, META))
    assert pt.meta == loaded.meta and all(torch.equal(pt.masks[k], loaded.masks[k]) for k in masks)


def test_the_file_is_plain_safetensors_with_uint8_masks_and_string_metadata(tmp_path):
    masks = {"0.weight": torch.tensor([[True, False], [False, True]])}
    path = save_mask_checkpoint(tmp_path / "m.safetensors", masks, {}, {"generator": "nm", "density": 0.5})
    with safe_open(str(path), framework="pt") as handle:
        assert list(handle.keys()) == ["masks.0.weight"]
        assert handle.get_tensor("masks.0.weight").dtype == torch.uint8
        metadata = handle.metadata()
    assert metadata["generator"] == "nm" and metadata["density"] == "0.5" and metadata["format"] == "pt"
    assert json.loads(metadata["fullspectrum.meta_types"]) == {"density": "float", "generator": "str"}


def test_analyze_reads_a_safetensors_mask_checkpoint_as_one(tmp_path):
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    result = generate_masks(net, "nm", None)
    path = save_mask_checkpoint(tmp_path / "m.safetensors", result.masks, net.state_dict(), result.meta())
    checkpoint = load_sparse_checkpoint(path)
    assert checkpoint.format == "mask_checkpoint" and checkpoint.meta["density"] == 0.5
    table = analyze(path)
    assert list(table["nm_pattern"]) == ["2:4", "2:4"]
    pt = save_mask_checkpoint(tmp_path / "m.pt", result.masks, net.state_dict(), result.meta())
    pd.testing.assert_frame_equal(table, analyze(pt))


def test_reserved_meta_keys_and_foreign_files_are_refused(tmp_path):
    masks = {"0.weight": torch.ones(2, 2, dtype=torch.bool)}
    with pytest.raises(FullSpectrumError, match="'format' is reserved"):
        save_mask_checkpoint(tmp_path / "m.safetensors", masks, {}, {"format": "x"})
    assert not (tmp_path / "m.safetensors").exists()
    foreign = tmp_path / "model.safetensors"
    save_file({"fc.weight": torch.ones(2, 2)}, str(foreign))
    with pytest.raises(CheckpointError, match="neither masks.* nor state_dict.*: not a mask checkpoint"):
        load_mask_checkpoint(foreign)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_mask_checkpoint(broken)


# -- the command line ---------------------------------------------------------------------------------------


def prune(tmp_path, capsys, *extra, name="nm.safetensors"):
    out = tmp_path / name
    code = main(["prune", "--model", "mlp", "--data", "digits", "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, out, captured


def test_prune_nm_to_safetensors_then_analyze_reads_it(tmp_path, capsys):
    code, out, _ = prune(tmp_path, capsys, "--generator", "nm", "--nm", "2:4", "--seed", "1")
    assert code == 0
    checkpoint = load_mask_checkpoint(out)
    assert checkpoint.meta["generator"] == "nm" and checkpoint.meta["nm"] == "2:4"
    assert {nm_pattern(mask) for mask in checkpoint.masks.values()} == {"2:4"}
    assert main(["analyze", str(out), "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)
    assert set(frame["nm_pattern"]) == {"2:4"} and set(frame["density"]) == {0.5}
    code, pt, _ = prune(tmp_path, capsys, "--method", "nm", "--density", "0.5", "--seed", "1", name="nm.pt")
    assert code == 0
    same = load_mask_checkpoint(pt)
    assert all(torch.equal(same.masks[k], checkpoint.masks[k]) for k in same.masks)


@pytest.mark.slow
def test_train_mask_reads_a_safetensors_mask(tmp_path, capsys):
    code, out, _ = prune(tmp_path, capsys, "--generator", "nm", "--nm", "1:4")
    assert code == 0
    run = tmp_path / "run"
    argv = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--device", "cpu"]
    assert main([*argv, "--method", "static", "--mask", str(out), "--out", str(run)]) == 0
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (
            ["--generator", "nm", "--nm", "2:4", "--density", "0.3"],
            "density 0.3 disagrees with the N:M pattern 2:4",
        ),
        (["--generator", "nm", "--nm", "4:2"], "0 < N < M"),
        (["--generator", "snip", "--nm", "2:4", "--density", "0.5"], "--nm does not apply to --method snip"),
        (["--generator", "magnitude"], "needs --density"),
    ],
)
def test_prune_refuses_in_one_line(tmp_path, capsys, flags, fragment):
    code, out, captured = prune(tmp_path, capsys, *flags)
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], captured.err
    assert not out.exists()


def test_prune_warns_about_layers_left_dense(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI turns the warning into a line, it does not leak
        code, out, captured = prune(tmp_path, capsys, "--generator", "nm", "--nm", "2:4", name="mlp.pt")
    assert code == 0
    code = main(
        [
            "prune",
            "--model",
            "lenet5",
            "--data",
            "digits",
            "--generator",
            "nm",
            "--out",
            str(tmp_path / "l.pt"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0 and "left dense, input dimension not a multiple of 4" in err


@pytest.mark.slow
def test_pags_writes_safetensors_copies_of_its_masks(tmp_path, capsys):
    run = tmp_path / "pags"
    argv = ["pags", "--model", "mlp", "--data", "digits", "--generator", "nm", "--density", "0.5",
            "--population", "2", "--device", "cpu", "--out", str(run), "--mask-format", "safetensors"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    for name in ("pags_mask", "base_mask"):
        pt, st = load_mask_checkpoint(run / f"{name}.pt"), load_mask_checkpoint(run / f"{name}.safetensors")
        assert st.meta == pt.meta and st.masks.keys() == pt.masks.keys()
        assert all(torch.equal(st.masks[k], pt.masks[k]) for k in pt.masks)
        assert all(torch.equal(st.state_dict[k], pt.state_dict[k]) for k in pt.state_dict)
        assert {nm_pattern(mask) for mask in st.masks.values()} == {"2:4"}  # PAGS keeps nm's pattern
