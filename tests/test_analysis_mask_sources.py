"""Tests for analysis.mask_sources (run snapshot, PAGS candidate, upload) and analysis.layer_view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.layer_view import SINGULAR_VALUES_SHOWN, inspect_layer
from analysis.mask_sources import SOURCE_KINDS, SourceMasks, load_mask_source
from fullspectrum.checkpoints.mask_file import load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.errors import FullSpectrumError, UnknownNameError
from fullspectrum.runs import RunStore
from fullspectrum.sampling import (
    ASSEMBLED,
    BASE,
    BASE_MASK_FILE,
    PAGS_MASK_FILE,
    STORED_STEPS,
    regenerate_candidate,
)
from fullspectrum.spectrum import layer_spectrum, regular_subgraphs, top_singular_values
from tests.app_fixtures import SHAPES, make_run

STEPS = (0, 10, 20)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_pags_run) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mask_sources")
    return {
        "train": make_run(root / "train", density=0.3, seed=4, accuracy=0.5, steps=STEPS),
        "pags": tiny_pags_run,  # only read here
    }


def _equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[name], b[name]) for name in a)


# -- run snapshots -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_run_snapshot_has_the_stored_masks_and_the_weights_that_snapshot_kept(runs, step):
    path = runs["train"]
    source = load_mask_source(("run", str(path), step))
    store = RunStore.open(path)
    assert _equal(source.masks, store.load_masks(step))
    assert source.label == f"train @ step {step}"
    kept = store.load_weights(step)
    assert bool(kept) == (step in (STEPS[0], STEPS[-1]))  # a training run keeps its first and last
    assert _equal(source.weights, kept)  # a training run has no base_mask.pt to fall back on
    assert source.layers() == list(SHAPES)


def test_a_pags_snapshot_falls_back_on_the_weights_it_was_sampled_at(runs):
    path = runs["pags"]
    source = load_mask_source(("run", str(path), STORED_STEPS[ASSEMBLED]))
    assert _equal(source.weights, dict(load_mask_checkpoint(path / BASE_MASK_FILE).state_dict))


# -- PAGS candidates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "file", "name"), [(BASE, BASE_MASK_FILE, "base"), (ASSEMBLED, PAGS_MASK_FILE, "assembled")]
)
def test_base_and_assembled_candidates_are_the_runs_stored_masks(runs, index, file, name):
    path = runs["pags"]
    source = load_mask_source(("candidate", str(path), index))
    stored = load_mask_checkpoint(path / file)
    assert _equal(source.masks, dict(stored.masks))
    assert _equal(source.masks, RunStore.open(path).load_masks(STORED_STEPS[index]))
    assert _equal(source.weights, dict(load_mask_checkpoint(path / BASE_MASK_FILE).state_dict))
    assert source.label == f"pags: {name} mask"


def test_a_drawn_candidate_is_regenerated_as_it_was_scored(runs):
    path = runs["pags"]
    source = load_mask_source(("candidate", str(path), 2))
    assert source.label == "pags: candidate 2"
    assert _equal(source.masks, regenerate_candidate(path, 2).masks)
    # the regenerated masks have the Δr the population recorded for candidate 2 (weight-free metric)
    population = RunStore.open(path).population().query("candidate == 2").set_index("layer")
    for layer in source.layers():
        recorded = population.loc[layer, "delta_r"]
        delta_r = layer_spectrum(source.mask(layer)).delta_r
        assert delta_r == pytest.approx(recorded, nan_ok=True)
    base = load_mask_source(("candidate", str(path), BASE))
    assert [int(m.sum()) for m in source.masks.values()] == [int(m.sum()) for m in base.masks.values()]


# -- uploads -----------------------------------------------------------------------------------------------


def test_an_upload_gives_the_checkpoints_masks_and_weights(tmp_path):
    generator = torch.Generator().manual_seed(0)
    masks = {"fc1.weight": torch.rand(6, 8, generator=generator) < 0.5,
             "fc2.weight": torch.rand(3, 6, generator=generator) < 0.5}  # fmt: skip
    weights = {name: torch.randn(mask.shape, generator=generator) for name, mask in masks.items()}
    path = save_mask_checkpoint(tmp_path / "model.pt", masks, {**weights, "fc1.bias": torch.zeros(6)})
    source = load_mask_source(("upload", str(path)))
    assert source.label == "model.pt"
    assert _equal(source.masks, masks) and _equal(source.weights, weights)
    assert source.layers() == ["fc1", "fc2"] and torch.equal(source.weight("fc2"), weights["fc2.weight"])


def test_an_unreadable_upload_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(FullSpectrumError, match="broken.pt"):
        load_mask_source(("upload", str(path)))


# -- bad sources -------------------------------------------------------------------------------------------


def test_bad_sources_name_what_is_wrong(runs):
    with pytest.raises(UnknownNameError, match="unknown mask source 'file'; choose from"):
        load_mask_source(("file", "x"))
    with pytest.raises(FullSpectrumError, match="has 3 parts"):
        load_mask_source(("run", str(runs["train"])))
    with pytest.raises(FullSpectrumError, match="non-negative"):
        load_mask_source(("candidate", str(runs["pags"]), -5))
    source = load_mask_source(("run", str(runs["train"]), 0))
    with pytest.raises(UnknownNameError, match="unknown layer 'fc9'; choose from fc1, fc2, fc3"):
        source.mask("fc9")
    assert set(SOURCE_KINDS) == {"run", "candidate", "upload"}


# -- layer views -------------------------------------------------------------------------------------------


def test_layer_view_of_a_snapshot_with_weights_matches_the_recorded_spectrum(runs):
    path = runs["train"]
    source = load_mask_source(("run", str(path), 0))
    view = inspect_layer(source.masks, source.weights, "fc2")
    recorded = RunStore.open(path).layers().query("step == 0 and layer == 'fc2'").iloc[0]
    for field, value in view.spectrum.as_dict().items():
        if field in recorded:
            assert value == pytest.approx(recorded[field], nan_ok=True), field
    mask, weight = source.mask("fc2").numpy(), source.weight("fc2").numpy()
    assert view.mask.dtype == bool and view.mask.shape == SHAPES["fc2"]
    np.testing.assert_array_equal(view.weight, weight)
    np.testing.assert_allclose(view.sigma, top_singular_values(mask, k=SINGULAR_VALUES_SHOWN))
    np.testing.assert_allclose(view.omega, top_singular_values(mask, weight, k=SINGULAR_VALUES_SHOWN))
    assert [c.d_c for c in view.classes] == [c.d_c for c in regular_subgraphs(mask, weight)]
    assert np.all(np.diff(view.sigma) <= 1e-12)  # descending


def test_layer_view_without_weights_or_with_mismatched_ones_is_mask_only(runs):
    source = load_mask_source(("run", str(runs["train"]), 10))  # a middle snapshot keeps no weights
    view = inspect_layer(source.masks, source.weights, "fc1")
    assert view.weight is None and view.omega is None and np.isnan(view.spectrum.lambda_w)
    wrong = {"fc1.weight": torch.ones(2, 2)}
    assert inspect_layer(source.masks, wrong, "fc1").weight is None
    with pytest.raises(UnknownNameError, match="unknown layer 'conv1'"):
        inspect_layer(source.masks, {}, "conv1")


def test_source_masks_is_a_frozen_value():
    source = SourceMasks({}, {}, "empty")
    with pytest.raises(AttributeError):
        source.label = "other"  # type: ignore[misc]
