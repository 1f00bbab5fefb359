"""Effective paths recorded at every training snapshot (SPEC §7), and older runs without them."""

from __future__ import annotations

import dataclasses
import sqlite3

import numpy as np
import pytest
import torch
from torch import nn

from fullspectrum.data import load_dataset
from fullspectrum.models import build_model
from fullspectrum.runs import RunStore, export_run
from fullspectrum.spectrum import layer_spectrum
from fullspectrum.topology import effective_paths, unrolled_graph
from fullspectrum.training import TrainConfig, train
from fullspectrum.training.loop import effective_paths_recorder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("paths") / "run"
    config = TrainConfig(
        epochs=2,
        density=0.03,
        lr=0.1,
        delta_t=20,
        snapshot_every=20,
        device="cpu",
        model_options={"widths": [32]},
    )
    train(config, run_dir)
    return RunStore.open(run_dir), config


def test_every_snapshot_records_each_layers_effective_weights_as_the_unrolled_graph_gives(run):
    store, config = run
    layers = store.layers()
    assert store.info["effective_paths"] == "recorded"
    assert layers["effective_weights"].notna().all()
    splits = load_dataset("digits")
    model = build_model("mlp", splits.num_classes, splits.input_shape, **config.model_options)
    for step in store.mask_steps():
        expected = effective_paths(
            unrolled_graph(model, store.load_masks(step), splits.input_shape)
        ).as_dict()
        rows = layers[layers.step == step].set_index("layer")
        for layer in expected["layers"]:
            assert rows.loc[layer["layer"], "effective_weights"] == layer["effective"]
            assert layer["effective"] <= rows.loc[layer["layer"], "edges"]  # effective ⊆ kept
        assert (rows["network_effective_density"] == expected["effective_density"]).all()


def test_at_three_percent_some_kept_weights_are_dead_weight(run):
    store, _ = run
    layers = store.layers()
    assert (layers["effective_weights"] < layers["edges"]).any()


def test_export_writes_the_new_columns(run, tmp_path):
    store, _ = run
    export_run(store.path, tmp_path / "out", fmt="csv")
    header = (tmp_path / "out" / "layers.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["effective_weights", "network_effective_density"]


def test_a_model_the_tracer_cannot_encode_records_none_and_says_why():
    class Concatenating(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], dim=1)

    recorder, note = effective_paths_recorder(Concatenating(), (4,))
    assert recorder is None and note.startswith("not recorded: ") and "cat" in note


def test_an_older_run_without_the_columns_reads_nan_and_is_upgraded_when_resumed(tmp_path):
    spectrum = dataclasses.asdict(layer_spectrum(np.eye(3, dtype=bool), name="fc"))
    store = RunStore.create(tmp_path / "old", kind="analysis", config={}, seed=0, device="cpu")
    store.add_snapshot(0, [{**spectrum, "layer": "fc"}], [], [])
    store.close()
    with sqlite3.connect(tmp_path / "old" / "metrics.sqlite") as conn:  # the schema before the columns
        conn.execute("ALTER TABLE layers DROP COLUMN effective_weights")
        conn.execute("ALTER TABLE layers DROP COLUMN network_effective_density")
    old = RunStore.open(tmp_path / "old").layers()
    assert old.columns[-2:].tolist() == ["effective_weights", "network_effective_density"]
    assert len(old) == 1 and old["effective_weights"].isna().all() and old["edges"].item() == 3
    writer = RunStore.open(tmp_path / "old", readonly=False)  # a resumed run: its writer adds them
    writer.add_snapshot(
        1, [{**spectrum, "layer": "fc", "effective_weights": 2, "network_effective_density": 0.5}], [], []
    )
    writer.close()
    both = RunStore.open(tmp_path / "old").layers()
    assert both["effective_weights"].isna().tolist() == [True, False]
    assert both.loc[1, "network_effective_density"] == 0.5
