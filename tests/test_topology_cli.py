"""``fullspectrum topology`` (SPEC §7, §8): formats against the library, --out, --export-graph, bad inputs."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import torch

from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.models import build_model
from fullspectrum.pruning import generate_masks
from fullspectrum.topology import load_npz_blocks, topometrics, unrolled_graph

SHAPE = (1, 8, 8)  # the digits dataset the checkpoints' meta names


def lenet_and_masks(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("lenet5", 10, SHAPE)
    return model, generate_masks(model, "random", 0.3, seed=seed).masks


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("topology")
    model, masks = lenet_and_masks()
    save_mask_checkpoint(folder / "mask.pt", masks, model.state_dict(), {"model": "lenet5", "data": "digits"})
    save_mask_checkpoint(folder / "bare.pt", masks, model.state_dict(), {"generator": "random"})
    plain = {k: (v * masks[k] if k in masks else v) for k, v in model.state_dict().items()}
    torch.save(plain, folder / "plain.pt")
    return folder, model, masks


def run(argv, capsys):
    code = main(["topology", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_matches_the_library(files, capsys):
    folder, model, masks = files
    code, out, _ = run([folder / "mask.pt", "--format", "json"], capsys)
    assert code == 0
    payload = json.loads(out)
    graph = unrolled_graph(model, masks, SHAPE)
    expected = topometrics(graph).as_dict()
    assert payload["model"] == "lenet5" and payload["input_shape"] == list(SHAPE)
    for name in (
        "nodes",
        "edges",
        "identity_edges",
        "effective_weights",
        "sink_nodes",
        "cut_edges",
        "components",
    ):
        assert payload["network"][name] == expected[name], name
    assert payload["network"]["spectral_gap_w"] == pytest.approx(expected["spectral_gap_w"], rel=1e-9)
    assert [row["layer"] for row in payload["layers"]] == [b.layer for b in graph.layers]
    assert sum(p["nodes"] for p in payload["partitions"]) == graph.nodes


def test_csv_rows_per_layer_with_network_columns(files, capsys):
    folder, model, masks = files
    code, out, _ = run([folder / "mask.pt", "--format", "csv", "--skips", "none", "--mge24-compat"], capsys)
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    graph = unrolled_graph(model, masks, SHAPE, skips="none", mge24_compat=True)
    assert list(table["layer"]) == [b.layer for b in graph.layers]
    assert list(table["edges"]) == [b.edges for b in graph.layers]
    assert (table["kept"] == table["effective"] + table["ineffective"]).all()
    assert set(table["network_nodes"]) == {graph.nodes} and set(table["network_identity_edges"]) == {0}


def test_table_and_files(files, capsys, tmp_path):
    folder, _, _ = files
    code, out, _ = run([folder / "mask.pt"], capsys)
    assert code == 0 and "sink_nodes" in out and "conv" in out.lower()
    code, _, _ = run(
        [
            folder / "mask.pt",
            "--format",
            "parquet",
            "--out",
            tmp_path / "t.parquet",
            "--export-graph",
            tmp_path / "g.npz",
        ],
        capsys,
    )
    assert code == 0
    table = pd.read_parquet(tmp_path / "t.parquet")
    partitions, blocks = load_npz_blocks(tmp_path / "g.npz")
    assert sum(p["nodes"] for p in partitions) == int(table["network_nodes"].iloc[0])
    assert sum(m.nnz for kind, _, _, m in blocks if kind != "identity") == int(table["network_edges"].iloc[0])
    # nothing of the user's is replaced
    before = (tmp_path / "t.parquet").read_bytes()
    code, _, err = run([folder / "mask.pt", "--format", "csv", "--out", tmp_path / "t.parquet"], capsys)
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "t.parquet").read_bytes() == before


def test_other_checkpoint_formats_need_model_and_shape(files, capsys):
    folder, model, masks = files
    code, _, err = run([folder / "plain.pt"], capsys)
    assert code == 2 and "--model" in err and len(err.strip().splitlines()) == 1
    code, _, err = run([folder / "bare.pt", "--model", "lenet5"], capsys)
    assert code == 2 and "--input-shape" in err
    code, out, _ = run(
        [folder / "plain.pt", "--model", "lenet5", "--input-shape", "1,8,8", "--format", "json"], capsys
    )
    assert code == 0
    # a plain state dict's mask is its nonzero weights: the same graph
    assert json.loads(out)["network"]["edges"] == unrolled_graph(model, masks, SHAPE).edges


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input-shape", "1,x,8"], "--input-shape"),
        (["--model", "resnet20"], "is not a layer of"),
        (["--model", "mlp"], "is not a layer of"),
        (["--model", "nope"], "unknown model"),
        (["--format", "parquet"], "--out"),
        (["--export-graph", "graph.txt"], ".npz"),
        (["--input-shape", "1,2,2"], "input"),
        (["--input-shape", "1,16,16"], "has shape"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(files, capsys, tmp_path, monkeypatch, extra, message):
    folder, _, _ = files
    monkeypatch.chdir(tmp_path)
    code, out, err = run([folder / "mask.pt", *extra], capsys)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_checkpoint(capsys, tmp_path):
    code, _, err = run([tmp_path / "none.pt"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_a_torch_prune_state_dict(capsys, tmp_path):
    """``torch.nn.utils.prune`` files (``weight_orig`` + ``weight_mask``) read as ``analyze`` reads them."""
    from torch.nn.utils import prune

    model, _ = lenet_and_masks(seed=4)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            prune.random_unstructured(module, "weight", amount=0.6)
    torch.save(model.state_dict(), tmp_path / "pruned.pt")
    masks = {
        f"{n}.weight": m.weight_mask.bool() for n, m in model.named_modules() if hasattr(m, "weight_mask")
    }
    code, out, _ = run(
        [tmp_path / "pruned.pt", "--model", "lenet5", "--input-shape", "1,8,8", "--format", "json"], capsys
    )
    assert code == 0
    clean, _ = lenet_and_masks(seed=4)
    assert json.loads(out)["network"]["edges"] == unrolled_graph(clean, masks, SHAPE).edges
