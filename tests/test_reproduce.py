"""``reproduce fs23-table``: the chained sweep, its tables and report, resuming, and bad input.

The end-to-end run uses a tiny preset (one generator, two seeds, one epoch): what is checked is
the machinery (every method's row, costs, pairing, resume), not the accuracies.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from fullspectrum.cli import build_parser
from fullspectrum.cli.sweep import sweepable_commands
from fullspectrum.reproduction.collect import TABLE_COLUMNS
from fullspectrum.reproduction.fs23_grid import fs23_grid_text
from fullspectrum.reproduction.fs23_table import run_fs23_table
from fullspectrum.reproduction.presets import PRESETS, Preset
from fullspectrum.reproduction.report import RESULT_COLUMNS
from fullspectrum.sweeps import expand_grid, parse_grid

TINY = Preset(
    name="tiny",
    model="mlp",
    datasets=("digits",),
    densities=(0.5,),
    seeds=(0, 1),
    generators=("random",),
    pegs_generators=("random",),
    warmups=(5,),
    population=2,
    rewind_iters=2,
    epochs=1,
    itop_densities=(0.5,),
    device="cpu",
)


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    out = tmp_path_factory.mktemp("fs23") / "repro"
    commands = sweepable_commands(build_parser())
    first = run_fs23_table(TINY, out, commands=commands, max_parallel=2)
    second = run_fs23_table(TINY, out, commands=commands, max_parallel=2)
    return out, first, second


def test_every_preset_expands_into_the_methods_of_fs23s_table():
    for preset in PRESETS.values():
        grid = parse_grid(fs23_grid_text(preset, data_dir="/data"), "fs23.toml")
        stages = {p.stage for p in expand_grid(grid, "/tmp/sweep")}
        assert stages == {"sample", "pegs", "generator", "pags", "pegs_train", "lottery", "earlybird", "itop"}
    cpu = expand_grid(parse_grid(fs23_grid_text(PRESETS["cpu"]), "g"), "/tmp/s")
    trained = [p for p in cpu if p.stage in ("generator", "pags", "pegs_train", "lottery", "earlybird")]
    # 2 datasets x 2 densities x 5 seeds x (5 generators x 2 + PEGS@100/@500 over SNIP + 2 lotteries + 1 Early-Bird)
    assert len(trained) == 2 * 2 * 5 * (10 + 2 + 2 + 1)


def test_training_points_pair_with_the_seed_of_the_sampling_that_made_their_mask():
    points = expand_grid(parse_grid(fs23_grid_text(TINY), "g"), "/tmp/s")
    by_name = {p.name: p for p in points}
    for point in points:
        if point.stage in ("generator", "pags", "pegs_train"):
            upstream = by_name[point.upstream]
            assert point.options["seed"] == upstream.options["seed"]
            assert point.options["mask"].startswith(f"/tmp/s/{upstream.name}/")
            assert point.options["method"] == "static"


@pytest.mark.slow
def test_the_reproduction_writes_every_methods_row_with_its_cost(reproduction):
    out, first, _ = reproduction
    assert first.sweep.all_finished
    points = pd.read_csv(out / "points.csv")
    assert tuple(points.columns) == TABLE_COLUMNS
    assert sorted(points["method"].unique()) == sorted(
        ["generator", "pags", "pegs5", "lottery_rewind0", "lottery_rewindk", "earlybird"]
    )
    assert (points.groupby("method").size() == 2).all()  # two seeds each
    results = pd.read_csv(out / "results.csv")
    assert tuple(results.columns) == ("data", *RESULT_COLUMNS)
    cost = dict(zip(results["method"], results["iterations"]))
    steps = cost["generator"]  # one epoch of static training
    assert cost["pags"] == steps and cost["pegs5"] == steps + 5
    assert cost["lottery_rewind0"] == 5 * steps  # levels at density 1, 0.8, 0.64, 0.512, then 0.5
    assert cost["earlybird"] == 2 * steps  # one search epoch, then the ticket's training
    report = (out / "report.md").read_text()
    assert "PAGS@0 over random beats random at d=0.5:" in report
    assert "density vs accuracy (baseline)" in report


@pytest.mark.slow
def test_running_it_again_runs_nothing_and_rewrites_the_same_tables(reproduction):
    out, first, second = reproduction
    assert second.sweep.ran == 0
    pd.testing.assert_frame_equal(first.results, second.results)
    assert first.report == second.report


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fullspectrum", "reproduce", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fs23-table", "--preset", "paper"], "give --data-dir"),
        (["fs23-table", "--address", "auto"], "add --backend ray"),
        (["fs23-table", "--preset", "nope"], "invalid choice"),
        (["table9"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    done = _cli(*args, "--out", str(tmp_path / "r"))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_folder_of_the_users_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    done = _cli("fs23-table", "--out", str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt"
    ]
