"""Peak memory and time per layer of ``analyze`` on a 7B-shaped sharded safetensors model.

Writes a Hugging Face-style sharded checkpoint of ``--blocks`` LLaMA-7B decoder blocks
(hidden 4096, intermediate 11008: q/k/v/o ``4096x4096``, gate/up ``11008x4096``, down
``4096x11008``; the real parameter names, one shard per block, with ``model.safetensors.index.json``)
in ``--dtype`` (float16 by default, as LLaMA ships), pruned two ways: 50% unstructured (each weight
kept with probability 1/2) and 2:4. Each is then analysed in a fresh subprocess
(``fullspectrum.spectrum.network.analyze`` on the folder, as ``fullspectrum analyze DIR`` does),
which reports its peak resident memory (``VmHWM`` from ``/proc/self/status``: on Linux
``getrusage``'s ``ru_maxrss`` of a child keeps the high-water mark of the process it was forked
from, so it would count this script's own tensors), its peak after the imports, and the time of
every layer.

Target (the project's): peak memory at most ``3 x`` the largest tensor's float64 size ``+ 200 MB``
(``3 x 11008 x 4096 x 8`` bytes ``+ 200 MiB`` = 1232 MiB), counted above the memory the imports
take. ``--reader-only`` measures the reader alone (every layer read and its N:M pattern found, no
spectrum), which separates what the streaming reader holds from what the engine needs to solve one
layer.

Measured with ``--blocks 1`` (2-core dev machine): 2223 MiB above the imports before the engine kept
per-edge arrays down (csgraph's copies, the class table's per-edge arrays, CSC copies, float16
widened to float64 whole); now 1128 MiB unstructured, 1139 MiB 2:4, within the 1232 MiB target. The
engine alone peaks at about 42 bytes per kept weight on a 11008x4096 layer (tracemalloc).

    python benchmarks/bench_llm_memory.py                 # 4 blocks, both masks (about 20 minutes)
    python benchmarks/bench_llm_memory.py --blocks 1      # quicker
    python benchmarks/bench_llm_memory.py --hidden 256 --intermediate 688 --blocks 2   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # fmt: skip
MIB = 2**20

CHILD = r"""
import json, sys, time
from fullspectrum.checkpoints.sharded import open_sharded
from fullspectrum.layers.nm import nm_pattern
from fullspectrum.spectrum.network import analyze

def hwm_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

folder, reader_only = sys.argv[1], sys.argv[2] == "1"
base = hwm_mib()
start = time.perf_counter()
stamps = []
if reader_only:
    patterns = []
    for records in open_sharded(folder).records():
        patterns += [nm_pattern(record.mask) for record in records]
        del records
        stamps.append(time.perf_counter() - start)
    layers = len(patterns)
else:
    def progress(done, total):
        stamps.append((done, time.perf_counter() - start))
    table = analyze(folder, progress=progress)
    layers = len(table)
    patterns = sorted(set(table["nm_pattern"]))
elapsed = time.perf_counter() - start
print(json.dumps({"base_mib": base, "peak_mib": hwm_mib(), "seconds": elapsed,
                  "layers": layers, "patterns": sorted(set(patterns)), "stamps": stamps}))
"""


def shapes(hidden: int, intermediate: int) -> dict[str, tuple[int, int]]:
    """Each projection's ``(out, in)`` weight shape."""
    square = (hidden, hidden)
    return {"self_attn.q_proj": square, "self_attn.k_proj": square, "self_attn.v_proj": square,
            "self_attn.o_proj": square, "mlp.gate_proj": (intermediate, hidden),
            "mlp.up_proj": (intermediate, hidden), "mlp.down_proj": (hidden, intermediate)}  # fmt: skip


def pruned(shape: tuple[int, int], pattern: str, generator: torch.Generator, dtype) -> torch.Tensor:
    """A random weight with half its entries exactly zero: unstructured, or 2 of every 4 inputs."""
    weight = torch.randn(shape, generator=generator, dtype=torch.float32)
    weight = torch.where(weight < 0, -1.0, 1.0) * weight.abs().clamp_min(1e-3)  # no kept weight rounds to 0
    if pattern == "2:4":
        groups = torch.rand(shape[0], shape[1] // 4, 4, generator=generator).argsort(dim=-1)
        mask = torch.zeros(shape[0], shape[1] // 4, 4, dtype=torch.bool).scatter_(-1, groups[..., :2], True)
        mask = mask.reshape(shape)
    else:
        mask = torch.rand(shape, generator=generator) < 0.5
    return (weight * mask).to(dtype)


def write_model(folder: Path, blocks: int, hidden: int, intermediate: int, pattern: str, dtype) -> None:
    """One shard per block and the index, written tensor set by tensor set (one block in memory)."""
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    weight_map: dict[str, str] = {}
    total = 0
    for block in range(blocks):
        file = f"model-{block + 1:05d}-of-{blocks:05d}.safetensors"
        tensors = {f"model.layers.{block}.input_layernorm.weight": torch.ones(hidden, dtype=dtype),
                   f"model.layers.{block}.post_attention_layernorm.weight": torch.ones(hidden, dtype=dtype)}  # fmt: skip
        for projection, shape in shapes(hidden, intermediate).items():
            tensors[f"model.layers.{block}.{projection}.weight"] = pruned(shape, pattern, generator, dtype)
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update({name: file for name in tensors})
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


def measure(folder: Path, reader_only: bool) -> dict:
    """Analyse ``folder`` in a fresh interpreter and return what it reports."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), "1" if reader_only else "0"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4, help="decoder blocks (default 4)")
    parser.add_argument("--hidden", type=int, default=4096, help="hidden size (default 4096, LLaMA-7B)")
    parser.add_argument("--intermediate", type=int, default=11008, help="MLP size (default 11008, LLaMA-7B)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument(
        "--patterns", nargs="+", default=["unstructured", "2:4"], choices=["unstructured", "2:4"]
    )
    parser.add_argument(
        "--reader-only", action="store_true", help="read layers and N:M patterns, no spectrum"
    )
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    largest = max(math.prod(shape) for shape in shapes(args.hidden, args.intermediate).values())
    target = 3 * largest * 8 / MIB + 200
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_llm_") as scratch:
        for pattern in args.patterns:
            folder = Path(scratch) / pattern.replace(":", "of")
            started = time.perf_counter()
            write_model(folder, args.blocks, args.hidden, args.intermediate, pattern, dtype)
            written = time.perf_counter() - started
            size = sum(file.stat().st_size for file in folder.iterdir()) / MIB
            report = measure(folder, args.reader_only)
            above = report["peak_mib"] - report["base_mib"]
            per_layer = report["seconds"] / report["layers"]
            results.append({"pattern": pattern, "model_mib": size, "written_s": written, "target_mib": target,
                            "above_imports_mib": above, "within_target": above <= target, **report})  # fmt: skip
            print(
                f"{pattern:>12}: {report['layers']} layers, {size:.0f} MiB on disk ({args.dtype}); peak RSS "
                f"{report['peak_mib']:.0f} MiB ({above:.0f} MiB above the {report['base_mib']:.0f} MiB of the "
                f"imports) vs target {target:.0f} MiB: {'within' if above <= target else 'OVER'}; "
                f"{report['seconds']:.1f} s, {per_layer:.2f} s per layer; N:M found: {report['patterns']}",
                flush=True,
            )
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
