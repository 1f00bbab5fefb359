"""IMP with rewinding (SPEC §9): nested masks, integer counts, bit-exact rewinding, resuming, bad inputs.

The lineages are tiny (an MLP with 8 hidden units on digits, 12 iterations per
level), trained once per module and read by several tests. The rewind point is
checked against the trainer run on its own with a hook of the test's, the
pruning against sorting, the counts against a hand count.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.checkpoints.reading import safe_torch_load
from fullspectrum.cli import main
from fullspectrum.runs import RunStore
from fullspectrum.tickets import LotteryConfig, resume_lottery, run_lottery
from fullspectrum.training import TrainConfig, train
from fullspectrum.training import checkpoint as ckpt

TINY = TrainConfig(
    epochs=2, batch_size=256, snapshot_every=1000, device="cpu", seed=5, model_options={"widths": [8]}
)
"""64 -> 8 -> 10: 592 maskable weights (512 + 80 in the classifier), 6 iterations per epoch."""
STEPS = 12
SCHEDULE = (
    592,
    473,
    378,
    302,
    296,
)  # by hand: 592 - ceil(118.4), 473 - ceil(94.6), ..., then round(0.5 · 592)
NAMES = ("features.1.weight", "classifier.weight")


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes, so equality is bit for bit (``-0.0 != 0.0``, NaN == NaN)."""
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(bits(a), bits(b))


def level_masks(run_dir: Path, levels: int) -> list[dict[str, torch.Tensor]]:
    """Level 0's (all ones) and every pruned level's masks."""
    ones = {name: torch.ones_like(mask) for name, mask in load_mask_checkpoint(
        run_dir / "level_masks" / "level_01.pt").masks.items()}  # fmt: skip
    return [ones] + [
        load_mask_checkpoint(run_dir / "level_masks" / f"level_{r:02d}.pt").masks for r in range(1, levels)
    ]


