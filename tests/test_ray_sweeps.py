"""Ray as the engine: sweep points and PAGS candidates as Ray tasks give what the local backend gives.

One local Ray with 2 CPUs is started for the module (it takes seconds) and every test shares
it; the command line then uses that session instead of starting its own. Skipped where ``ray``
is not installed.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.distributed import ray_session
from fullspectrum.distributed.tasks import RayProcesses, map_ordered
from fullspectrum.runs import RunStore, export_run
from fullspectrum.sampling import SamplingConfig, run_pags

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TINY_TRAIN = """
command = "train"
[fixed]
model = "mlp"
data = "digits"
method = "static"
epochs = 1
batch_size = 256
[grid]
density = [0.05, 0.1]
seed = [0, 1]
"""
TINY_PAGS = SamplingConfig(
    model="mlp",
    data="digits",
    generator="snip",
    density=0.1,
    population=6,
    model_options={"widths": [32, 16]},
    device="cpu",
)


@pytest.fixture(scope="module")
def ray():
    with ray_session(num_cpus=2) as module:
        yield module


def test_map_ordered_gives_every_result_in_item_order(ray):
    # builtins travel by reference to any worker: state = len(shared) = 3, then pow(3, i)
    results = list(map_ordered(len, pow, [1, 2, 3], [(i,) for i in range(12)], in_flight=4))
    assert results == [3**i for i in range(12)]


def test_commands_run_as_tasks_hand_back_their_exit_status_and_output(ray, tmp_path):
    tasks = RayProcesses()
    tasks.submit("ok", ["-c", "print('fine')"], python=True, cwd=tmp_path)
    tasks.submit(
        "bad",
        ["-c", "import os, sys; print(os.getcwd()); sys.exit('broken: ' + os.environ['X'])"],
        python=True,
        env={"X": "x"},
        cwd=tmp_path,
    )
    ended = {}
    while len(tasks):
        ended.update(tasks.wait(60))
    assert ended["ok"].returncode == 0 and ended["ok"].last_line == "fine"
    assert ended["bad"].returncode == 1 and ended["bad"].last_line == "broken: x"
    assert str(tmp_path) in ended["bad"].output  # run in the driver's folder


def test_a_sweep_on_ray_gives_the_table_of_the_local_backend(ray, tmp_path, capsys):
    grid = tmp_path / "tiny.toml"
    grid.write_text(TINY_TRAIN)
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["sweep", str(grid), "--out", str(local), "--max-parallel", "2"]) == 0
    assert main(["sweep", str(grid), "--out", str(remote), "--backend", "ray"]) == 0
    assert "4 of 4 points finished (4 run now" in capsys.readouterr().out
    table = (local / "points.csv").read_text()
    assert table.count("\n") == 5 and ",finished," in table
    assert (remote / "points.csv").read_text() == table  # same seeds, same rows, bit for bit
    info = RunStore.open(remote).info
    assert info["kind"] == "sweep" and info["backend"] == "ray" and info["status"] == "finished"


def test_a_gpu_point_on_a_cluster_without_gpus_is_refused_before_it_runs(ray, tmp_path, capsys):
    grid = tmp_path / "gpu.toml"
    grid.write_text(TINY_TRAIN.replace('method = "static"', 'method = "static"\ndevice = "cuda"'))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "gpu"), "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 points run on cuda and ask Ray for a GPU" in err
    assert not (tmp_path / "gpu").exists()


def test_pags_candidates_on_ray_give_the_local_sampling(ray, tmp_path, capsys):
    argv = ["pags", "--model", "mlp", "--data", "digits", "--generator", "snip", "--density", "0.1"]
    argv += ["--population", "6", "--device", "cpu", "--out", str(tmp_path / "ray"), "--backend", "ray"]
    # the command line has no --widths: give the library call the CLI's model instead
    reference = tmp_path / "local-cli-model"
    run_pags(dataclasses.replace(TINY_PAGS, model_options={}), reference)
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    ray_run, local_run = tmp_path / "ray", reference
    assert RunStore.open(ray_run).info["config"]["backend"] == "ray"
    for ours, theirs in zip(
        export_run(ray_run, tmp_path / "e-ray"), export_run(local_run, tmp_path / "e-local"), strict=True
    ):
        assert ours.name == theirs.name and ours.read_bytes() == theirs.read_bytes(), ours.name
    a, b = load_mask_checkpoint(ray_run / "pags_mask.pt"), load_mask_checkpoint(local_run / "pags_mask.pt")
    assert a.masks.keys() == b.masks.keys() and all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    library = run_pags(dataclasses.replace(TINY_PAGS, backend="ray", workers=2), tmp_path / "lib-ray")
    assert library.population.equals(run_pags(TINY_PAGS, tmp_path / "lib-local").population)


def test_pags_address_without_the_ray_backend_is_refused(tmp_path, capsys):
    argv = ["pags", "--model", "mlp", "--data", "digits", "--out", str(tmp_path / "p"), "--address", "auto"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --backend ray" in err and not (tmp_path / "p").exists()


def test_pags_on_ray_without_ray_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = ["pags", "--model", "mlp", "--data", "digits", "--out", str(tmp_path / "p"), "--backend", "ray"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'fullspectrum[ray]'" in err and not (tmp_path / "p").exists()


def test_a_ray_sampling_stopped_midway_resumes_to_the_local_sampling(ray, tmp_path, capsys):
    def stop_at_3(done: int, total: int) -> None:
        if done >= 3:
            raise KeyboardInterrupt  # a Ctrl-C after 3 candidates: the tasks in flight are cancelled

    stopped = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        run_pags(dataclasses.replace(TINY_PAGS, backend="ray"), stopped, progress=stop_at_3)
    assert RunStore.open(stopped).info["status"] == "interrupted"
    assert main(["pags", "--resume", str(stopped)]) == 0  # its config says ray: resumed on the session
    capsys.readouterr()
    reference = tmp_path / "local"
    run_pags(TINY_PAGS, reference)
    for ours, theirs in zip(
        export_run(stopped, tmp_path / "e-stopped"), export_run(reference, tmp_path / "e-local"), strict=True
    ):
        assert ours.read_bytes() == theirs.read_bytes(), ours.name
