"""Tiny Hugging Face-shaped checkpoints written by the tests themselves (no downloads), and checks of them.

``llama_state`` holds the real parameter names of a LLaMA decoder (``model.embed_tokens.weight``,
``model.layers.N.self_attn.{q,k,v,o}_proj.weight``, ``model.layers.N.mlp.{gate,up,down}_proj.weight``,
``model.layers.N.{input,post_attention}_layernorm.weight``, ``model.norm.weight``, ``lm_head.weight``),
pruned to exact zeros at random or N:M; ``gpt2_state`` a GPT-2 block with its fused, input-major
``c_attn``; ``write_sharded`` writes any state dict as ``model.safetensors.index.json`` + shards.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

LLAMA_PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # fmt: skip


def random_mask(shape, density: float, generator: torch.Generator) -> torch.Tensor:
    """Each weight kept with probability ``density`` (unstructured)."""
    return torch.rand(shape, generator=generator) < density


def nm_mask(shape, n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """A random N:M mask: in each group of ``m`` consecutive inputs of a row, ``n`` positions kept."""
    out, length = shape[0], int(torch.tensor(shape[1:]).prod())
    order = torch.rand(out, length // m, m, generator=generator).argsort(dim=-1)
    mask = torch.zeros(out, length // m, m, dtype=torch.bool)
    mask.scatter_(-1, order[..., :n], True)
    return mask.reshape(shape)


def llama_state(
    blocks: int = 2,
    hidden: int = 16,
    intermediate: int = 32,
    vocab: int = 24,
    *,
    density: float = 0.5,
    nm: tuple[int, int] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A pruned LLaMA-shaped state dict, in the model's order: projections pruned, embeddings/norms dense."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (hidden, hidden),
              "self_attn.v_proj": (hidden, hidden), "self_attn.o_proj": (hidden, hidden),
              "mlp.gate_proj": (intermediate, hidden), "mlp.up_proj": (intermediate, hidden),
              "mlp.down_proj": (hidden, intermediate)}  # fmt: skip
    state = {"model.embed_tokens.weight": torch.randn(vocab, hidden, generator=generator)}
    for block in range(blocks):
        prefix = f"model.layers.{block}"
        state[f"{prefix}.input_layernorm.weight"] = torch.ones(hidden)
        for projection in LLAMA_PROJECTIONS:
            shape = shapes[projection]
            weight = torch.randn(shape, generator=generator)
            mask = nm_mask(shape, *nm, generator) if nm else random_mask(shape, density, generator)
            state[f"{prefix}.{projection}.weight"] = weight * mask
        state[f"{prefix}.post_attention_layernorm.weight"] = torch.ones(hidden)
    state["model.norm.weight"] = torch.ones(hidden)
    head = torch.randn(vocab, hidden, generator=generator)
    state["lm_head.weight"] = head * random_mask(head.shape, density, generator)
    return state


def gpt2_state(hidden: int = 8, *, seed: int = 1) -> dict[str, torch.Tensor]:
    """One GPT-2 block: ``Conv1D`` weights stored ``(in, out)``, a fused ``c_attn`` of ``(d, 3d)``."""
    generator = torch.Generator().manual_seed(seed)

    def pruned(*shape):
        return torch.randn(shape, generator=generator) * random_mask(shape, 0.5, generator)

    return {
        "transformer.wte.weight": torch.randn(20, hidden, generator=generator),
        "transformer.wpe.weight": torch.randn(10, hidden, generator=generator),
        "transformer.h.0.ln_1.weight": torch.ones(hidden),
        "transformer.h.0.attn.c_attn.weight": pruned(hidden, 3 * hidden),
        "transformer.h.0.attn.c_attn.bias": torch.zeros(3 * hidden),
        "transformer.h.0.attn.c_proj.weight": pruned(hidden, hidden),
        "transformer.h.0.mlp.c_fc.weight": pruned(hidden, 4 * hidden),
        "transformer.h.0.mlp.c_proj.weight": pruned(4 * hidden, hidden),
        "transformer.ln_f.weight": torch.ones(hidden),
    }


def write_sharded(folder: Path, state: dict[str, torch.Tensor], shards: int = 3, dtype=None) -> Path:
    """``state`` as ``shards`` safetensors files and ``model.safetensors.index.json``; returns the index."""
    folder.mkdir(parents=True, exist_ok=True)
    names = list(state)
    weight_map, total = {}, 0
    for index in range(shards):
        part = names[index::shards]  # interleaved: a block's tensors spread over several shards
        file = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {name: state[name].to(dtype) if dtype else state[name].contiguous() for name in part}
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in part})
        total += sum(t.numel() * t.element_size() for t in tensors.values())
    path = folder / "model.safetensors.index.json"
    path.write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    )
    return path


def test_builders_write_what_they_say(tmp_path):
    state = llama_state(blocks=2, nm=(2, 4))
    index = write_sharded(tmp_path, state)
    data = json.loads(index.read_text())
    assert set(data["weight_map"]) == set(state)
    assert len(set(data["weight_map"].values())) == 3
    groups = state["model.layers.0.mlp.down_proj.weight"].reshape(16, -1, 4)
    assert bool(((groups != 0).sum(-1) == 2).all())
    assert gpt2_state()["transformer.h.0.attn.c_attn.weight"].shape == (8, 24)
