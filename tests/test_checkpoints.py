"""Sparse checkpoints users already have, and the project's mask checkpoint (SPEC §1, §8).

Every format is written from one tiny masked network built here; each must give
the table ``analyze`` gives on the model itself.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune

from fullspectrum import (
    SPECTRUM_FIELDS,
    analyze,
    load_mask_checkpoint,
    load_sparse_checkpoint,
    save_mask_checkpoint,
)
from fullspectrum.errors import CheckpointError, FullSpectrumError, MaskError
from fullspectrum.layers.selection import layers_from_module, layers_from_state_dict
from fullspectrum.spectrum.network import TABLE_COLUMNS

LAYERS = ["features.0", "features.3", "classifier.0", "classifier.2"]
GRAPH_FIELDS = [f for f in SPECTRUM_FIELDS if f not in ("omega1", "omega2", "lambda_w", "lambda_imsg")]


class TinyNet(nn.Module):
    """Conv + BN + Conv + Linear + Linear: the checkpoint formats' common source."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 12, 3), nn.AdaptiveAvgPool2d(1)
        )
        self.classifier = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def masked_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    net = TinyNet()
    for name in LAYERS:
        prune.random_unstructured(net.get_submodule(name), "weight", amount=0.6)
    return net


def masks_of(net: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": net.get_submodule(name).weight_mask.bool() for name in LAYERS}


def plain_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """What ``prune.remove`` would save: pruned weights are exact zeros, no ``_orig``/``_mask``."""
    state = net.state_dict()
    plain = {}
    for key, value in state.items():
        if key.endswith("weight_orig"):
            plain[key.replace("weight_orig", "weight")] = value * state[key.replace("_orig", "_mask")]
        elif not key.endswith("weight_mask"):
            plain[key] = value
    return plain


def orig_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """Dense weights (``weight_orig``) under their plain names, as a mask checkpoint stores them."""
    return {k.replace("weight_orig", "weight"): v for k, v in net.state_dict().items() if "_mask" not in k}


@pytest.fixture(scope="module")
def net() -> TinyNet:
    return masked_net()


@pytest.fixture(scope="module")
def reference(net) -> pd.DataFrame:
    return analyze(net)


def _torch(obj):
    def write(path):
        torch.save(obj, path)

    return write


def _safetensors(tensors):
    def write(path):
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))

    return write


def writers(net: nn.Module) -> dict[str, tuple]:
    """name -> (file suffix, writer, expected format)."""
    prune_sd = net.state_dict()
    plain = plain_state_dict(net)
    masks = masks_of(net)
    namespace = argparse.Namespace(
        lr=np.float64(0.1), density=np.float32(0.4), epochs=np.int64(3), arch="tiny"
    )
    return {
        "prune": (".pt", _torch(prune_sd), "prune"),
        "prune_dataparallel": (".pt", _torch(nn.DataParallel(net).state_dict()), "prune"),
        "prune_nested_state_dict": (".pth", _torch({"epoch": 3, "state_dict": prune_sd}), "prune"),
        "prune_nested_model": (
            ".tar",
            _torch({"model": {f"module.{k}": v for k, v in prune_sd.items()}}),
            "prune",
        ),
        "prune_nested_net": (
            ".pt",
            _torch({"net": prune_sd, "optimizer": {"state": {}, "lr": 0.1}}),
            "prune",
        ),
        "plain": (".pt", _torch(plain), "plain"),
        "plain_with_args": (
            ".pt",
            _torch(
                {"args": namespace, "best_acc": np.float64(91.5), "epoch": np.int64(7), "state_dict": plain}
            ),
            "plain",
        ),
        "mask_checkpoint": (
            ".pt",
            lambda path: save_mask_checkpoint(path, masks, orig_state_dict(net), {"generator": "random"}),
            "mask_checkpoint",
        ),
        "sparselearning": (
            ".pt",
            _torch({"state_dict": plain, "masks": {f"module.{k}": v.float() for k, v in masks.items()}}),
            "masks_and_state_dict",
        ),
        "safetensors_prune": (".safetensors", _safetensors(prune_sd), "prune"),
        "safetensors_plain": (".safetensors", _safetensors(plain), "plain"),
        "safetensors_flat_masks": (
            ".safetensors",
            _safetensors(
                {
                    **{f"masks.{k}": v for k, v in masks.items()},
                    **{f"state_dict.{k}": v for k, v in plain.items()},
                }
            ),
            "masks_and_state_dict",
        ),
    }


FORMAT_CASES = list(writers(masked_net()))


