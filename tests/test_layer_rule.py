"""The one rule for which tensors are layers (SPEC §1, §6), on tiny hand-built transformers and convnets.

Each model is read three ways (``layers_from_module``, ``layers_from_state_dict`` on its bare
state dict, ``maskable_parameters``) and the three must agree; fused q/k/v weights must split
into exact row slices, for the mask and the weights.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import fullspectrum as fs
from fullspectrum.layers import (
    find_layers,
    layer_name,
    layers_from_module,
    layers_from_state_dict,
    maskable_parameters,
    parameter_name,
    split_names,
    weight_key,
)
from fullspectrum.pruning import apply_masks, generate_masks
from fullspectrum.pruning import maskable_parameters as pruning_maskable_parameters
from fullspectrum.training import maskable_weights

D = 8  # embedding width of every tiny transformer


class AttentionBlock(nn.Module):
    """Pre-norm transformer block with ``nn.MultiheadAttention`` (fused, or separate when ``kdim``)."""

    def __init__(self, kdim: int | None = None, n_classes: int = 3) -> None:
        super().__init__()
        self.kdim = kdim
        self.norm1 = nn.LayerNorm(D)
        if kdim is not None:
            self.memory = nn.Linear(D, kdim)  # gives keys and values their own width
        self.attn = nn.MultiheadAttention(D, 2, kdim=kdim, vdim=kdim, batch_first=True)
        self.norm2 = nn.LayerNorm(D)
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))
        self.head = nn.Linear(D, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, tokens, D)
        h = self.norm1(x)
        memory = h if self.kdim is None else self.memory(h)
        x = x + self.attn(h, memory, memory, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return self.head(x.mean(dim=1))


class LlamaBlock(nn.Module):
    """LLaMA-style decoder: token embedding, q/k/v/o projections (grouped-query k/v), gated MLP, lm_head."""

    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, D)
        self.layers = nn.ModuleList([nn.Module()])
        block = self.layers[0]
        block.input_layernorm = nn.LayerNorm(D)
        block.self_attn = nn.Module()
        for name, out in (("q_proj", D), ("k_proj", D // 2), ("v_proj", D // 2), ("o_proj", D)):
            setattr(block.self_attn, name, nn.Linear(D, out, bias=False))
        block.post_attention_layernorm = nn.LayerNorm(D)
        block.mlp = nn.Module()
        block.mlp.gate_proj = nn.Linear(D, 2 * D, bias=False)
        block.mlp.up_proj = nn.Linear(D, 2 * D, bias=False)
        block.mlp.down_proj = nn.Linear(2 * D, D, bias=False)
        self.norm = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, vocab, bias=False)


class ViTBlock(nn.Module):
    """timm-style attention with one fused ``qkv`` Linear of shape (3d, d)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(D, 3 * D)
        self.attn.proj = nn.Linear(D, D)
        self.head = nn.Linear(D, 2)


