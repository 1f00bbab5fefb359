"""The predictor study's feature table read from real run folders (the cached runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis.predictors import feature_columns
from analysis.run_features import RUN_COLUMNS, run_features

CACHED = Path(__file__).resolve().parents[1] / "cached_runs"
RUNS = [CACHED / "train" / "digits-mlp-itop-d0.05-s0", CACHED / "static" / "digits-mlp-snip-mask-d0.05-s0"]


@pytest.fixture(scope="module")
def table():
    return run_features(RUNS)


def test_one_row_per_run_with_every_view(table):
    assert list(table.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    assert len(table) == 2 and (table["topology_note"] == "").all()
    for feature_set in ("density", "ramanujan", "full_spectrum", "topometrics", "effective_density"):
        assert feature_columns(table, feature_set), feature_set  # two runs differ in every set
    layers = ("features.1", "features.3", "classifier")
    assert {f"density:{layer}" for layer in layers} <= set(table.columns)
    assert {f"effective:{layer}" for layer in layers} <= set(table.columns)


def test_the_values_agree_with_the_run_and_effective_never_exceeds_kept(table):
    run = table.iloc[0]
    info = json.loads((RUNS[0] / "run.json").read_text())
    assert run["accuracy"] == info["final"]["test_accuracy"]
    assert run["model"] == "mlp" and run["data"] == "digits" and run["method"] == "itop"
    for _, row in table.iterrows():
        assert 0 < row["effective_density"] <= row["topo:density"] + 1e-12
        assert all(
            0 <= row[f"effective:{layer}"] <= 1 for layer in ("features.1", "features.3", "classifier")
        )


def test_unfinished_or_unreadable_runs_are_left_out_and_topology_failures_are_noted(tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(RUNS[0], unfinished)
    info = json.loads((unfinished / "run.json").read_text())
    info["status"] = "interrupted"
    (unfinished / "run.json").write_text(json.dumps(info))
    no_data = tmp_path / "no-data"
    shutil.copytree(RUNS[0], no_data)
    info = json.loads((no_data / "run.json").read_text())
    info["config"]["data"] = "cifar10"  # its files are not at hand: no unrolled view, said why
    (no_data / "run.json").write_text(json.dumps(info))
    table = run_features([unfinished, no_data, tmp_path / "missing"])
    assert table["label"].tolist() == ["no-data"]
    assert "cifar" in table["topology_note"].iloc[0].lower()
    assert not any(c.startswith("topo:") for c in table.columns)
