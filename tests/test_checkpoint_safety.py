"""Hostile and broken checkpoint files: each refused in one line naming the file, nothing materialised.

A checkpoint is someone else's file. Whatever it holds, reading it must not run code, must not
allocate what a tiny file merely claims (an expanded tensor, a header's shape), and must end in one
:class:`~fullspectrum.errors.FullSpectrumError` line that names the file and the tensor or layer
(SPEC §8: exit status 2 on the command line), with no warning of torch or numpy on the way.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fullspectrum import analyze, load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.checkpoints.limits import MAX_TENSOR_ELEMENTS, MAX_TENSOR_ELEMENTS_ENV
from fullspectrum.cli import main
from fullspectrum.errors import CheckpointError, FullSpectrumError, MaskError

ROOT = Path(__file__).resolve().parents[1]


def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    weight = torch.randn(6, 5)
    weight[weight.abs() < 0.5] = 0
    return {"fc.weight": weight, "fc.bias": torch.zeros(6), "head.weight": torch.randn(3, 6)}


def refused(path: Path, error_type: type = FullSpectrumError, *, read=analyze) -> str:
    """The one-line message reading ``path`` raises; no warning may escape on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(error_type) as error:
            read(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    assert [str(w.message) for w in caught] == []
    return message


# --- tensors that claim more than the file holds --------------------------------------------


def test_expanded_tensor_is_refused_before_it_is_materialised(tmp_path):
    path = tmp_path / "expanded.pt"
    torch.save({"fc.weight": torch.zeros(1).expand(3000, 3000), "head.weight": torch.ones(2, 3)}, path)
    assert path.stat().st_size < 4000  # a stride-0 view is saved with its one-element storage
    message = refused(path, CheckpointError)
    assert "fc.weight" in message and "storage" in message and "(3000, 3000)" in message


def test_expanded_tensor_in_a_mask_checkpoint_is_refused(tmp_path):
    path = tmp_path / "mask.pt"
    state = tiny_state()
    masks = {"fc.weight": torch.ones(1, dtype=torch.bool).expand(6, 5)}
    torch.save({"masks": masks, "state_dict": state, "meta": {}}, path)
    message = refused(path, CheckpointError, read=load_mask_checkpoint)
    assert "masks/fc.weight" in message and "storage" in message


@pytest.mark.slow  # a real process
def test_huge_expanded_tensor_allocates_nothing_end_to_end(tmp_path):
    """The audit's 1.5 kB file claiming 200000² floats (160 GB): refused under a 6 GB address-space cap."""
    path = tmp_path / "huge.pt"
    torch.save({"fc.weight": torch.zeros(1).expand(200000, 200000)}, path)

    def cap_memory():  # the child may map torch, but not allocate the claimed tensor
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    result = subprocess.run(
        [sys.executable, "-m", "fullspectrum", "analyze", str(path), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        preexec_fn=cap_memory,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and str(path) in lines[0] and "fc.weight" in lines[0], result.stderr
    assert result.stdout == ""


def test_zip_entry_that_inflates_like_a_bomb_is_refused(tmp_path):
    """torch.load reads deflated zips and allocates an entry's declared size before inflating it."""
    buffer = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(2048, 2100)}, buffer)  # 17 MB of zeros: deflates ~1000:1
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, zipfile.ZipFile(path, "w") as out:
        for entry in source.infolist():
            out.writestr(entry.filename, source.read(entry), compress_type=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 100_000
    message = refused(path, CheckpointError)
    assert "zip entry" in message and "data/0" in message and "torch.save" in message


def test_deflated_zip_that_inflates_modestly_is_read(tmp_path):
    buffer = io.BytesIO()
    torch.save(tiny_state(), buffer)
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, zipfile.ZipFile(path, "w") as out:
        for entry in source.infolist():
            out.writestr(entry.filename, source.read(entry), compress_type=zipfile.ZIP_DEFLATED)
    assert list(analyze(path)["layer"]) == ["fc", "head"]


def test_tensor_over_the_limit_is_refused_and_the_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    torch.save(tiny_state(), path)
    assert MAX_TENSOR_ELEMENTS >= 2**31  # a real LLM projection fits under the default
    monkeypatch.setenv(MAX_TENSOR_ELEMENTS_ENV, "20")
    message = refused(path, CheckpointError)
    assert "fc.weight" in message and "30 elements" in message and MAX_TENSOR_ELEMENTS_ENV in message
    monkeypatch.setenv(MAX_TENSOR_ELEMENTS_ENV, "30")
    assert list(analyze(path)["layer"]) == ["fc", "head"]
    monkeypatch.setenv(MAX_TENSOR_ELEMENTS_ENV, "lots")
    with pytest.raises(FullSpectrumError, match=f"{MAX_TENSOR_ELEMENTS_ENV}.*lots"):
        analyze(path)


def test_safetensors_shape_over_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_state().items()}, str(path))
    monkeypatch.setenv(MAX_TENSOR_ELEMENTS_ENV, "20")
    message = refused(path, CheckpointError)
    assert "fc.weight" in message and "(6, 5)" in message