class Conv1D(nn.Module):
    """Like ``transformers.pytorch_utils.Conv1D``: a Linear layer with its weight stored (in, out)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)  # (in, out)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class GPT2Block(nn.Module):
    """HF GPT-2 naming: wte/wpe embeddings, Conv1D c_attn/c_proj/c_fc, ln_* norms, lm_head."""

    def __init__(self, vocab: int = 13, tied: bool = False) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, D)
        self.wpe = nn.Embedding(5, D)
        self.h = nn.ModuleList([nn.Module()])
        block = self.h[0]
        block.ln_1 = nn.LayerNorm(D)
        block.attn = nn.Module()
        block.attn.c_attn = Conv1D(3 * D, D)
        block.attn.c_proj = Conv1D(D, D)
        block.ln_2 = nn.LayerNorm(D)
        block.mlp = nn.Module()
        block.mlp.c_fc = Conv1D(4 * D, D)
        block.mlp.c_proj = Conv1D(D, 4 * D)
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.wte.weight


def conv_net() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            stem=nn.Conv2d(3, 8, 3, padding=1),
            depthwise=nn.Conv2d(8, 8, 3, padding=1, groups=8),
            grouped=nn.Conv2d(8, 8, 1, groups=2),
            up=nn.ConvTranspose2d(8, 4, 2, stride=2),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(4, 3),
        )
    )


MLP = [("mlp.0", (4 * D, D)), ("mlp.2", (D, 4 * D)), ("head", (3, D))]
EXPECTED = {
    "mha_fused": (
        AttentionBlock,
        [("attn.q", (D, D)), ("attn.k", (D, D)), ("attn.v", (D, D)), ("attn.out_proj", (D, D)), *MLP],
        set(),
    ),
    "mha_separate": (
        lambda: AttentionBlock(kdim=6),
        [
            ("memory", (6, D)),
            ("attn.q", (D, D)),
            ("attn.k", (D, 6)),
            ("attn.v", (D, 6)),
            ("attn.out_proj", (D, D)),
            *MLP,
        ],
        set(),
    ),
    "llama": (
        LlamaBlock,
        [
            ("layers.0.self_attn.q_proj", (D, D)),
            ("layers.0.self_attn.k_proj", (D // 2, D)),
            ("layers.0.self_attn.v_proj", (D // 2, D)),
            ("layers.0.self_attn.o_proj", (D, D)),
            ("layers.0.mlp.gate_proj", (2 * D, D)),
            ("layers.0.mlp.up_proj", (2 * D, D)),
            ("layers.0.mlp.down_proj", (D, 2 * D)),
            ("lm_head", (11, D)),
        ],
        {"embed_tokens"},
    ),
    "vit_qkv": (
        ViTBlock,
        [
            ("attn.qkv.q", (D, D)),
            ("attn.qkv.k", (D, D)),
            ("attn.qkv.v", (D, D)),
            ("attn.proj", (D, D)),
            ("head", (2, D)),
        ],
        set(),
    ),
    "gpt2_conv1d": (
        GPT2Block,
        [
            ("h.0.attn.c_attn.q", (D, D)),
            ("h.0.attn.c_attn.k", (D, D)),
            ("h.0.attn.c_attn.v", (D, D)),
            ("h.0.attn.c_proj", (D, D)),
            ("h.0.mlp.c_fc", (4 * D, D)),
            ("h.0.mlp.c_proj", (D, 4 * D)),
            ("lm_head", (13, D)),
        ],
        {"wte", "wpe"},
    ),
}
"""model factory, exact (layer, shape) list, names both readers skip (embeddings; 1-D norms are silent)."""


def _layers(selection) -> list[tuple[str, tuple[int, ...]]]:
    return [(layer.name, layer.shape) for layer in selection.layers]


@pytest.mark.parametrize("case", list(EXPECTED))
def test_layer_names_and_shapes_agree_across_readers(case):
    torch.manual_seed(0)
    factory, expected, _ = EXPECTED[case]
    model = factory()
    from_module = layers_from_module(model)
    from_state = layers_from_state_dict(model.state_dict())
    assert _layers(from_module) == expected
    assert _layers(from_state) == expected
    assert all(layer.kind == "Linear" for layer in from_module.layers)
    # masking covers the same weights: each maskable parameter is the parameter of some layers
    masked = [entry.name for entry in maskable_parameters(model)]
    assert masked == list(dict.fromkeys(layer.parameter for layer in from_module.layers))
    assert masked == list(dict.fromkeys(layer.parameter for layer in from_state.layers))
    assert masked == [entry.name for entry in pruning_maskable_parameters(model)]
    assert masked == list(maskable_weights(model))
    # every weight is read exactly once: the split layers hold as many weights as the parameters
    assert sum(layer.mask.numel() for layer in from_module.layers) == sum(
        entry.param.numel() for entry in maskable_parameters(model)
    )


@pytest.mark.parametrize("case", list(EXPECTED))
def test_skipped_tensors_carry_a_reason(case):
    factory, _, skipped_names = EXPECTED[case]
    model = factory()
    for selection in (layers_from_module(model), layers_from_state_dict(model.state_dict())):
        reasons = {s.name: s.reason for s in selection.skipped}
        assert set(reasons) == skipped_names
        assert all("embedding" in reason for reason in reasons.values())


def test_mha_out_proj_is_masked_and_analysed():
    model = AttentionBlock()
    assert "attn.out_proj.weight" in [entry.name for entry in maskable_parameters(model)]
    assert "attn.in_proj_weight" in [entry.name for entry in maskable_parameters(model)]
    assert "attn.out_proj" in [layer.name for layer in layers_from_module(model).layers]
    assert not any(
        "attention" in s.reason for s in layers_from_module(model).skipped
    )  # no tensor skipped for being attention


def _fused_rows(tensor: torch.Tensor) -> list[torch.Tensor]:
    return [tensor[:D], tensor[D : 2 * D], tensor[2 * D :]]


def test_fused_in_proj_splits_into_row_slices_of_mask_and_weight():
    torch.manual_seed(1)
    model = AttentionBlock()
    result = generate_masks(model, "random", 0.5, seed=3)
    mask = result.masks["attn.in_proj_weight"]
    assert mask.shape == (3 * D, D)  # masked as one parameter
    weight = model.attn.in_proj_weight.detach().clone()
    apply_masks(model, result.masks)  # torch.nn.utils.prune form: in_proj_weight_orig + in_proj_weight_mask
    assert hasattr(model.attn, "in_proj_weight_orig") and hasattr(model.attn, "in_proj_weight_mask")
    state = model.state_dict()
    assert "attn.in_proj_weight_mask" in state
    for selection in (layers_from_module(model), layers_from_state_dict(state)):
        records = {layer.name: layer for layer in selection.layers}
        for name, rows_mask, rows_weight in zip(split_names("attn"), _fused_rows(mask), _fused_rows(weight)):
            assert torch.equal(records[name].mask, rows_mask)
            assert torch.equal(records[name].weight, rows_weight)
            assert records[name].parameter == "attn.in_proj_weight"
        assert torch.equal(records["attn.out_proj"].mask, result.masks["attn.out_proj.weight"])
        assert not any("no layer carries a mask" in note for note in selection.notes)


def test_fused_split_of_a_mask_checkpoint_and_of_a_qkv_linear():
    torch.manual_seed(2)
    model = ViTBlock()
    result = generate_masks(model, "random", 0.5, seed=0)
    mask, weight = result.masks["attn.qkv.weight"], model.attn.qkv.weight.detach()
    selection = layers_from_state_dict(model.state_dict(), result.masks)
    records = {layer.name: layer for layer in selection.layers}
    assert [layer.name for layer in selection.layers] == [name for name, _ in EXPECTED["vit_qkv"][1]]
    for name, rows_mask, rows_weight in zip(split_names("attn.qkv"), _fused_rows(mask), _fused_rows(weight)):
        assert torch.equal(records[name].mask, rows_mask) and torch.equal(records[name].weight, rows_weight)


def test_gpt2_conv1d_is_transposed_then_split():
    torch.manual_seed(3)
    model = GPT2Block()
    stored = model.h[0].attn.c_attn.weight.detach()  # (D, 3D): input-major
    assert [entry.name for entry in find_layers(model)[0] if entry.input_major] == [
        "h.0.attn.c_attn.weight",
        "h.0.attn.c_proj.weight",
        "h.0.mlp.c_fc.weight",
        "h.0.mlp.c_proj.weight",
    ]
    from_state = layers_from_state_dict(model.state_dict())
    assert any("GPT-2" in note for note in from_state.notes)
    for selection in (layers_from_module(model), from_state):
        records = {layer.name: layer for layer in selection.layers}
        for name, rows in zip(split_names("h.0.attn.c_attn"), _fused_rows(stored.T)):
            assert torch.equal(records[name].weight, rows)
        assert torch.equal(records["h.0.mlp.c_fc"].weight, model.h[0].mlp.c_fc.weight.detach().T)
    masks = generate_masks(model, "random", 0.25, seed=1).masks
    assert masks["h.0.attn.c_attn.weight"].shape == (D, 3 * D)  # masked as stored


def test_tied_lm_head_is_skipped_by_every_reader():
    model = GPT2Block(tied=True)
    masked = [entry.name for entry in maskable_parameters(model)]
    assert "lm_head.weight" not in masked
    for selection in (layers_from_module(model), layers_from_state_dict(model.state_dict())):
        reasons = {s.name: s.reason for s in selection.skipped}
        assert "tied to wte" in reasons["lm_head"]
        assert "lm_head" not in [layer.name for layer in selection.layers]


def test_grouped_and_transposed_convs_are_skipped_with_reasons():
    model = conv_net()
    selection = layers_from_module(model)
    assert _layers(selection) == [("stem", (8, 3, 3, 3)), ("fc", (3, 4))]
    assert [layer.kind for layer in selection.layers] == ["Conv2d", "Linear"]
    reasons = {s.name: s.reason for s in selection.skipped}
    assert set(reasons) == {"depthwise", "grouped", "up"}
    assert "groups=8" in reasons["depthwise"] and "groups=2" in reasons["grouped"]
    assert "transposed" in reasons["up"]
    assert [entry.name for entry in maskable_parameters(model)] == ["stem.weight", "fc.weight"]
    # a bare state dict cannot tell them apart (read by shape, with a note); its masks can
    bare = layers_from_state_dict(model.state_dict())
    assert [layer.name for layer in bare.layers] == ["stem", "depthwise", "grouped", "up", "fc"]
    assert any("bare state dict" in note for note in bare.notes)
    masks = generate_masks(model, "random", 0.5, seed=0).masks
    masked = layers_from_state_dict(model.state_dict(), masks)
    assert _layers(masked) == _layers(selection)
    assert {s.name for s in masked.skipped} == {"depthwise", "grouped", "up"}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_analyze_and_generate_masks_work_on_transformers(case, tmp_path):
    torch.manual_seed(4)
    factory, expected, _ = EXPECTED[case]
    model = factory()
    table = fs.analyze(model)
    assert list(table["layer"]) == [name for name, _ in expected]
    assert list(table["shape"]) == ["x".join(map(str, shape)) for _, shape in expected]
    result = fs.generate_masks(model, "random", 0.5)
    params = maskable_parameters(model)
    assert list(result.masks) == [entry.name for entry in params]
    total = sum(entry.param.numel() for entry in params)
    assert result.kept == round(0.5 * total)
    # the masks go through SPEC §8's mask checkpoint and back into the analysis, split as before
    path = fs.save_mask_checkpoint(tmp_path / "mask.pt", result.masks, model.state_dict(), result.meta())
    loaded = fs.analyze(path)
    assert list(loaded["layer"]) == [name for name, _ in expected]
    assert loaded["edges"].sum() == result.kept


def test_snip_scores_through_multihead_attention():
    torch.manual_seed(5)
    model = AttentionBlock()
    data = [(torch.randn(6, 4, D), torch.randint(0, 3, (6,)))]
    result = generate_masks(model, "snip", 0.3, data=data, seed=0)
    assert set(result.masks) == {entry.name for entry in maskable_parameters(model)}
    assert float(result.masks["attn.in_proj_weight"].float().mean()) > 0  # attention weights compete


def test_wrapped_models_name_layers_without_the_wrapper():
    selection = layers_from_module(nn.DataParallel(AttentionBlock()))
    assert _layers(selection) == EXPECTED["mha_fused"][1]
    assert maskable_parameters(nn.DataParallel(AttentionBlock()))[0].name == "module.attn.in_proj_weight"


def test_names_of_attention_projections():
    assert layer_name("attn.q_proj_weight") == "attn.q"
    assert layer_name("module.attn.v_proj_weight_orig") == "attn.v"
    assert layer_name("attn.in_proj_weight_mask") == "attn.in_proj_weight"
    assert layer_name("blocks.0.attn.qkv.weight") == "blocks.0.attn.qkv"
    assert split_names("blocks.0.attn.qkv") == (
        "blocks.0.attn.qkv.q",
        "blocks.0.attn.qkv.k",
        "blocks.0.attn.qkv.v",
    )
    assert weight_key("attn.k_proj_weight") == "attn.k_proj_weight"
    assert weight_key("layer1.0.conv1") == "layer1.0.conv1.weight"
    for layer in ("attn.q", "layer1.0.conv1", "lm_head"):
        assert layer_name(parameter_name(layer)) == layer