@pytest.mark.parametrize("case", FORMAT_CASES)
def test_every_format_gives_the_models_table(case, net, reference, tmp_path):
    suffix, write, expected_format = writers(net)[case]
    path = tmp_path / f"{case}{suffix}"
    write(path)
    checkpoint = load_sparse_checkpoint(path)
    assert checkpoint.format == expected_format
    table = analyze(path)
    if suffix == ".safetensors":  # the format keeps tensors in name order, not the model's
        assert list(checkpoint.masks) == sorted(LAYERS)
        assert any("name order" in note for note in checkpoint.notes)
        table = table.set_index("layer").loc[LAYERS].reset_index()
    else:
        assert list(checkpoint.masks) == LAYERS
    for name in LAYERS:
        assert torch.equal(checkpoint.masks[name], net.get_submodule(name).weight_mask.bool())
    assert list(table.columns) == list(TABLE_COLUMNS)
    pd.testing.assert_frame_equal(table, reference, check_exact=False, rtol=1e-12)


def test_reference_table_is_what_the_engine_says(net, reference):
    from fullspectrum import layer_spectrum

    assert list(reference["layer"]) == LAYERS
    assert list(reference["kind"]) == ["Conv2d", "Conv2d", "Linear", "Linear"]
    assert list(reference["shape"]) == ["8x3x3x3", "12x8x3x3", "16x12", "10x16"]
    layer = net.get_submodule("features.3")
    direct = layer_spectrum(layer.weight_mask, layer.weight_orig)
    row = reference.set_index("layer").loc["features.3"]
    assert row["sigma2"] == pytest.approx(direct.sigma2, rel=1e-12)
    assert row["edges"] == int(layer.weight_mask.sum())


def test_plain_state_dict_says_zero_weights_look_pruned(net, tmp_path):
    torch.save(plain_state_dict(net), tmp_path / "plain.pt")
    notes = " ".join(load_sparse_checkpoint(tmp_path / "plain.pt").notes)
    assert "exactly zero look pruned" in notes
    assert "bare state dict" in notes


def test_in_memory_sources_agree(net, reference):
    masks = masks_of(net)
    pairs = {name: (masks[f"{name}.weight"], net.get_submodule(name).weight_orig) for name in LAYERS}
    pd.testing.assert_frame_equal(analyze(pairs), reference, check_exact=False, rtol=1e-12)
    bundle = {"masks": masks, "state_dict": orig_state_dict(net)}
    pd.testing.assert_frame_equal(analyze(bundle), reference, check_exact=False, rtol=1e-12)
    numpy_masks = {k: v.numpy() for k, v in masks.items()}
    masks_only = analyze(numpy_masks)
    pd.testing.assert_frame_equal(masks_only[GRAPH_FIELDS], reference[GRAPH_FIELDS])
    assert masks_only["lambda_w"].isna().all() and masks_only["omega1"].isna().all()


def test_numpy_scalars_saved_by_numpy_1_load(net, tmp_path):
    """numpy 1.x pickles scalars as ``numpy.core.multiarray.scalar``; numpy 2 as ``numpy._core...``."""
    buffer = io.BytesIO()
    obj = {
        "best_acc": np.float64(91.5),
        "args": argparse.Namespace(seed=np.int64(1)),
        "state_dict": net.state_dict(),
    }
    torch.save(obj, buffer, _use_new_zipfile_serialization=False)
    raw = buffer.getvalue()
    assert b"numpy._core.multiarray" in raw or b"numpy.core.multiarray" in raw
    (tmp_path / "old.pt").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert load_sparse_checkpoint(tmp_path / "old.pt").format == "prune"


_LOADED: list[str] = []


def _would_run_code():
    _LOADED.append("ran")
    return "payload"


class Payload:
    """A global a weights-only load must refuse (its ``__reduce__`` would call a function)."""

    def __reduce__(self):
        return (_would_run_code, ())