def _safetensors_bytes(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


@pytest.mark.parametrize(
    "content",
    [
        _safetensors_bytes(
            {"fc.weight": {"dtype": "F32", "shape": [200000, 200000], "data_offsets": [0, 160_000_000_000]}},
            b"\0" * 64,
        ),
        _safetensors_bytes({"fc.weight": {"dtype": "F32", "shape": [2, 2]}}, b"\0" * 16),
        b"\xff" * 8 + b"{}",
        b"",
    ],
    ids=["huge shape", "no offsets", "header length past the end", "empty"],
)
def test_broken_safetensors_is_one_line(content, tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    assert "safetensors" in refused(path, CheckpointError)


# --- tensors that are not layers' weights ----------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (3, 0, 3, 3)])
def test_zero_size_weight_is_refused_naming_the_layer(shape, tmp_path):
    path = tmp_path / "empty.pt"
    torch.save({**tiny_state(), "fc.weight": torch.zeros(shape)}, path)
    message = refused(path, MaskError)
    assert "layer fc" in message and "empty" in message and str(shape) in message


@pytest.mark.parametrize(
    "dtype, fragment",
    [(torch.complex64, "complex"), (torch.complex128, "complex"), (torch.bool, "bool")],
)
def test_non_real_weights_are_refused(dtype, fragment, tmp_path):
    path = tmp_path / "weights.pt"
    state = tiny_state()
    state["fc.weight"] = state["fc.weight"].to(dtype)
    torch.save(state, path)
    message = refused(path, MaskError)
    assert "layer fc" in message and fragment in message


def test_complex_mask_is_refused(tmp_path):
    path = tmp_path / "masks.pt"
    state = tiny_state()
    torch.save({"state_dict": state, "masks": {"fc.weight": torch.ones(6, 5, dtype=torch.complex64)}}, path)
    assert "complex" in refused(path, MaskError)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.bfloat16, torch.float16, torch.int8])
def test_real_weights_of_any_precision_are_read(dtype, tmp_path):
    path = tmp_path / "weights.pt"
    state = tiny_state()
    state["fc.weight"] = (state["fc.weight"] * 4).to(dtype)
    torch.save(state, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = analyze(path)
    assert list(table["layer"]) == ["fc", "head"] and [str(w.message) for w in caught] == []
    assert table.set_index("layer").loc["fc", "edges"] == int((state["fc.weight"].float() != 0).sum())


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda w: w.to_sparse(), "to_dense()"),
        (lambda w: torch.quantize_per_tensor(w, 0.1, 0, torch.qint8), "dequantize()"),
    ],
    ids=["sparse", "quantized"],
)
def test_sparse_and_quantized_tensors_are_refused_with_how_to_resave(make, fragment, tmp_path):
    path = tmp_path / "weights.pt"
    state = tiny_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warnings while the test builds the file
        state["fc.weight"] = make(state["fc.weight"])
        torch.save(state, path)
    message = refused(path, CheckpointError)
    assert "fc.weight" in message and fragment in message


def test_meta_tensor_is_refused(tmp_path):
    path = tmp_path / "meta.pt"
    torch.save({**tiny_state(), "fc.weight": torch.empty(6, 5, device="meta")}, path)
    message = refused(path, CheckpointError)
    assert "fc.weight" in message and "meta tensor" in message


def test_damaged_pickle_is_named_without_torchs_advice_to_load_unsafely(tmp_path):
    path = tmp_path / "damaged.pt"
    path.write_bytes(b"\x80\x02\x8e" + b"\x00" * 200)
    message = refused(path, CheckpointError)
    assert "corrupt, truncated" in message and "Unsupported operand 142" in message
    assert "weights_only" not in message and "PyTorch 2.6" not in message


def test_non_tensor_under_a_weight_name_is_refused(tmp_path):
    path = tmp_path / "lists.pt"
    torch.save({**tiny_state(), "fc.weight": [[1.0, 0.0], [0.0, 1.0]], "epoch": 3}, path)
    message = refused(path, CheckpointError)
    assert "fc.weight" in message and "list" in message


def test_other_non_tensor_values_are_ignored(tmp_path):
    path = tmp_path / "extras.pt"
    torch.save({**tiny_state(), "epoch": 3, "arch": "tiny", "best": 0.9, "history": [1, 2]}, path)
    assert list(analyze(path)["layer"]) == ["fc", "head"]


