"""Sharded Hugging Face safetensors models: ``analyze DIR`` reads them weight by weight (SPEC §1, §8).

The checkpoints are written here (tests/test_sharded_builders.py): a tiny LLaMA with the real
parameter names, a GPT-2 block with its fused input-major ``c_attn``, a ViT-like fused ``qkv``.
The reference for every row is the in-memory analysis of the very same tensors as one state dict.
"""

from __future__ import annotations

import io
import json
import struct

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from test_sharded_builders import LLAMA_PROJECTIONS, gpt2_state, llama_state, write_sharded

from fullspectrum.checkpoints import sharded
from fullspectrum.checkpoints.sharded import open_sharded
from fullspectrum.cli import main
from fullspectrum.errors import CheckpointError, FullSpectrumError
from fullspectrum.spectrum.network import TABLE_COLUMNS, analyze

BLOCKS = 3


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A 3-block LLaMA (hidden 16, MLP 32) pruned to 50% at random, in 3 shards; and its state dict."""
    state = llama_state(blocks=BLOCKS)
    folder = tmp_path_factory.mktemp("llama")
    write_sharded(folder, state, shards=3)
    return folder, state


def by_layer(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("layer").sort_index()


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("fullspectrum: error: "), err
    return lines[0]


# -- which tensors are layers, and their names -------------------------------------------------------------


def test_llama_layers_are_the_projections_and_the_head(llama):
    folder, _ = llama
    table = analyze(folder)
    expected = {f"model.layers.{b}.{p}" for b in range(BLOCKS) for p in LLAMA_PROJECTIONS} | {"lm_head"}
    assert set(table["layer"]) == expected and len(table) == len(expected)
    assert list(table.columns) == list(TABLE_COLUMNS)
    skipped = dict(table.attrs["skipped"])
    assert "embedding" in skipped["model.embed_tokens"]
    assert not any("norm" in name for name in table["layer"])  # norms are 1-D: never layers
    shapes = dict(zip(table["layer"], table["shape"]))
    assert (
        shapes["model.layers.0.mlp.down_proj"] == "16x32" and shapes["model.layers.2.mlp.up_proj"] == "32x16"
    )


def test_layers_come_in_name_order_with_numbers_compared_as_numbers(tmp_path):
    state = llama_state(blocks=11, hidden=4, intermediate=8)
    write_sharded(tmp_path, state, shards=2)
    names = [name for name in analyze(tmp_path)["layer"] if name.endswith("down_proj")]
    assert names == [f"model.layers.{b}.mlp.down_proj" for b in range(11)]


def test_block_and_projection_columns(llama):
    folder, _ = llama
    table = analyze(folder).set_index("layer")
    assert table.loc["model.layers.2.mlp.down_proj", "block"] == "model.layers.2"
    assert table.loc["model.layers.2.mlp.down_proj", "projection"] == "down_proj"
    assert table.loc["model.layers.0.self_attn.q_proj", "projection"] == "q_proj"
    assert (table.loc["lm_head", "block"], table.loc["lm_head", "projection"]) == ("", "lm_head")
    assert sorted(table["projection"].value_counts().unique()) == [1, BLOCKS]  # lm_head, and one per block


# -- the same rows as one in-memory checkpoint --------------------------------------------------------------


def test_rows_equal_those_of_the_same_tensors_in_memory(llama):
    folder, state = llama
    streamed, in_memory = analyze(folder), analyze(dict(state))
    pd.testing.assert_frame_equal(by_layer(streamed), by_layer(in_memory))
    assert streamed.attrs["skipped"] == in_memory.attrs["skipped"]


def test_the_index_file_and_a_single_file_folder_read_the_same(llama, tmp_path):
    folder, state = llama
    single = tmp_path / "single"
    single.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(single / "model.safetensors"))
    reference = by_layer(analyze(folder))
    pd.testing.assert_frame_equal(by_layer(analyze(folder / "model.safetensors.index.json")), reference)
    pd.testing.assert_frame_equal(by_layer(analyze(single)), reference)


def test_float16_and_bfloat16_shards_are_read_in_their_dtype(tmp_path):
    state = llama_state(blocks=1)
    for dtype in (torch.float16, torch.bfloat16):
        folder = tmp_path / str(dtype)
        write_sharded(folder, state, shards=2, dtype=dtype)
        rounded = {name: tensor.to(dtype) for name, tensor in state.items()}
        pd.testing.assert_frame_equal(by_layer(analyze(folder)), by_layer(analyze(rounded)))


def test_gpt2_fused_c_attn_is_split_into_q_k_v(tmp_path):
    state = gpt2_state(hidden=8)
    write_sharded(tmp_path, state, shards=2)
    table = analyze(tmp_path)
    layers = list(table["layer"])
    assert layers[:3] == [f"transformer.h.0.attn.c_attn.{s}" for s in "qkv"]
    assert set(layers) == {*layers[:3], "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc",
                           "transformer.h.0.mlp.c_proj"}  # fmt: skip
    rows = table.set_index("layer")
    assert rows.loc["transformer.h.0.attn.c_attn.k", "shape"] == "8x8"
    assert rows.loc["transformer.h.0.mlp.c_fc", "shape"] == "32x8"  # Conv1D (in, out) read as (out, in)
    assert [rows.loc[f"transformer.h.0.attn.c_attn.{s}", "projection"] for s in "qkv"] == ["q", "k", "v"]
    assert rows.loc["transformer.h.0.attn.c_proj", "projection"] == "attn.c_proj"  # not mlp.c_proj's group
    assert {name for name, _ in table.attrs["skipped"]} == {"transformer.wte", "transformer.wpe"}
    pd.testing.assert_frame_equal(by_layer(table), by_layer(analyze(dict(state))))
    # the q rows are the first third of the (out, in) weight: the columns of the stored (in, out) one
    q_mask = state["transformer.h.0.attn.c_attn.weight"].T[:8] != 0
    assert rows.loc["transformer.h.0.attn.c_attn.q", "edges"] == int(q_mask.sum())


def test_a_fused_qkv_linear_is_split(tmp_path):
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(12, 4, generator=generator) * (torch.rand(12, 4, generator=generator) < 0.6)
    state = {"blocks.0.attn.qkv.weight": weight, "blocks.0.attn.proj.weight": torch.randn(4, 4),
             "blocks.0.norm1.weight": torch.ones(4)}  # fmt: skip
    write_sharded(tmp_path, state, shards=1)
    table = analyze(tmp_path).set_index("layer")
    assert list(table.index) == ["blocks.0.attn.proj", *(f"blocks.0.attn.qkv.{s}" for s in "qkv")]
    assert [int(table.loc[f"blocks.0.attn.qkv.{s}", "edges"]) for s in "qkv"] == [
        int((weight[rows] != 0).sum()) for rows in (slice(0, 4), slice(4, 8), slice(8, 12))
    ]


def test_prune_pairs_give_the_masks_and_unmasked_weights_are_skipped(tmp_path):
    generator = torch.Generator().manual_seed(5)
    mask = torch.rand(6, 4, generator=generator) < 0.5
    state = {"fc1.weight_orig": torch.randn(6, 4, generator=generator), "fc1.weight_mask": mask.float(),
             "fc2.weight": torch.randn(3, 6, generator=generator)}  # fmt: skip
    write_sharded(tmp_path, state, shards=2)
    table = analyze(tmp_path)
    assert list(table["layer"]) == ["fc1"] and int(table["edges"].iloc[0]) == int(mask.sum())
    assert dict(table.attrs["skipped"])["fc2"].startswith("no mask")
    pd.testing.assert_frame_equal(by_layer(table), by_layer(analyze(dict(state))))


# -- one weight at a time ------------------------------------------------------------------------------------


def test_records_read_one_weight_at_a_time(llama, monkeypatch):
    folder, _ = llama
    reads: list[str] = []
    original = sharded.read_tensor
    monkeypatch.setattr(sharded, "read_tensor", lambda entry: reads.append(entry.name) or original(entry))
    checkpoint = open_sharded(folder)
    assert reads == []  # planning reads headers only
    stream = checkpoint.records()
    first = next(stream)
    assert len(reads) == 1 and [record.name for record in first] == ["lm_head"]
    next(stream)
    assert len(reads) == 2
    stream.close()


def test_no_shard_stays_open_between_reads(llama, monkeypatch):
    # a handle kept open keeps every page it read resident: the model's size in RSS by the end
    folder, _ = llama
    live: list[int] = []
    original = sharded.safetensors_handle

    class Counted:
        def __init__(self, file):
            self.handle = original(file)

        def __enter__(self):
            live.append(1)
            return self.handle.__enter__()

        def __exit__(self, *exc):
            live.pop()
            return self.handle.__exit__(*exc)

    monkeypatch.setattr(sharded, "safetensors_handle", Counted)
    checkpoint = open_sharded(folder)
    for records in checkpoint.records():
        assert records and live == []


def test_layers_filter_reads_only_the_matching_weights(llama, monkeypatch, capsys):
    folder, state = llama
    reads: list[str] = []
    original = sharded.read_tensor
    monkeypatch.setattr(sharded, "read_tensor", lambda entry: reads.append(entry.name) or original(entry))
    table = analyze(folder, layers=r"down_proj$")
    assert list(table["layer"]) == [f"model.layers.{b}.mlp.down_proj" for b in range(BLOCKS)]
    assert reads == [f"model.layers.{b}.mlp.down_proj.weight" for b in range(BLOCKS)]
    full = by_layer(analyze(dict(state)))
    pd.testing.assert_frame_equal(by_layer(table), full.loc[sorted(table["layer"])])
    code, out, _ = run_cli(capsys, folder, "--layers", r"layers\.1\.", "--format", "csv")
    assert code == 0
    assert list(pd.read_csv(io.StringIO(out))["layer"]) == [
        f"model.layers.1.{p}" for p in sorted(LLAMA_PROJECTIONS)
    ]


def test_layers_filter_on_an_ordinary_checkpoint(tmp_path, capsys):
    path = tmp_path / "net.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)).state_dict(), path)
    code, out, _ = run_cli(capsys, path, "--layers", "^1$", "--format", "json")
    assert code == 0 and [row["layer"] for row in json.loads(out)] == ["1"]
    projection = json.loads(out)[0]["projection"]
    assert projection == "1"  # no block: the layer is its own projection


@pytest.mark.parametrize(
    ("pattern", "fragment"), [("(", "not a regular expression"), ("nothing", "matches none")]
)
def test_bad_layers_filter_is_one_line(llama, capsys, pattern, fragment):
    folder, _ = llama
    code, out, err = run_cli(capsys, folder, "--layers", pattern)
    assert code == 2 and out == ""
    assert fragment in one_error_line(err)


# -- the command line ----------------------------------------------------------------------------------------


def test_cli_csv_rows_and_the_table_of_projection_means(llama, capsys):
    folder, _ = llama
    code, out, err = run_cli(capsys, folder, "--format", "csv")
    assert code == 0 and "note:" in err
    frame = pd.read_csv(io.StringIO(out), keep_default_na=False)
    assert list(frame.columns) == list(TABLE_COLUMNS) and len(frame) == 7 * BLOCKS + 1
    expected = analyze(folder)
    assert list(frame["layer"]) == list(expected["layer"])
    assert frame["delta_r"].tolist() == pytest.approx(expected["delta_r"].tolist(), rel=1e-9, nan_ok=True)
    code, out, _ = run_cli(capsys, folder)
    assert code == 0
    means = out.split("Per projection", 1)[1]
    rows = [line.split() for line in means.splitlines()[2:] if line.strip()]
    assert {row[0] for row in rows} == {p.split(".")[1] for p in LLAMA_PROJECTIONS} | {"lm_head"}
    down = next(row for row in rows if row[0] == "down_proj")
    assert int(down[1]) == BLOCKS  # three down_proj layers averaged together
    edges = int(expected.loc[expected["projection"] == "down_proj", "edges"].sum())
    assert str(edges) in down


def test_no_projection_means_for_a_network_without_blocks(tmp_path, capsys):
    path = tmp_path / "net.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)).state_dict(), path)
    code, out, _ = run_cli(capsys, path)
    assert code == 0 and "Per projection" not in out


# -- bad index files: exit 2, one line naming the file --------------------------------------------------------


def _break_missing_shard(folder):
    (folder / "model-00002-of-00003.safetensors").unlink()
    return "model-00002-of-00003.safetensors", "missing"


def _break_json(folder):
    (folder / "model.safetensors.index.json").write_text("{not json")
    return "model.safetensors.index.json", "JSON"


def _break_tensor_name(folder):
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00003.safetensors"
    index.write_text(json.dumps(data))
    return "model.layers.9.mlp.up_proj.weight", "does not hold it"


def _break_header_size(folder):
    shard = folder / "model-00001-of-00003.safetensors"
    shard.write_bytes(struct.pack("<Q", 2**40) + shard.read_bytes()[8:])
    return "model-00001-of-00003.safetensors", "header"


def _break_truncated_header(folder):
    shard = folder / "model-00003-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[:40])
    return "model-00003-of-00003.safetensors", "truncated"


def _break_escaping_path(folder):
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors"
    index.write_text(json.dumps(data))
    return "../elsewhere.safetensors", "not a file name"


def _break_no_weight_map(folder):
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    return "model.safetensors.index.json", "weight_map"


def _break_garbage_shard(folder):
    shard = folder / "model-00002-of-00003.safetensors"
    shard.write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + b"\0" * 64)
    return "model-00002-of-00003.safetensors", "safetensors"


BROKEN = {
    "missing shard": _break_missing_shard,
    "bad JSON": _break_json,
    "tensor missing from its shard": _break_tensor_name,
    "header too large": _break_header_size,
    "truncated shard": _break_truncated_header,
    "path outside the folder": _break_escaping_path,
    "no weight_map": _break_no_weight_map,
    "garbage shard": _break_garbage_shard,
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_bad_index_or_shard_exits_2_with_one_line_naming_the_file(case, tmp_path, capsys):
    write_sharded(tmp_path, llama_state(blocks=1, hidden=4, intermediate=8), shards=3)
    name, fragment = BROKEN[case](tmp_path)
    code, out, err = run_cli(capsys, tmp_path)
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert name in line and fragment in line, line
    assert "Traceback" not in err


def test_a_folder_without_a_model_and_a_missing_index_are_refused(tmp_path):
    with pytest.raises(
        CheckpointError, match="not a file, and a folder without model.safetensors.index.json"
    ):
        analyze(tmp_path)
    with pytest.raises(CheckpointError, match="no such file"):
        analyze(tmp_path / "model.safetensors.index.json")


def test_a_shape_over_the_size_limit_is_refused_from_the_header(tmp_path, monkeypatch):
    write_sharded(tmp_path, llama_state(blocks=1, hidden=8, intermediate=16), shards=1)
    monkeypatch.setenv("FULLSPECTRUM_MAX_TENSOR_ELEMENTS", "100")
    with pytest.raises(FullSpectrumError, match="over the limit of 100 elements"):
        open_sharded(tmp_path)