@pytest.fixture(scope="module")
def lineage(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lottery") / "imp"
    result = run_lottery(LotteryConfig(TINY, density=0.5, rewind_iters=3), out)
    assert result.status == "finished" and result.schedule == SCHEDULE
    return out


pytestmark = pytest.mark.slow  # each lineage trains five times; the bad inputs are in test_lottery_inputs.py


def test_every_level_is_a_subset_of_the_previous_and_keeps_the_scheduled_count(lineage):
    masks = level_masks(lineage, len(SCHEDULE))
    for level, (before, after) in enumerate(zip(masks, masks[1:], strict=False), start=1):
        for name in NAMES:
            assert not bool((after[name] & ~before[name]).any()), f"level {level} grew {name}"
        assert sum(int(mask.sum()) for mask in after.values()) == SCHEDULE[level]  # classifier counted
    assert sum(int(mask.sum()) for mask in masks[-1].values()) == round(0.5 * 592)


def test_each_level_prunes_the_smallest_trained_weights_globally(lineage):
    masks = level_masks(lineage, len(SCHEDULE))
    for level in range(1, len(SCHEDULE)):
        trained = ckpt.load_checkpoint(lineage / f"level_{level - 1:02d}" / "checkpoint.pt")["model"]
        magnitude = torch.cat([trained[name].abs().flatten() for name in NAMES])
        before = torch.cat([masks[level - 1][name].flatten() for name in NAMES])
        after = torch.cat([masks[level][name].flatten() for name in NAMES])
        dropped = before & ~after
        assert int(dropped.sum()) == SCHEDULE[level - 1] - SCHEDULE[level]
        assert magnitude[after].min() >= magnitude[dropped].max()


def test_rewound_weights_are_the_dense_runs_iteration_k_weights_bit_for_bit(lineage, tmp_path):
    captured = {}

    def capture(session) -> None:  # the test's own hook on a plain dense run of the same config
        if session.step == 3:
            captured.update({k: v.detach().clone() for k, v in session.model.state_dict().items()})

    dense = dataclasses.replace(TINY, method="dense", density=1.0, sparse_init=False)
    train(dense, tmp_path / "dense", step_hook=capture)
    rewind = safe_torch_load(lineage / "rewind_weights.pt")
    assert rewind["step"] == 3 and set(rewind["state_dict"]) == set(captured)
    for name, tensor in captured.items():
        assert same_bits(rewind["state_dict"][name], tensor), name
    initial = RunStore.open(lineage / "level_00").load_weights(0)
    assert not torch.equal(initial[NAMES[0]], captured[NAMES[0]])  # iteration 3 is not the initialisation
    ticket = load_mask_checkpoint(lineage / "lottery_mask.pt")
    assert set(ticket.state_dict) == set(captured)
    for name, tensor in captured.items():
        assert same_bits(ticket.state_dict[name], tensor), name
    for level in range(1, len(SCHEDULE)):  # every level starts from exactly those weights
        start = RunStore.open(lineage / f"level_{level:02d}").load_weights(0)
        masks = load_mask_checkpoint(lineage / "level_masks" / f"level_{level:02d}.pt").masks
        for name in NAMES:
            assert same_bits(start[name][masks[name]], captured[name][masks[name]])
            assert not bool(start[name][~masks[name]].any())


def test_the_ticket_is_the_last_levels_mask(lineage):
    ticket = load_mask_checkpoint(lineage / "lottery_mask.pt")
    last = load_mask_checkpoint(lineage / "level_masks" / f"level_{len(SCHEDULE) - 1:02d}.pt")
    assert all(torch.equal(ticket.masks[name], last.masks[name]) for name in NAMES)
    assert ticket.meta["generator"] == "lottery" and ticket.meta["kept"] == 296
    assert ticket.meta["rewind_iters"] == 3


def test_levels_table_and_final_report_iterations(lineage, tmp_path):
    table = pd.read_csv(lineage / "levels.csv")
    assert list(table.columns) == ["level", "kept", "density", "accuracy", "iterations", "run"]
    assert table["level"].tolist() == [0, 1, 2, 3, 4] and table["kept"].tolist() == list(SCHEDULE)
    assert table["density"].tolist() == pytest.approx([count / 592 for count in SCHEDULE])
    assert table["iterations"].tolist() == [STEPS] * 5
    for row in table.itertuples():
        level_info = json.loads((lineage / row.run / "run.json").read_text())
        assert level_info["final"]["test_accuracy"] == row.accuracy
        assert level_info["config"]["method"] == ("dense" if row.level == 0 else "static")
    info = json.loads((lineage / "run.json").read_text())
    assert info["kind"] == "lottery" and info["status"] == "finished"
    assert info["final"]["iterations"] == 5 * STEPS and info["final"]["search_iterations"] == 4 * STEPS
    assert (
        info["final"]["pruning_levels"] == 4 and info["final"]["test_accuracy"] == table["accuracy"].iloc[-1]
    )
    assert main(["export", str(lineage), "--out", str(tmp_path / "export")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "export" / "levels.csv"), table)


def test_a_finished_lineage_is_recognised_and_other_options_refused(lineage, capsys):
    before = {path: path.stat().st_mtime_ns for path in lineage.rglob("*") if path.is_file()}
    again = run_lottery(LotteryConfig(TINY, density=0.5, rewind_iters=3), lineage)
    assert again.already_finished and again.iterations == 5 * STEPS and len(again.levels) == 5
    assert resume_lottery(lineage).already_finished
    assert {path: path.stat().st_mtime_ns for path in lineage.rglob("*") if path.is_file()} == before
    code = main(["lottery", "--resume", str(lineage)])
    assert code == 0 and "already finished" in capsys.readouterr().out
    with pytest.raises(ValueError, match="other options \\(density 0.5 there, 0.4 now\\)"):
        run_lottery(LotteryConfig(TINY, density=0.4, rewind_iters=3), lineage)


def test_stopped_mid_level_and_resumed_gives_the_same_masks(lineage, tmp_path):
    out, stop = tmp_path / "imp", threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 2 * STEPS + 5:  # inside level 2
            stop.set()

    first = run_lottery(
        LotteryConfig(TINY, density=0.5, rewind_iters=3), out, progress=progress, stop_event=stop
    )
    assert first.status == "interrupted" and first.interrupted_at[0] == 2 and len(first.levels) == 2
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    done = resume_lottery(out)
    assert done.status == "finished" and not done.already_finished
    for mine, theirs in zip(level_masks(out, 5), level_masks(lineage, 5), strict=True):
        assert all(torch.equal(mine[name], theirs[name]) for name in NAMES)
    assert (
        pd.read_csv(out / "levels.csv")
        .drop(columns="run")
        .equals(pd.read_csv(lineage / "levels.csv").drop(columns="run"))
    )


@pytest.mark.parametrize("rewind", ["start", "end"])
def test_rewinding_to_iteration_zero_or_to_the_end(tmp_path, rewind):
    k = 0 if rewind == "start" else STEPS
    keep_dense = rewind == "end"
    out = tmp_path / "imp"
    result = run_lottery(
        LotteryConfig(TINY, density=0.8, rewind_iters=k, keep_classifier_dense=keep_dense), out
    )
    dense_run = RunStore.open(out / "level_00")
    if k == 0:  # the original lottery ticket: the initialisation (its step-0 snapshot)
        expected = dense_run.load_weights(0)
    else:  # the dense run's last weights (its final checkpoint)
        expected = ckpt.load_checkpoint(out / "level_00" / "checkpoint.pt")["model"]
    ticket = load_mask_checkpoint(out / "lottery_mask.pt")
    for name in NAMES:
        assert same_bits(ticket.state_dict[name], expected[name])
    if keep_dense:  # 512 prunable weights: 512 - ceil(102.4) = 409 < round(0.8 · 512) = 410
        assert result.schedule == (512, 410)
        assert bool(ticket.masks["classifier.weight"].all())
        assert int(ticket.masks["features.1.weight"].sum()) == 410
        assert result.levels[-1].density == pytest.approx((410 + 80) / 592)
    else:  # 592 - ceil(118.4) = 473 < round(0.8 · 592) = 474
        assert result.schedule == (592, 474)
        assert sum(int(mask.sum()) for mask in ticket.masks.values()) == 474


def test_the_command_line_trains_a_lineage_and_continues_it(tmp_path, capsys):
    out = tmp_path / "imp"
    args = ["lottery", "--density", "0.6", "--rewind-iters", "2", "--epochs", "1", "--batch-size", "512"]
    args += ["--snapshot-every", "100", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "level  3: density 0.6000" in printed and "4 trainings, 12 iterations in all" in printed
    assert load_mask_checkpoint(out / "lottery_mask.pt").meta["rewind_iters"] == 2
    assert main(args) == 0 and "already finished" in capsys.readouterr().out  # the same command again