def test_unsafe_globals_are_refused_with_how_to_resave(net, tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": net.state_dict(), "extra": Payload()}, path)
    with pytest.raises(CheckpointError) as error:
        load_sparse_checkpoint(path)
    message = str(error.value)
    assert "unsafe pickled globals" in message and "_would_run_code" in message
    assert "state_dict()" in message and str(path) in message and "\n" not in message
    assert _LOADED == []


def test_pickled_whole_model_is_refused(net, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(net, path)
    with pytest.raises(CheckpointError, match="unsafe pickled globals.*TinyNet"):
        load_sparse_checkpoint(path)


def _with(state: dict, **changes) -> dict:
    state = dict(state)
    state.update(changes)
    return state


def bad_inputs(net: nn.Module) -> dict[str, tuple]:
    """name -> (writer or None for a missing file, error type, fragments of the one-line message)."""
    prune_sd = net.state_dict()
    half_mask = prune_sd["features.3.weight_mask"].clone()
    half_mask[0, 0, 0, 0] = 0.5
    nan_weight = prune_sd["classifier.0.weight_orig"].clone()
    nan_weight[1, 2] = float("nan")
    inf_plain = plain_state_dict(net)
    inf_plain["classifier.2.weight"] = inf_plain["classifier.2.weight"].clone()
    inf_plain["classifier.2.weight"][0, 0] = float("inf")

    def truncated(path):
        torch.save(prune_sd, path)
        path.write_bytes(path.read_bytes()[:900])

    def garbage(path):
        path.write_bytes(b"this is not a checkpoint\n" * 10)

    return {
        "missing": (None, CheckpointError, ["no such file"]),
        "truncated": (truncated, CheckpointError, ["corrupt, truncated"]),
        "garbage": (garbage, CheckpointError, ["corrupt, truncated"]),
        "no_layers": (
            _torch({"fc.bias": torch.zeros(3), "bn.weight": torch.ones(3)}),
            CheckpointError,
            ["no layers"],
        ),
        "not_a_mapping": (_torch([torch.zeros(3, 3)]), CheckpointError, ["holds a list"]),
        "shape_mismatch": (
            _torch(_with(prune_sd, **{"classifier.0.weight_mask": torch.ones(16, 11)})),
            MaskError,
            ["classifier.0", "shape"],
        ),
        "non_binary": (
            _torch(_with(prune_sd, **{"features.3.weight_mask": half_mask})),
            MaskError,
            ["features.3", "not binary"],
        ),
        "nan_weight": (
            _torch(_with(prune_sd, **{"classifier.0.weight_orig": nan_weight})),
            MaskError,
            ["classifier.0", "NaN"],
        ),
        "inf_weight_plain": (_torch(inf_plain), MaskError, ["classifier.2", "Inf"]),
        "bad_safetensors": (lambda p: p.write_bytes(b"\x10\x00garbage"), CheckpointError, ["safetensors"]),
    }


BAD_CASES = list(bad_inputs(masked_net()))


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_naming_file_and_problem(case, net, tmp_path):
    write, error_type, fragments = bad_inputs(net)[case]
    path = tmp_path / (f"{case}.safetensors" if "safetensors" in case else f"{case}.pt")
    if write is not None:
        write(path)
    with pytest.raises(error_type) as error:
        analyze(path)
    message = str(error.value)
    assert isinstance(error.value, FullSpectrumError) and isinstance(error.value, ValueError)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_collapsed_layer_is_reported_not_an_error(net, tmp_path):
    state = net.state_dict()
    state["classifier.2.weight_mask"] = torch.zeros_like(state["classifier.2.weight_mask"])
    torch.save(state, tmp_path / "collapsed.pt")
    table = analyze(tmp_path / "collapsed.pt").set_index("layer")
    row = table.loc["classifier.2"]
    assert row["edges"] == 0 and row["density"] == 0 and row["n_classes"] == 0 and not row["in_regime"]
    assert row["dead_left"] == 16 and row["dead_right"] == 10
    assert np.isnan(row[["sigma1", "sigma2", "delta_r", "lambda_w", "delta_r_imdb"]].astype(float)).all()
    assert any("classifier.2" in n and "collapsed" in n for n in table.attrs["notes"])
    assert table.loc["features.3", "edges"] > 0


# --- which tensors are layers (SPEC §1) -------------------------------------------------------


class Zoo(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(4, 6, 3)
        self.conv3d = nn.Conv3d(2, 3, (1, 2, 2))
        self.grouped = nn.Conv2d(4, 8, 3, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8)
        self.transposed = nn.ConvTranspose2d(8, 4, 3)
        self.embedding = nn.Embedding(20, 6)
        self.attention = nn.MultiheadAttention(6, 2)
        self.norm = nn.LayerNorm((3, 4))
        self.head = nn.Linear(6, 5)


def test_module_layers_and_skipped_with_reasons():
    selection = layers_from_module(nn.DataParallel(Zoo()))
    # attention projections are layers (SPEC §1 as amended): the fused in_proj_weight as q, k, v
    assert [(r.name, r.kind) for r in selection.layers] == [
        ("conv1d", "Conv1d"),
        ("conv3d", "Conv3d"),
        ("attention.q", "Linear"),
        ("attention.k", "Linear"),
        ("attention.v", "Linear"),
        ("attention.out_proj", "Linear"),
        ("head", "Linear"),
    ]
    assert selection.layers[1].shape == (3, 2, 1, 2, 2)
    reasons = {s.name: s.reason for s in selection.skipped}
    assert set(reasons) == {"grouped", "depthwise", "transposed", "embedding"}
    assert "groups=2" in reasons["grouped"] and "groups=8" in reasons["depthwise"]
    assert "transposed" in reasons["transposed"]
    assert "embedding" in reasons["embedding"]
    assert not any(name.startswith("module") for name in [*reasons, *(r.name for r in selection.layers)])
    assert "no layer carries a mask" in selection.notes[0]


def test_bare_state_dict_reads_weights_by_shape_and_says_so():
    selection = layers_from_state_dict(Zoo().state_dict())
    names = [r.name for r in selection.layers]
    # a bare state dict cannot tell grouped or transposed convolutions apart: read as Conv2d, with a note
    # attention projections are layers (SPEC §1 as amended): the fused in_proj_weight as q, k, v
    assert names == [
        "conv1d",
        "conv3d",
        "grouped",
        "depthwise",
        "transposed",
        "attention.q",
        "attention.k",
        "attention.v",
        "attention.out_proj",
        "head",
    ]
    reasons = {s.name: s.reason for s in selection.skipped}
    assert set(reasons) == {"embedding", "norm"}
    assert any("bare state dict" in note for note in selection.notes)


def test_state_dict_with_masks_skips_unmasked_weights():
    zoo = Zoo()
    prune.l1_unstructured(zoo.head, "weight", amount=0.5)
    selection = layers_from_state_dict(zoo.state_dict())
    assert [r.name for r in selection.layers] == ["head"]
    assert "no mask" in {s.name: s.reason for s in selection.skipped}["depthwise"]


# --- the mask checkpoint file (SPEC §8) -------------------------------------------------------


def test_mask_checkpoint_round_trip(net, tmp_path):
    masks = {k: v.float() for k, v in masks_of(net).items()}
    state = orig_state_dict(net)
    meta = {"generator": "random", "density": np.float64(0.4), "seed": 0, "torch": torch.__version__}
    path = save_mask_checkpoint(tmp_path / "sub" / "mask.pt", masks, state, meta)
    assert sorted(p.name for p in path.parent.iterdir()) == ["mask.pt"]  # no temporary left behind
    raw = torch.load(path, weights_only=True, map_location="cpu")
    assert set(raw) == {"masks", "state_dict", "meta"}
    loaded = load_mask_checkpoint(path)
    assert loaded.meta == {"generator": "random", "density": 0.4, "seed": 0, "torch": torch.__version__}
    assert type(loaded.meta["density"]) is float
    assert list(loaded.masks) == list(masks)
    for name, mask in masks.items():
        assert loaded.masks[name].dtype == torch.bool and torch.equal(loaded.masks[name], mask.bool())
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in state.items())
    save_mask_checkpoint(path, {}, {}, {})  # overwrite in place
    assert load_mask_checkpoint(path).masks == {}


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"meta": {"shape": [1, 2]}}, "only strings and numbers"),
        ({"meta": {"seed": None}}, "only strings and numbers"),
        ({"masks": {"classifier.2.weight": torch.full((10, 16), 0.5)}}, "not binary"),
        ({"masks": {"classifier.2.weight": torch.ones(10, 15)}}, "shape"),
        ({"masks": {"nope.weight": torch.ones(3, 3)}}, "no weight of that name"),
    ],
)
def test_mask_checkpoint_refuses_bad_content(change, fragment, net, tmp_path):
    arguments = {"masks": masks_of(net), "state_dict": orig_state_dict(net), "meta": {"seed": 0}}
    arguments.update(change)
    with pytest.raises(FullSpectrumError, match=fragment):
        save_mask_checkpoint(
            tmp_path / "bad.pt", arguments["masks"], arguments["state_dict"], arguments["meta"]
        )
    assert list(tmp_path.iterdir()) == []


