"""A lottery lineage or an Early-Bird search SIGKILLed at several moments resumes to the same masks.

Each run is a real ``python -m fullspectrum`` process on one CPU thread. The
killed one is stopped at moments chosen by the files it has written (inside a
training, right after a mask is decided, as a training folder appears), then
started again with the same command line, and finished with ``--resume``; its
masks, rewind point, ticket and tables must equal an uninterrupted run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.checkpoints.reading import safe_torch_load
from fullspectrum.runs import RunStore

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
COMMON = ["--epochs", "2", "--batch-size", "256", "--snapshot-every", "4", "--seed", "1", "--device", "cpu"]
LOTTERY = ["lottery", "--density", "0.6", "--rewind-iters", "5", *COMMON]  # 4 trainings of 12 iterations
EARLYBIRD = ["earlybird", "--density", "0.3", *COMMON[2:], "--epochs", "6"]  # 6 iterations per epoch


def fullspectrum(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fullspectrum", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def finish(*args: str) -> None:
    process = fullspectrum(*args)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-2000:]


def kill_when(args: list[str], out: Path, trigger: str) -> bool:
    """Start ``args --out out`` and SIGKILL it as soon as ``out/trigger`` exists; False if it finished first."""
    process = fullspectrum(*args, "--out", str(out))
    deadline = time.monotonic() + 600
    while process.poll() is None and not (out / trigger).exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return True


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    view = lambda t: t.detach().contiguous().reshape(-1).view(torch.uint8)  # noqa: E731
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(view(a), view(b))


def assert_same_mask_file(mine: Path, theirs: Path) -> None:
    a, b = load_mask_checkpoint(mine), load_mask_checkpoint(theirs)
    assert a.meta == b.meta and set(a.masks) == set(b.masks) and set(a.state_dict) == set(b.state_dict)
    assert all(torch.equal(a.masks[name], b.masks[name]) for name in a.masks)
    assert all(same_bits(a.state_dict[name], b.state_dict[name]) for name in a.state_dict)


def killed_and_resumed(args: list[str], tmp_path: Path, triggers: list[str]) -> tuple[Path, Path]:
    reference, out = tmp_path / "reference", tmp_path / "killed"
    finish(*args, "--out", str(reference))
    kills = sum(kill_when(args, out, trigger) for trigger in triggers)
    assert kills >= len(triggers) - 1, "the runs ended before they could be killed; make them longer"
    finish(args[0], "--resume", str(out))
    assert RunStore.open(out).info["status"] == "finished"
    return reference, out


def test_a_killed_lineage_resumes_to_the_same_masks(tmp_path):
    triggers = [
        "level_00/masks/step_00000004.npz",  # inside the dense run, before iteration k = 5
        "level_masks/level_01.pt",  # the first mask decided
        "level_02/run.json",  # a level's folder just made
        "level_02/masks/step_00000008.npz",  # inside a sparse level
    ]
    reference, out = killed_and_resumed(LOTTERY, tmp_path, triggers)
    assert same_bits(
        *(
            safe_torch_load(d / "rewind_weights.pt")["state_dict"]["features.1.weight"]
            for d in (out, reference)
        )
    )
    for level in (1, 2, 3):
        assert_same_mask_file(
            out / "level_masks" / f"level_{level:02d}.pt", reference / "level_masks" / f"level_{level:02d}.pt"
        )
    assert_same_mask_file(out / "lottery_mask.pt", reference / "lottery_mask.pt")
    pd.testing.assert_frame_equal(pd.read_csv(out / "levels.csv"), pd.read_csv(reference / "levels.csv"))


def test_a_killed_early_bird_search_resumes_to_the_same_ticket(tmp_path):
    triggers = [
        "masks/step_00000012.npz",  # the second epoch's mask
        "search/masks/step_00000020.npz",  # inside the dense search
        "earlybird_mask.pt",  # the ticket just drawn
        "final/masks/step_00000008.npz",  # inside the ticket's training
    ]
    reference, out = killed_and_resumed(EARLYBIRD, tmp_path, triggers)
    assert_same_mask_file(out / "earlybird_mask.pt", reference / "earlybird_mask.pt")
    pd.testing.assert_frame_equal(pd.read_csv(out / "epochs.csv"), pd.read_csv(reference / "epochs.csv"))
    ours, theirs = RunStore.open(out).info["final"], RunStore.open(reference).info["final"]
    assert ours == theirs


def test_ctrl_c_exits_130_with_the_resume_command_and_resumes(tmp_path):
    out = tmp_path / "imp"
    process = fullspectrum(*LOTTERY, "--out", str(out))
    deadline = time.monotonic() + 600
    while (
        process.poll() is None
        and not (out / "level_01" / "run.json").exists()
        and time.monotonic() < deadline
    ):
        time.sleep(0.002)
    assert process.poll() is None, "the lineage ended before it could be stopped"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()[-2000:]
    assert f"continue with: fullspectrum lottery --resume {out}" in err.decode()
    assert RunStore.open(out).info["status"] == "interrupted"
    finish("lottery", "--resume", str(out))
    assert RunStore.open(out).info["final"]["pruning_levels"] == 3
