"""N:M sparsity detection (``nm_pattern``, SPEC §1) and the block/projection grouping of layer names.

The oracle is a plain loop over every row and every group, sharing no code with the library.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sharded_builders import llama_state, nm_mask, write_sharded

from fullspectrum.errors import FullSpectrumError
from fullspectrum.layers.groups import block_of, layer_groups
from fullspectrum.layers.nm import nm_pattern, parse_nm
from fullspectrum.spectrum.network import analyze


def oracle(mask) -> str:
    """The smallest M <= 16 dividing the row length with every group of M holding the same 0 < N < M."""
    rows = np.asarray(mask).reshape(len(mask), -1).tolist()
    length = len(rows[0])
    for m in range(1, 17):
        if length % m:
            continue
        counts = {
            sum(1 for value in row[start : start + m] if value)
            for row in rows
            for start in range(0, length, m)
        }
        if len(counts) == 1:
            (n,) = counts
            if 0 < n < m:
                return f"{n}:{m}"
    return ""


# -- hand-countable cases ------------------------------------------------------------------------------------


def test_a_2_4_mask_is_2_4_not_4_8():
    mask = torch.tensor([[1, 1, 0, 0, 0, 1, 0, 1], [1, 0, 1, 0, 0, 0, 1, 1]])
    assert nm_pattern(mask) == "2:4"  # also 4:8 (each half of a row holds 4): the smallest M wins
    assert oracle(mask) == "2:4"


def test_a_1_4_mask_and_a_1_2_one():
    assert nm_pattern(torch.tensor([[0, 0, 1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 1]])) == "1:4"
    assert nm_pattern(torch.tensor([[1, 0, 0, 1, 1, 0, 0, 1]])) == "1:2"  # 2:4 too, but 1:2 is smaller


@pytest.mark.parametrize(
    "rows",
    [
        [[1, 1, 1] + [0] * 17],  # 20 inputs: groups of 2, 4, 5 or 10 hold unequal counts (20 > 16)
        [[1, 1, 0, 0], [1, 0, 0, 0]],  # rows of different density
        [[1, 1, 1, 1], [1, 1, 1, 1]],  # dense: no sparsity pattern
        [[0, 0, 0, 0], [0, 0, 0, 0]],  # collapsed
    ],
)
def test_no_pattern(rows):
    assert nm_pattern(torch.tensor(rows)) == "" == oracle(rows)


def test_only_whole_groups_count():
    # 6 inputs: 2:4 would need a group of 2 at the end; 1:2 and 1:3 are whole and fail, 2:6 holds
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 1, 0]])
    assert nm_pattern(mask) == "2:6" == oracle(mask)


def test_m_stops_at_16():
    mask = torch.zeros(2, 34, dtype=torch.bool)
    mask[:, 0] = mask[:, 17] = True  # 1:17 holds, but 17 > 16
    assert nm_pattern(mask) == "" and nm_pattern(mask[:, :17].repeat(1, 1)) == ""
    assert nm_pattern(torch.cat([torch.ones(1, 1), torch.zeros(1, 15)], dim=1).bool()) == "1:16"


def test_a_conv_groups_along_the_flattened_in_kh_kw_row():
    # (out 1, in 2, 2x2): the row is in0's 4 taps then in1's. 2:4 along that row ...
    conv = torch.tensor([[[[1, 1], [0, 0]], [[0, 1], [0, 1]]]])
    assert nm_pattern(conv) == "2:4"
    # ... while groups along input channels per tap (hardware's reading) would give counts 1, 2, 0, 1
    assert nm_pattern(conv.permute(0, 2, 3, 1)) != "2:4"


def test_numpy_masks_and_float_masks_read_the_same():
    mask = nm_mask((8, 16), 2, 4, torch.Generator().manual_seed(0))
    assert nm_pattern(mask) == nm_pattern(mask.numpy()) == nm_pattern(mask.float()) == "2:4"


# -- property test against the slow oracle ------------------------------------------------------------------


@st.composite
def masks(draw):
    rows = draw(st.integers(1, 4))
    if draw(st.booleans()):  # a genuine N:M mask, sometimes with one entry flipped
        m = draw(st.integers(2, 8))
        n = draw(st.integers(1, m - 1))
        groups = draw(st.integers(1, 4))
        generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
        mask = nm_mask((rows, groups * m), n, m, generator).numpy()
        if draw(st.booleans()):
            mask[draw(st.integers(0, rows - 1)), draw(st.integers(0, groups * m - 1))] ^= True
        return mask
    length = draw(st.integers(1, 24))
    bits = draw(st.lists(st.booleans(), min_size=rows * length, max_size=rows * length))
    return np.array(bits, dtype=bool).reshape(rows, length)


@settings(max_examples=300, deadline=None)
@given(masks())
def test_nm_pattern_agrees_with_the_loop_oracle(mask):
    assert nm_pattern(mask) == oracle(mask)


def test_a_large_layer_is_read_in_chunks(monkeypatch):
    from fullspectrum.layers import nm  # why: the chunk size is a module constant made small here

    monkeypatch.setattr(nm, "_CHUNK_ELEMENTS", 64)
    mask = nm_mask((50, 32), 2, 4, torch.Generator().manual_seed(1))
    assert nm_pattern(mask) == "2:4"
    kept = int(torch.nonzero(mask[49, :4])[0])  # move a kept weight of the last row to its other half
    free = 16 + int(torch.nonzero(~mask[49, 16:20])[0])
    mask[49, kept], mask[49, free] = False, True
    assert nm_pattern(mask) == "" == oracle(mask.numpy())  # same density, one bad group in the last chunk


@pytest.mark.parametrize("text", ["2:4", " 1:16 ", "3:32"])
def test_parse_nm(text):
    n, m = parse_nm(text)
    assert f"{n}:{m}" == text.strip()


@pytest.mark.parametrize("text", ["4:4", "0:4", "5:4", "2", "2:4:8", "a:b", "-1:4"])
def test_parse_nm_refuses(text):
    with pytest.raises(FullSpectrumError, match="0 < N < M"):
        parse_nm(text)


# -- analyze reports it -------------------------------------------------------------------------------------


def test_a_2_4_sharded_llama_is_reported_2_4(tmp_path):
    write_sharded(tmp_path, llama_state(blocks=2, nm=(2, 4)), shards=2)
    table = analyze(tmp_path).set_index("layer")
    projections = table.drop(index="lm_head")
    assert set(projections["nm_pattern"]) == {"2:4"}
    assert table.loc["lm_head", "nm_pattern"] == ""  # the head was pruned at random


def test_a_1_4_and_an_unstructured_model(tmp_path):
    write_sharded(tmp_path / "a", llama_state(blocks=1, nm=(1, 4)), shards=1)
    write_sharded(tmp_path / "b", llama_state(blocks=1, density=0.5), shards=1)
    assert set(analyze(tmp_path / "a").set_index("layer").drop(index="lm_head")["nm_pattern"]) == {"1:4"}
    assert set(analyze(tmp_path / "b")["nm_pattern"]) == {""}


def test_nm_pattern_of_an_in_memory_module():
    layer = torch.nn.Linear(8, 4)
    with torch.no_grad():
        layer.weight.mul_(nm_mask((4, 8), 2, 4, torch.Generator().manual_seed(2)))
    assert list(analyze(torch.nn.Sequential(layer))["nm_pattern"]) == ["2:4"]


# -- block and projection ----------------------------------------------------------------------------------


def test_block_of():
    assert block_of("model.layers.3.mlp.down_proj") == ("model.layers.3", "mlp.down_proj")
    assert block_of("layer1.0.conv1") == ("layer1.0", "conv1")
    assert block_of("layer1.0.shortcut.0") == ("layer1.0", "shortcut.0")
    assert block_of("features.3") == ("", "features.3")
    assert block_of("lm_head") == ("", "lm_head")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            [
                "model.layers.0.self_attn.q_proj",
                "model.layers.0.mlp.down_proj",
                "model.layers.1.mlp.down_proj",
            ],
            [("model.layers.0", "q_proj"), ("model.layers.0", "down_proj"), ("model.layers.1", "down_proj")],
        ),
        (  # GPT-2: c_proj is in attention and in the MLP, so each keeps its parent
            ["transformer.h.0.attn.c_attn.q", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj"],
            [("transformer.h.0", "q"), ("transformer.h.0", "attn.c_proj"), ("transformer.h.0", "mlp.c_proj")],
        ),
        (  # BERT: three 'dense' layers, two of them '*.output.dense'
            [
                "encoder.layer.0.attention.output.dense",
                "encoder.layer.0.intermediate.dense",
                "encoder.layer.0.output.dense",
            ],  # fmt: skip
            [
                ("encoder.layer.0", "attention.output.dense"),
                ("encoder.layer.0", "intermediate.dense"),
                ("encoder.layer.0", "output.dense"),
            ],  # fmt: skip
        ),
        (  # ResNet: a bare number takes its parent; layers outside blocks are their own projection
            ["conv1", "layer1.0.conv1", "layer1.0.shortcut.0", "fc"],
            [("", "conv1"), ("layer1.0", "conv1"), ("layer1.0", "shortcut.0"), ("", "fc")],
        ),
        (["0", "3", "6"], [("", "0"), ("", "3"), ("", "6")]),
    ],
)
def test_layer_groups(names, expected):
    assert [tuple(group) for group in layer_groups(names)] == expected
