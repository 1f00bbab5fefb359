"""``fullspectrum prune``: writes a SPEC §8 mask checkpoint that ``analyze`` reads directly."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pandas as pd
import pytest
import torch

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.models import build_model
from fullspectrum.pruning import maskable_parameters


def prune(tmp_path, *extra, name="masks.pt"):
    out = tmp_path / name
    argv = ["prune", "--model", "lenet5", "--data", "digits", "--density", "0.1", "--out", str(out), *extra]
    return main(argv), out


@pytest.mark.parametrize("method", ["snip", "synflow", "erk"])
def test_prune_writes_a_mask_checkpoint_analyze_reads(tmp_path, method):
    extra = ["--rounds", "3"] if method == "synflow" else []
    code, out = prune(tmp_path, "--method", method, "--seed", "3", *extra)
    assert code == 0
    checkpoint = load_mask_checkpoint(out)
    torch.manual_seed(3)
    model = build_model("lenet5", 10, (1, 8, 8))  # the initialisation the masks were made for
    assert checkpoint.state_dict.keys() == model.state_dict().keys()
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in model.state_dict().items())
    names = [name for name, _, _ in maskable_parameters(model)]
    assert list(checkpoint.masks) == names
    total = sum(mask.numel() for mask in checkpoint.masks.values())
    assert sum(int(mask.sum()) for mask in checkpoint.masks.values()) == round(0.1 * total)
    meta = checkpoint.meta
    assert (meta["generator"], meta["density"], meta["seed"], meta["model"], meta["data"]) == (
        method,
        0.1,
        3,
        "lenet5",
        "digits",
    )
    assert meta["examples_used"] == (100 if method == "snip" else 0)
    assert isinstance(meta["torch_version"], str) and isinstance(meta["fullspectrum_version"], str)

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert main(["analyze", str(out), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(stdout.getvalue()))
    assert list(table["layer"]) == [name.removesuffix(".weight") for name in names]
    assert table["edges"].sum() == round(0.1 * total)


def test_prune_is_deterministic_for_a_seed(tmp_path):
    _, first = prune(tmp_path, "--method", "random", "--seed", "1", name="a.pt")
    _, second = prune(tmp_path, "--method", "random", "--seed", "1", name="b.pt")
    _, other = prune(tmp_path, "--method", "random", "--seed", "2", name="c.pt")
    a, b, c = (load_mask_checkpoint(path) for path in (first, second, other))
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    assert all(torch.equal(a.state_dict[n], b.state_dict[n]) for n in a.state_dict)
    assert any(not torch.equal(a.masks[n], c.masks[n]) for n in a.masks)
    assert any(not torch.equal(a.state_dict[n], c.state_dict[n]) for n in a.state_dict)


def test_prune_examples_budget(tmp_path):
    code, out = prune(tmp_path, "--method", "grasp", "--examples", "30", "--batch-size", "16")
    assert code == 0
    assert load_mask_checkpoint(out).meta["examples_used"] == 30


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "snp"], "unknown mask generator 'snp'"),
        (["--method", "snip", "--rounds", "3"], "--rounds does not apply"),
        (["--method", "snip", "--density", "1.5"], "density"),
    ],
)
def test_prune_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, message):
    code, out = prune(tmp_path, *extra)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not out.exists()