def test_masks_that_are_not_0_1_are_refused(tmp_path):
    path = tmp_path / "masks.pt"
    torch.save({"state_dict": tiny_state(), "masks": {"fc.weight": torch.full((6, 5), 2.0)}}, path)
    message = refused(path, MaskError)
    assert "fc" in message and "not binary" in message


# --- pickles the safe loader refuses, and why --------------------------------------------------


class RunsShell:
    """Unpickling this would run a shell command (``os.system``): the safe loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_os_system_pickle_is_refused_as_unsafe_not_corrupt(zip_format, tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    torch.save({**tiny_state(), "extra": RunsShell(marker)}, path, _use_new_zipfile_serialization=zip_format)
    message = refused(path, CheckpointError)
    assert "unsafe pickled globals" in message and f"{os.system.__module__}.system" in message
    assert "corrupt" not in message and "state_dict()" in message
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_new_pickle_protocol_says_how_to_resave(protocol, zip_format, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(tiny_state(), path, pickle_protocol=protocol, _use_new_zipfile_serialization=zip_format)
    message = refused(path, CheckpointError)
    assert f"pickle protocol {protocol}" in message and "corrupt" not in message
    assert "torch.save" in message


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_protocol_3_and_legacy_files_load_without_warnings(zip_format, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(tiny_state(), path, pickle_protocol=3, _use_new_zipfile_serialization=zip_format)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(analyze(path)["layer"]) == ["fc", "head"]
    assert [str(w.message) for w in caught] == []


def test_legacy_file_claiming_a_huge_storage_is_refused_before_allocating(tmp_path):
    path = tmp_path / "claims.pt"
    torch.save({"fc.weight": torch.zeros(7, 13)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    at = data.index(b"K[")  # BININT1 91: the storage's element count
    path.write_bytes(data[:at] + b"\x8a\x05" + (10**11).to_bytes(5, "little") + data[at + 2 :])
    message = refused(path, CheckpointError)
    assert "storage" in message and str(10**11) in message


# --- the mask checkpoint (SPEC §8) -------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_mask_checkpoint_with_non_finite_weights_names_file_and_tensor(bad, tmp_path):
    path = tmp_path / "mask.pt"
    state = tiny_state()
    masks = {"fc.weight": state["fc.weight"] != 0}
    state["fc.weight"] = state["fc.weight"].clone()
    state["fc.weight"][0, 0] = bad
    torch.save({"masks": masks, "state_dict": state, "meta": {"seed": 0}}, path)
    message = refused(path, MaskError, read=load_mask_checkpoint)
    assert "fc.weight" in message and "NaN or Inf" in message
    with pytest.raises(MaskError, match="fc.weight"):
        save_mask_checkpoint(tmp_path / "again.pt", masks, state, {})
    assert not (tmp_path / "again.pt").exists()


def test_mask_checkpoint_with_nan_in_another_tensor_is_refused(tmp_path):
    path = tmp_path / "mask.pt"
    state = tiny_state()
    state["fc.bias"] = torch.full((6,), float("nan"))
    torch.save({"masks": {"fc.weight": state["fc.weight"] != 0}, "state_dict": state, "meta": {}}, path)
    assert "fc.bias" in refused(path, CheckpointError, read=load_mask_checkpoint)


# --- what the command line makes of them --------------------------------------------------------


def _expanded(path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(1).expand(3000, 3000)}, path)


def _legacy_os_system(path: Path) -> None:
    torch.save({"x": RunsShell(path.with_suffix(".ran"))}, path, _use_new_zipfile_serialization=False)


def _complex(path: Path) -> None:
    torch.save({"fc.weight": torch.ones(3, 4, dtype=torch.complex64)}, path)


CLI_CASES = {
    "expanded": (_expanded, "storage"),
    "legacy os.system": (_legacy_os_system, "unsafe pickled globals"),
    "protocol 4": (lambda p: torch.save(tiny_state(), p, pickle_protocol=4), "pickle protocol 4"),
    "complex": (_complex, "complex"),
    "zero size": (lambda p: torch.save({"fc.weight": torch.zeros(0, 5)}, p), "empty"),
    "empty file": (lambda p: p.write_bytes(b""), "empty"),
    "folder": (lambda p: p.mkdir(), "not a file"),
    "truncated zip": (
        lambda p: (torch.save(tiny_state(), p), p.write_bytes(p.read_bytes()[:700])),
        "corrupt, truncated",
    ),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_analyze_command_exits_2_with_one_line(case, tmp_path, capsys):
    write, fragment = CLI_CASES[case]
    path = tmp_path / "input.pt"
    write(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["analyze", str(path), "--format", "csv"])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and [str(w.message) for w in caught] == []
    assert len(lines) == 1 and lines[0].startswith(f"fullspectrum: error: {path}: "), err
    assert fragment in lines[0]
    assert not path.with_suffix(".ran").exists()