def test_load_mask_checkpoint_refuses_other_files(net, tmp_path):
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="not a mask checkpoint"):
        load_mask_checkpoint(tmp_path / "sd.pt")


def test_analyze_reports_skipped_tensors_and_progress():
    calls: list[tuple[int, int]] = []
    table = analyze(Zoo(), progress=lambda done, total: calls.append((done, total)))
    layers = ["conv1d", "conv3d", "attention.q", "attention.k", "attention.v", "attention.out_proj", "head"]
    assert list(table["layer"]) == layers  # attention projections are layers (SPEC §1 as amended)
    # Progress comes per batch of layers (the engine solves small layers together): it rises to the total.
    assert calls and calls[-1] == (len(layers), len(layers))
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})
    assert {total for _, total in calls} == {len(layers)}
    skipped = dict(table.attrs["skipped"])
    assert {"grouped", "depthwise", "transposed", "embedding"} == set(skipped)
    assert all(reason for reason in skipped.values())


def test_empty_masks_mapping_has_no_layers(net):
    with pytest.raises(CheckpointError, match="no layers"):
        analyze({"masks": {}, "state_dict": orig_state_dict(net), "meta": {}})
    with pytest.raises(FullSpectrumError, match="no Conv/Linear layers"):
        analyze(nn.Sequential(nn.ReLU(), nn.Embedding(3, 2)))
