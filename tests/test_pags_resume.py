"""An interrupted PAGS / PEGS sampling resumes to exactly the run an uninterrupted one writes (SPEC §5, §8).

Candidates depend only on ``(seed, i)``, so a resumed sampling scores the
candidates that were not saved yet, replays the per-layer selection over the
saved ones in index order, and ends with the same population rows, winners,
masks and embedding. Interruptions in-process (a progress callback or the
embedding hook raising ``KeyboardInterrupt``) run in the fast loop; a real
SIGKILL and a Ctrl-C to a ``python -m fullspectrum pags`` process group are
marked slow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.errors import CheckpointError
from fullspectrum.runs import RunError, RunStore, export_run, jobs
from fullspectrum.sampling import SamplingConfig, resume_pags, run_pags
from fullspectrum.sampling.embedding import embedding_table
from fullspectrum.sampling.journal import SCORED_DIR, read_scored

TINY = SamplingConfig(
    model="mlp",
    data="digits",
    generator="snip",
    density=0.1,
    population=6,
    model_options={"widths": [32, 16]},
    device="cpu",
)


def stop_at(done_at: int):
    """A progress callback that raises ``KeyboardInterrupt`` (a Ctrl-C) once ``done_at`` steps are done."""

    def progress(done: int, total: int) -> None:
        if done >= done_at:
            raise KeyboardInterrupt

    return progress


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A sampling stopped after two of its six candidates (shared read-only: copy before writing)."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pags(TINY, run_dir, progress=stop_at(2), embed=embedding_table)
    return run_dir


# -- a folder that already holds a sampling ------------------------------------------------------------


NEW_RUN = ["pags", "--model", "mlp", "--data", "digits", "--density", "0.1", "--population", "2"]


def test_a_new_sampling_into_an_unfinished_one_points_to_pags_resume(interrupted, capsys):
    before = {p: p.stat().st_mtime_ns for p in interrupted.rglob("*")}
    assert main([*NEW_RUN, "--out", str(interrupted)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"fullspectrum pags --resume {interrupted}" in err
    assert {p: p.stat().st_mtime_ns for p in interrupted.rglob("*")} == before


def test_a_new_sampling_into_a_finished_one_says_it_is_finished(tiny_pags_run, capsys):
    assert main([*NEW_RUN, "--out", str(tiny_pags_run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "finished pags run" in err, err
    assert "--resume" not in err


def test_a_new_sampling_into_a_training_run_names_its_kind(interrupted, tmp_path, capsys):
    other = tmp_path / "train"
    shutil.copytree(interrupted, other)
    info = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**info, "kind": "train"}))
    assert main([*NEW_RUN, "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train run" in err and "pags --resume" not in err, err


# -- resuming in-process ---------------------------------------------------------------------------------

TIMINGS = ("seconds", "candidates_per_second")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_pags(TINY, run_dir, embed=embedding_table)
    return run_dir


@pytest.fixture(scope="module")
def pegs_reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("pegs") / "run"
    run_pags(PEGS, run_dir, embed=embedding_table)
    return run_dir


PEGS = dataclasses.replace(TINY, generator="magnitude", warmup_iters=3, population=5)


def file_states(run_dir: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def assert_same_run(run_dir: Path, reference: Path, tmp_path: Path) -> None:
    """What every reader sees of ``run_dir`` is what it sees of ``reference`` (timings aside)."""
    mine, theirs = RunStore.open(run_dir).info, RunStore.open(reference).info
    assert mine["status"] == "finished"
    drop = lambda values, keys: {k: v for k, v in values.items() if k not in keys}  # noqa: E731
    assert drop(mine["final"], TIMINGS) == drop(theirs["final"], TIMINGS)
    assert drop(mine["config"], ("workers",)) == drop(theirs["config"], ("workers",))
    assert mine["snapshots"] == theirs["snapshots"]
    ours, others = export_run(run_dir, tmp_path / "mine"), export_run(reference, tmp_path / "theirs")
    assert [p.name for p in ours] == [p.name for p in others]
    for a, b in zip(ours, others, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert RunStore.open(run_dir).population()["candidate"].value_counts().nunique() == 1  # no row twice
    for name in ("pags_mask.pt", "base_mask.pt"):
        a, b = load_mask_checkpoint(run_dir / name), load_mask_checkpoint(reference / name)
        assert a.masks.keys() == b.masks.keys() and a.meta == b.meta, name
        assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks), name
        assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in b.state_dict), name
    for step in (0, 1):
        a, b = RunStore.open(run_dir).load_masks(step), RunStore.open(reference).load_masks(step)
        assert all(torch.equal(a[k], b[k]) for k in b), step
    assert (run_dir / "embedding.csv").read_bytes() == (reference / "embedding.csv").read_bytes()
    assert not (run_dir / SCORED_DIR).exists()


@pytest.mark.parametrize(("workers", "stop", "resume_workers"), [(1, 4, None), (2, 3, 2)], ids=["1-1", "2-2"])
def test_a_sampling_stopped_after_k_candidates_resumes_to_the_uninterrupted_run(
    tmp_path, reference, workers, stop, resume_workers
):
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pags(
            dataclasses.replace(TINY, workers=workers), run_dir, progress=stop_at(stop), embed=embedding_table
        )
    assert RunStore.open(run_dir).info["status"] == "interrupted"
    assert RunStore.open(run_dir).population().empty  # the table is written once, at the end
    assert len(read_scored(run_dir, list(load_mask_checkpoint(run_dir / "base_mask.pt").masks))) == stop
    calls = []
    result = resume_pags(
        run_dir, progress=lambda *a: calls.append(a), embed=embedding_table, workers=resume_workers
    )
    assert calls[0] == (stop + 1, TINY.population) and calls[-1] == (TINY.population, TINY.population)
    assert not result.already_finished and result.run_dir == run_dir
    assert_same_run(run_dir, reference, tmp_path)


def test_a_resumed_sampling_stopped_again_resumes_again(tmp_path, interrupted, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted, run_dir)
    with pytest.raises(KeyboardInterrupt):
        resume_pags(run_dir, progress=stop_at(4), embed=embedding_table, workers=2)
    assert RunStore.open(run_dir).info["status"] == "interrupted"
    resume_pags(run_dir, embed=embedding_table)
    assert_same_run(run_dir, reference, tmp_path)


def test_a_sampling_stopped_while_it_writes_its_results_resumes_without_repeating_a_row(tmp_path, reference):
    def stop_while_mapping(population):
        raise KeyboardInterrupt  # the population and both snapshots are written by now

    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pags(TINY, run_dir, embed=stop_while_mapping)
    store = RunStore.open(run_dir)
    assert store.info["status"] == "interrupted" and not store.population().empty
    assert store.mask_steps() == [0, 1]
    resume_pags(run_dir, embed=embedding_table)
    assert_same_run(run_dir, reference, tmp_path)


@pytest.mark.parametrize("stop", [1, PEGS.warmup_iters + 2], ids=["in the warm-up", "among the candidates"])
def test_a_pegs_sampling_resumes_from_its_warmed_up_weights(tmp_path, pegs_reference, stop):
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pags(PEGS, run_dir, progress=stop_at(stop), embed=embedding_table)
    assert (run_dir / "base_mask.pt").exists() == (stop > PEGS.warmup_iters)
    resume_pags(run_dir, embed=embedding_table)
    assert_same_run(run_dir, pegs_reference, tmp_path)


def test_a_finished_sampling_is_left_alone(tmp_path, reference, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    before = file_states(run_dir)
    result = resume_pags(run_dir, embed=embedding_table)
    assert result.already_finished and result.run_dir == run_dir
    pd.testing.assert_frame_equal(result.population, RunStore.open(run_dir).population())
    won = result.population[result.population["won"]]
    assert result.winners == dict(zip(won["layer"], won["candidate"], strict=True))
    assert result.summary()["layers_replaced"] == RunStore.open(run_dir).info["final"]["layers_replaced"]
    assert main(["pags", "--resume", str(run_dir)]) == 0
    captured = capsys.readouterr()
    assert "already finished" in captured.out and captured.err == ""
    assert file_states(run_dir) == before


def test_a_resume_that_cannot_start_leaves_the_run_as_it_was(tmp_path):
    def stop_while_mapping(population):
        raise KeyboardInterrupt  # the population and both snapshots are written by now

    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pags(TINY, run_dir, embed=stop_while_mapping)
    (run_dir / "base_mask.pt").write_bytes(b"not a checkpoint")

    def contents() -> tuple[dict, list[bytes]]:  # the files, and the tables (the database's bytes change)
        files = {
            path: data for path, (data, _) in file_states(run_dir).items() if path.suffix in (".pt", ".npz")
        }
        tables = export_run(run_dir, tmp_path / f"export{len(list(tmp_path.iterdir()))}")
        return files, [table.read_bytes() for table in tables]

    before = contents()
    with pytest.raises(CheckpointError, match="base_mask.pt"):
        resume_pags(run_dir)
    assert contents() == before
    assert RunStore.open(run_dir).info["status"] == "interrupted"
    assert RunStore.open(run_dir).mask_steps() == [0, 1]


def test_a_sampling_another_process_writes_is_not_resumed(tmp_path, interrupted):
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted, run_dir)
    writer = RunStore.open(run_dir, readonly=False)  # holds the writer lock, as a live job does
    try:
        with pytest.raises(RunError, match="another process"):
            resume_pags(run_dir)
    finally:
        writer.close()
    assert RunStore.open(run_dir).info["status"] == "interrupted"


# -- the command line ------------------------------------------------------------------------------------


def test_pags_resume_continues_with_any_number_of_workers(tmp_path, interrupted, reference, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted, run_dir)
    assert main(["pags", "--resume", str(run_dir), "--workers", "2"]) == 0
    assert f"wrote {run_dir}" in capsys.readouterr().out
    assert_same_run(run_dir, reference, tmp_path)


BAD_RESUMES = {
    "a flag of a new sampling": ["--model", "mlp"],
    "two of them": ["--density", "0.5", "--seed", "1"],
    "--out as well": ["--out", "elsewhere"],
    "no workers": ["--workers", "0"],
}


@pytest.mark.parametrize("extra", list(BAD_RESUMES.values()), ids=list(BAD_RESUMES))
def test_a_bad_resume_is_one_line_and_changes_nothing(interrupted, capsys, extra):
    before = file_states(interrupted)
    assert main(["pags", "--resume", str(interrupted), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.match(r"fullspectrum( pags)?: error: ", err), err
    assert file_states(interrupted) == before


def test_resume_of_what_is_not_an_unfinished_sampling_is_one_line(tmp_path, interrupted, capsys):
    other = tmp_path / "train"
    shutil.copytree(interrupted, other)
    info = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**info, "kind": "train"}))
    (tmp_path / "file").write_text("not a run")
    for target, says in [
        (tmp_path / "missing", "no such folder"),
        (tmp_path / "file", "not a run"),
        (other, "not a PAGS sampling"),
    ]:
        assert main(["pags", "--resume", str(target)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and says in err, err
    for argv, says in [([], "--out"), (["--out", str(tmp_path / "new"), "--data", "digits"], "--model")]:
        assert main(["pags", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "new").exists()


# -- real processes: SIGKILL, and Ctrl-C to the whole process group ---------------------------------


ARGS = [
    *("--model", "mlp", "--data", "digits", "--generator", "snip", "--density", "0.1"),
    *("--population", "30", "--seed", "3", "--device", "cpu"),
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "fullspectrum", "pags", *extra]


@pytest.fixture(scope="module")
def process_reference(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("process") / "run"
    done = subprocess.run(command(*ARGS, "--out", str(run_dir)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return run_dir


def start_and_signal(run_dir: Path, sig: int, scored: int, *extra: str) -> subprocess.Popen:
    """Start a sampling in its own process group and send ``sig`` to the group (as a terminal's Ctrl-C
    reaches every process of it) once ``scored`` candidates are saved."""
    process = subprocess.Popen(
        command(*ARGS, *extra, "--out", str(run_dir)),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        folder = run_dir / SCORED_DIR
        if folder.is_dir() and len([p for p in folder.iterdir() if not p.name.startswith(".")]) >= scored:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the sampling ended before it could be stopped; make it longer"
    os.killpg(process.pid, sig)
    process.wait(timeout=300)
    return process


@pytest.mark.slow
def test_a_killed_sampling_resumes_to_the_uninterrupted_run(tmp_path, process_reference):
    scored = random.randint(1, 30)  # 30: killed while it writes the results or maps the population
    run_dir = tmp_path / "run"
    process = start_and_signal(run_dir, signal.SIGKILL, scored)
    assert process.returncode == -signal.SIGKILL
    assert RunStore.open(run_dir).info["status"] == "running", scored  # it never got to say otherwise
    done = subprocess.run(command("--resume", str(run_dir)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, (scored, done.stderr)
    assert_same_run(run_dir, process_reference, tmp_path)
    again = subprocess.run(command("--resume", str(run_dir)), env=ENV, capture_output=True, text=True)
    assert again.returncode == 0 and "already finished" in again.stdout


@pytest.mark.slow
def test_ctrl_c_with_workers_is_one_line_exit_130_and_resumes(tmp_path, process_reference):
    run_dir = tmp_path / "run"
    process = start_and_signal(run_dir, signal.SIGINT, 3, "--workers", "2")
    err = process.stderr.read().decode()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.endswith(
        f"fullspectrum: interrupted; continue with: fullspectrum pags --resume {run_dir}\n"
    ), err
    assert RunStore.open(run_dir).info["status"] == "interrupted"
    done = subprocess.run(
        command("--resume", str(run_dir), "--workers", "2"), env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert_same_run(run_dir, process_reference, tmp_path)


# -- from the app -----------------------------------------------------------------------------------


def test_the_app_resumes_an_interrupted_sampling_as_a_pags_job(tmp_path, interrupted, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(interrupted, run_dir)
    started = []
    monkeypatch.setattr(
        jobs, "start_job", lambda command, arguments, where: started.append((command, arguments))
    )
    jobs.resume_sampling(run_dir)
    assert started == [("pags", ["--resume", str(run_dir)])]
    with pytest.raises(RunError, match="a 'pags' run, not a 'train' run"):
        jobs.resume_training(run_dir)


def test_the_pags_lab_offers_resume_for_an_interrupted_sampling(tmp_path, interrupted, monkeypatch):
    run_dir = tmp_path / "workspace" / "stopped"
    shutil.copytree(interrupted, run_dir)
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(tmp_path / "workspace"))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    resumed = []
    monkeypatch.setattr(jobs, "resume_sampling", lambda path: resumed.append(path))
    page = Path(__file__).resolve().parents[1] / "app" / "app_pages" / "pags_lab.py"
    at = AppTest.from_file(str(page), default_timeout=120)
    at.session_state["pags_job"] = str(run_dir)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.label == "Stop"]
    next(b for b in at.button if b.label == "Resume").click().run()
    assert resumed == [str(run_dir)]
