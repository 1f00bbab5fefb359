"""Sweep grids: parsing, expansion into points, folder names, chains, and every bad grid refused up front.

A grid is checked whole before anything runs: an unknown command or option, a value the
command's parser refuses, a malformed file or a chain reference to nothing is exit 2 with one
line, and no folder is made. These tests run no command (fast); the runs are in
``test_sweep_runs.py`` and ``test_ray_sweeps.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fullspectrum.cli import build_parser, main
from fullspectrum.cli.sweep import describe_command, sweepable_commands
from fullspectrum.errors import FullSpectrumError
from fullspectrum.sweeps import GridError, check_points, expand_grid, load_grid, parse_grid
from fullspectrum.sweeps.commands import CommandSpec, OptionSpec

TRAIN_GRID = """
command = "train"
[fixed]
model = "mlp"
data = "digits"
epochs = 1
sparse_init = false
[grid]
density = [0.05, 0.1]
seed = [0, 1, 2]
"""

CHAIN_GRID = """
[stage.sample]
command = "pags"
fixed = { model = "mlp", data = "digits", density = 0.05, population = 4 }
grid = { generator = ["snip", "random"], seed = [0, 1] }

[stage.train]
command = "train"
from = "sample"
fixed = { method = "static", mask = "{sample}/pags_mask.pt", seed = "{sample.seed}", epochs = 1 }
grid = { lr = [0.1, 0.01] }
"""


@pytest.fixture(scope="module")
def commands():
    return sweepable_commands(build_parser())


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    return err.rstrip("\n")


def refused(capsys, argv, *fragments) -> str:
    assert main([str(arg) for arg in argv]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("fullspectrum: error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


# -- expansion ---------------------------------------------------------------------------------------


def test_a_grid_is_the_product_of_its_lists_in_file_order_with_the_fixed_options(tmp_path):
    points = expand_grid(parse_grid(TRAIN_GRID, "g.toml"), tmp_path)
    assert [(p.options["density"], p.options["seed"]) for p in points] == [
        (0.05, 0),
        (0.05, 1),
        (0.05, 2),
        (0.1, 0),
        (0.1, 1),
        (0.1, 2),
    ]
    assert all(p.options["model"] == "mlp" and p.options["epochs"] == 1 for p in points)
    assert list(points[0].options) == ["model", "data", "epochs", "sparse_init", "density", "seed"]
    assert points[0].swept == ("density", "seed") and points[0].upstream is None


def test_point_names_are_readable_stable_and_distinct(tmp_path):
    grid = parse_grid(TRAIN_GRID, "g.toml")
    first, again = expand_grid(grid, tmp_path), expand_grid(grid, tmp_path / "elsewhere")
    assert [p.name for p in first] == [p.name for p in again]  # the folder does not enter the name
    assert len({p.name for p in first}) == len(first)
    assert (
        first[0].name.startswith("train_density-0.05_seed-0_") and len(first[0].name.rsplit("_", 1)[1]) == 8
    )
    changed = expand_grid(parse_grid(TRAIN_GRID.replace("epochs = 1", "epochs = 2"), "g.toml"), tmp_path)
    assert changed[0].name.rsplit("_", 1)[0] == first[0].name.rsplit("_", 1)[0]  # same readable part...
    assert changed[0].name != first[0].name  # ...another run: another hash


def test_a_chain_runs_each_upstream_point_and_resolves_its_folder_and_options(tmp_path):
    points = expand_grid(parse_grid(CHAIN_GRID, "g.toml"), tmp_path)
    samples = [p for p in points if p.stage == "sample"]
    trains = [p for p in points if p.stage == "train"]
    assert len(samples) == 4 and len(trains) == 8 and points[:4] == tuple(samples)  # upstream first
    by_name = {p.name: p for p in samples}
    for train in trains:
        parent = by_name[train.upstream]
        assert train.options["mask"] == str(tmp_path / parent.name / "pags_mask.pt")
        assert train.options["seed"] == parent.options["seed"] and isinstance(train.options["seed"], int)
    assert [t.options["lr"] for t in trains[:2]] == [0.1, 0.01] and trains[0].upstream == trains[1].upstream


def test_a_reference_inside_a_longer_string_is_substituted_as_text(tmp_path):
    grid = parse_grid(
        CHAIN_GRID.replace('seed = "{sample.seed}"', 'data_dir = "data-{sample.generator}-{sample.seed}"'),
        "g.toml",
    )
    trains = [p for p in expand_grid(grid, tmp_path) if p.stage == "train"]
    assert (
        trains[0].options["data_dir"] == "data-snip-0" and trains[-1].options["data_dir"] == "data-random-1"
    )


def test_argv_spells_values_and_flags_as_the_command_line_does(tmp_path, commands):
    grid = parse_grid(TRAIN_GRID.replace("sparse_init = false", "sparse_init = true"), "g.toml")
    points = expand_grid(grid, tmp_path)
    argvs = check_points(grid, points, commands, tmp_path)
    assert argvs[points[0].name] == [
        "train",
        *("--model", "mlp", "--data", "digits", "--epochs", "1", "--sparse-init"),
        *("--density", "0.05", "--seed", "0", "--out", str(tmp_path / points[0].name)),
    ]
    grid = parse_grid(TRAIN_GRID, "g.toml")
    off = check_points(grid, expand_grid(grid, tmp_path), commands, tmp_path)
    assert "--no-sparse-init" in next(iter(off.values()))


def test_commands_are_described_from_their_own_parsers(commands):
    assert {"train", "pags"} <= set(commands) and "sweep" not in commands and "analyze" not in commands
    train = commands["train"]
    assert train.resumable
    assert train.options["batch_size"] == OptionSpec("--batch-size", "value")
    assert train.options["sparse_init"].kind == "toggle"
    assert not {"out", "resume", "allow_nonempty", "help"} & set(train.options)
    assert (
        describe_command("pags", build_parser().commands["pags"]).options["warmup_iters"].flag
        == "--warmup-iters"
    )


def test_option_kinds():
    switch, value = OptionSpec("--train-mode", "switch"), OptionSpec("--lr")
    assert switch.argv(True) == ["--train-mode"] and switch.argv(False) == []
    assert value.argv(0.001) == ["--lr", "0.001"]
    with pytest.raises(ValueError, match="takes a value"):
        value.argv(True)
    with pytest.raises(ValueError, match="is a flag"):
        switch.argv("yes")
    spec = CommandSpec("x", {"lr": value})
    with pytest.raises(FullSpectrumError, match="unknown option momentum of x; choose from lr"):
        spec.argv({"momentum": 0.9})


# -- bad grids ----------------------------------------------------------------------------------------

BAD_GRIDS = {
    "not TOML": ("command = train", "not valid TOML"),
    "no command": ("[grid]\nseed = [0]", 'needs command = "NAME"'),
    "unknown key": ('command = "train"\nseeds = [0]', "unknown key(s) seeds"),
    "grid not a list": ('command = "train"\n[grid]\nseed = 0', "grid option seed must be a non-empty list"),
    "empty list": ('command = "train"\n[grid]\nseed = []', "must be a non-empty list"),
    "list in fixed": ('command = "train"\n[fixed]\nseed = [0, 1]', "fixed option seed must be"),
    "both": ('command = "train"\n[fixed]\nseed = 0\n[grid]\nseed = [1]', "in both [fixed] and [grid]"),
    "twice": ('command = "train"\n[grid]\nseed = [1, 1]', "lists a value twice"),
    "dashes": ('command = "train"\n[fixed]\nbatch-size = 4', "with _ for -"),
    "from later": (
        '[stage.a]\ncommand = "train"\nfrom = "b"\n[stage.b]\ncommand = "train"',
        "must name an earlier stage",
    ),
    "a date": ('command = "train"\n[fixed]\nseed = 1979-05-27', "must be a string, number or true/false"),
}


@pytest.mark.parametrize("case", BAD_GRIDS, ids=list(BAD_GRIDS))
def test_a_malformed_grid_file_is_one_line_naming_the_file(case, tmp_path):
    text, fragment = BAD_GRIDS[case]
    with pytest.raises(GridError, match="^g.toml: ") as raised:
        parse_grid(text, "g.toml")
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


BAD_POINTS = {
    "unknown command": ('command = "trian"', "unknown command 'trian'; choose from"),
    "not a run command": ('command = "analyze"', "unknown command 'analyze'"),
    "unknown option": ('command = "train"\n[fixed]\nmomentum = 0.9', "unknown option momentum of train"),
    "set by the sweep": ('command = "train"\n[fixed]\nout = "x"', "option out is set by the sweep"),
    "bad value": (
        'command = "train"\n[grid]\ndensity = [0.5, 2.0]',
        "point density=2.0: argument --density: must be a number in (0, 1]",
    ),
    "bad choice": (
        'command = "train"\n[fixed]\nmethod = "dens"',
        "argument --method: invalid choice: 'dens'",
    ),
    "flag with a value": ('command = "train"\n[fixed]\nsparse_init = "yes"', "--sparse-init is a flag"),
    "value as a flag": ('command = "train"\n[fixed]\nepochs = true', "--epochs takes a value"),
    "unknown stage": (
        '[stage.a]\ncommand = "train"\nfixed = { mask = "{b}/pags_mask.pt" }',
        "{b} is not an upstream stage",
    ),
    "unknown upstream option": (
        CHAIN_GRID.replace("{sample.seed}", "{sample.momentum}"),
        "stage 'sample' has no option momentum",
    ),
}


@pytest.mark.parametrize("case", BAD_POINTS, ids=list(BAD_POINTS))
def test_a_bad_grid_exits_2_in_one_line_before_anything_is_made(case, tmp_path, capsys):
    text, fragment = BAD_POINTS[case]
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    refused(capsys, ["sweep", grid, "--out", tmp_path / "out"], str(grid), fragment)
    assert not (tmp_path / "out").exists()


def test_bad_command_lines_of_the_sweep_itself(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(TRAIN_GRID)
    refused(capsys, ["sweep", tmp_path / "missing.toml", "--out", tmp_path / "o"], "no such grid file")
    refused(capsys, ["sweep", grid, "--out", tmp_path / "o", "--address", "auto"], "add --backend ray")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    refused(capsys, ["sweep", grid, "--out", tmp_path / "mine"], "not empty and not a run")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    assert main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--max-parallel", "0"]) == 2
    assert "--max-parallel" in one_line(capsys.readouterr().err)


def test_the_ray_backend_without_ray_installed_is_one_line(tmp_path, capsys, monkeypatch):
    grid = tmp_path / "grid.toml"
    grid.write_text(TRAIN_GRID)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    refused(
        capsys,
        ["sweep", grid, "--out", tmp_path / "o", "--backend", "ray"],
        "pip install 'fullspectrum[ray]'",
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "example",
    sorted((Path(__file__).parents[1] / "examples" / "sweeps").glob("*.toml")),
    ids=lambda p: p.name,
)
def test_the_example_grids_are_valid(example, commands, tmp_path):
    grid = load_grid(example)
    points = expand_grid(grid, tmp_path)
    argvs = check_points(grid, points, commands, tmp_path)
    assert len(argvs) == len(points) >= 6


def test_an_address_nothing_answers_at_is_one_line_before_ray_starts(tmp_path, capsys):
    pytest.importorskip("ray")
    grid = tmp_path / "grid.toml"
    grid.write_text(TRAIN_GRID)
    argv = ["sweep", grid, "--out", tmp_path / "o", "--backend", "ray", "--address", "127.0.0.1:1"]
    refused(capsys, argv, "--address 127.0.0.1:1: no Ray cluster answers there", "ray start --head")
    refused(capsys, [*argv[:-1], "nohost"], "give HOST:PORT")
    assert not (tmp_path / "o").exists()


def test_a_point_on_cuda_asks_for_a_gpu_and_every_point_for_its_threads(tmp_path, monkeypatch):
    from fullspectrum.sweeps.runner import PointState, _job  # why: the job a backend gets, unexported

    grid = parse_grid(TRAIN_GRID.replace("epochs = 1", 'epochs = 1\ndevice = "cuda"'), "g.toml")
    point = expand_grid(grid, tmp_path)[0]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    job = _job(PointState(point), tmp_path, {point.name: ["train", "--out", "x"]})
    assert job.num_gpus == 1 and job.num_cpus == 3 and job.env["OMP_NUM_THREADS"] == "3"
    assert job.args == ["train", "--out", "x"] and job.log == tmp_path / "logs" / f"{point.name}.log"
    resumed = _job(PointState(point, resume=True), tmp_path, {})
    assert resumed.args == ["train", "--resume", str(tmp_path / point.name)]
    cpu = expand_grid(parse_grid(TRAIN_GRID, "g.toml"), tmp_path)[0]
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _job(PointState(cpu), tmp_path, {cpu.name: []}).num_gpus == 0
    assert _job(PointState(cpu), tmp_path, {cpu.name: []}).env["OMP_NUM_THREADS"] == "1"
