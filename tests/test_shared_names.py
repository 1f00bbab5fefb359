"""One name, one definition: the registries behind the command line's flags, the names of a population's
members, the metric symbols and axis titles, run-folder names, and network values by step."""

from __future__ import annotations

import argparse
import string
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from app.charts.compare import difference_bars
from app.charts.pags import population_3d_figure
from app.charts.trajectories import trajectory_figure
from fullspectrum.cli import build_parser
from fullspectrum.data import DATASET_NAMES
from fullspectrum.devices import DEVICE_CHOICES
from fullspectrum.models import MODEL_NAMES
from fullspectrum.pruning import GENERATOR_NAMES
from fullspectrum.runs import RunStore
from fullspectrum.runs.naming import PART_MAX_CHARS, run_folder_name, safe_part
from fullspectrum.sampling import (
    ASSEMBLED,
    BASE,
    SELECTION_RULES,
    STORED_MASKS,
    STORED_STEPS,
    candidate_label,
    candidate_slug,
)
from fullspectrum.spectrum import (
    AXIS_TITLES,
    PLOT_AXES,
    SPECTRUM_FIELDS,
    SYMBOLS,
    VECTOR_AXES,
    axis_title,
    metric_label,
    metric_symbol,
    network_summary,
    network_summary_by_step,
)
from fullspectrum.training import METHODS
from fullspectrum.training.sparse import INITS
from tests.app_fixtures import make_run


def _command(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def _flag(command: str, flag: str) -> argparse.Action:
    return next(a for a in _command(command)._actions if flag in a.option_strings)


# -- the command line takes its names from the registries --------------------------------------------------


def test_cli_choices_are_the_library_registries():
    assert tuple(_flag("train", "--method").choices) == tuple(METHODS)
    assert tuple(_flag("train", "--init").choices) == tuple(INITS)
    for command in ("train", "prune", "pags"):
        assert tuple(_flag(command, "--device").choices) == DEVICE_CHOICES


@pytest.mark.parametrize(
    ("command", "flag", "names"),
    [
        ("train", "--model", MODEL_NAMES),
        ("train", "--data", DATASET_NAMES),
        ("prune", "--model", MODEL_NAMES),
        ("prune", "--data", DATASET_NAMES),
        ("prune", "--method", GENERATOR_NAMES),
        ("pags", "--model", MODEL_NAMES),
        ("pags", "--data", DATASET_NAMES),
        ("pags", "--generator", GENERATOR_NAMES),
        ("pags", "--rule", tuple(SELECTION_RULES)),
    ],
)
def test_cli_help_lists_every_registered_name(command, flag, names):
    help_text = _flag(command, flag).help
    assert all(name in help_text for name in names), help_text


# -- members of a population -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "label", "slug"),
    [(BASE, "base mask", "base"), (ASSEMBLED, "assembled mask", "assembled"), (0, "candidate 0", "candidate0"),
     (17, "candidate 17", "candidate17")],
)  # fmt: skip
def test_candidate_names(index, label, slug):
    assert candidate_label(index) == label and candidate_slug(index) == slug
    assert candidate_label(np.int64(index)) == label  # table values name members too


def test_the_stored_members_are_the_named_ones():
    assert set(STORED_MASKS) == set(STORED_STEPS) == {BASE, ASSEMBLED}
    assert len(set(STORED_STEPS.values())) == 2 and len(set(STORED_MASKS.values())) == 2


# -- metric symbols and axis titles ------------------------------------------------------------------------


def test_every_component_of_u_has_a_symbol_and_an_axis_title():
    for name in VECTOR_AXES:
        assert metric_symbol(name) == SYMBOLS[name] != name
        assert axis_title(name).startswith(metric_symbol(name) + " (")
    assert set(SYMBOLS) <= set(SPECTRUM_FIELDS)
    assert metric_symbol("edges") == metric_label("edges") == axis_title("edges") == "edges"


def test_charts_take_their_axis_titles_and_symbols_from_the_table():
    layers = pd.DataFrame({"step": [0, 1], "layer": ["fc", "fc"], **{axis: [1.0, 2.0] for axis in PLOT_AXES}})
    scene = trajectory_figure(layers).layout.scene
    assert [scene.xaxis.title.text, scene.yaxis.title.text, scene.zaxis.title.text] == [
        AXIS_TITLES[axis] for axis in PLOT_AXES
    ]
    points = pd.DataFrame({"candidate": [BASE, 0], "score": 1.0, **{axis: [1.0, 2.0] for axis in PLOT_AXES}})
    scene = population_3d_figure(points).layout.scene
    assert scene.xaxis.title.text == f"mean {metric_symbol(PLOT_AXES[0])}"
    long = pd.DataFrame({"layer": ["fc"], "metric": ["dead_right"], "a": [1.0], "b": [2.0], "delta": [1.0]})
    assert difference_bars(long).layout.yaxis.title.text == f"Δ {metric_label('dead_right')}"


# -- run-folder names --------------------------------------------------------------------------------------

SAFE = set(string.ascii_letters + string.digits + "_.-")


@pytest.mark.parametrize("text", ["my run", "a/b\\c", "ünïcode run", "x" * 200, "ok_name-1.5", "  padded  "])
def test_run_folder_names_are_safe_file_names(text):
    part = safe_part(text)
    assert set(part) <= SAFE and 0 < len(part) <= PART_MAX_CHARS
    assert safe_part(part) == part  # already safe: unchanged
    name = run_folder_name("upload", text, when=datetime(2024, 5, 1, 12, 0, 0))
    assert set(name) <= SAFE and name == f"upload_{part}_20240501-120000"


def test_run_folder_names_of_runs_made_from_another_run_are_stable():
    first = run_folder_name("static", candidate_slug(3), source="/runs/pags_snip", timestamp=False)
    assert first == "pags_snip__static_candidate3"
    assert run_folder_name("static", candidate_slug(3), source="/runs/pags_snip", timestamp=False) == first


# -- network values at every snapshot ----------------------------------------------------------------------


def test_network_summary_by_step_is_the_network_summary_of_each_snapshot(tmp_path):
    path = make_run(tmp_path / "run", density=0.3, seed=2, accuracy=0.5, steps=(0, 5, 9))
    layers = RunStore.open(path).layers()
    by_step = network_summary_by_step(layers)
    assert by_step["step"].tolist() == [0, 5, 9]
    for step, group in layers.groupby("step"):
        expected = network_summary(group.drop(columns=["step", "layer"]))
        row = by_step.set_index("step").loc[step, expected.index]
        np.testing.assert_allclose(row.to_numpy(float), expected.to_numpy(float), equal_nan=True)
    assert network_summary_by_step(layers.iloc[:0]).empty
