"""The shipped ``cached_runs/``: whole, finished, and consistent with today's engine.

The app opens them the moment it starts, so a stale or damaged one would be the
first thing a user sees. Where a snapshot kept its weights, every recorded field
is recomputed from the stored mask and weights and must agree with the row the
run wrote to well inside SPEC §1's tolerance, so an engine change that moved a
value would show here (then regenerate with ``scripts/make_cached_runs.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.runs import RunStore, list_runs
from fullspectrum.spectrum import SPECTRUM_FIELDS, layer_spectrum

CACHED = Path(__file__).resolve().parents[1] / "cached_runs"
RUNS = list_runs(CACHED)


def test_every_cached_run_is_finished_and_none_is_left_half_written():
    assert len(RUNS) >= 30
    assert [(run.path.name, run.error) for run in RUNS if run.status != "finished"] == []
    assert {run.kind for run in RUNS} == {"train", "pags", "reproduction"}
    leftovers = [p for p in CACHED.rglob("*") if p.name.endswith(("-wal", "-shm", ".tmp", "checkpoint.pt"))]
    assert leftovers == []


@pytest.mark.parametrize("run", [r for r in RUNS if r.kind == "train"], ids=lambda r: r.path.name)
def test_training_runs_recorded_what_their_kept_weights_give(run):
    store = RunStore.open(run.path)
    steps = store.mask_steps()
    layers = store.layers()
    assert steps[0] == 0 and steps[-1] == run.steps and set(layers.step) == set(steps)
    assert (layers.query("step == 0").moving_distance == 0).all()
    assert store.info["effective_paths"] == "recorded"  # SPEC §7: dead weight over time
    assert layers.effective_weights.notna().all() and (layers.effective_weights <= layers.edges).all()
    for step in (steps[0], steps[-1]):
        masks, weights = store.load_masks(step), store.load_weights(step)
        assert list(weights) == list(masks), f"step {step} kept no weights"
        for name, mask in masks.items():
            layer = name.removesuffix(".weight")
            row = layers.query("step == @step and layer == @layer").iloc[0]
            again = layer_spectrum(mask, weights[name], name=layer).as_dict()
            for field in SPECTRUM_FIELDS:
                expected, got = row[field], again[field]
                if isinstance(got, float) and math.isnan(got):
                    assert math.isnan(expected), (step, layer, field)
                else:
                    assert got == pytest.approx(expected, rel=0, abs=1e-9 * max(1.0, abs(expected))), (
                        step,
                        layer,
                        field,
                    )


@pytest.mark.parametrize("run", [r for r in RUNS if r.kind == "pags"], ids=lambda r: r.path.name)
def test_pags_runs_hold_a_population_and_loadable_masks(run):
    store = RunStore.open(run.path)
    population = store.population()
    assert population.candidate.nunique() >= 100 and population.won.any()
    assembled = load_mask_checkpoint(run.path / "pags_mask.pt")
    base = load_mask_checkpoint(run.path / "base_mask.pt")
    assert {name: int(m.sum()) for name, m in assembled.masks.items()} == {
        name: int(m.sum()) for name, m in base.masks.items()
    }  # the base budget, layer by layer
