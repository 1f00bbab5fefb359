"""Early-Bird tickets (SPEC §9): the criterion on the run's own masks, the early stop, the ticket's training.

A tiny dense MLP (8 hidden units, 6 iterations per epoch) whose magnitude mask
settles at epoch 9 of 12; the criterion is recomputed here from the saved epoch
masks with plain set arithmetic, the ticket's mask from its weights by sorting.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.runs import RunStore
from fullspectrum.tickets import EarlyBirdConfig, resume_earlybird, run_earlybird
from fullspectrum.training import TrainConfig
from fullspectrum.training import checkpoint as ckpt

pytestmark = pytest.mark.slow  # each search trains twice

TINY = TrainConfig(
    epochs=12, batch_size=256, snapshot_every=1000, device="cpu", seed=5, model_options={"widths": [8]}
)
PER_EPOCH, KEPT = 6, 178  # round(0.3 · 592)
NAMES = ("features.1.weight", "classifier.weight")


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    view = lambda t: t.detach().contiguous().reshape(-1).view(torch.uint8)  # noqa: E731
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(view(a), view(b))


def kept_indices(masks: dict[str, torch.Tensor]) -> set[int]:
    flat = torch.cat([masks[name].flatten() for name in NAMES])
    return set(torch.nonzero(flat).flatten().tolist())


def first_epoch_by_hand(epoch_masks: list[set[int]], k: int) -> int:
    """The first epoch within 0.1 of each of the previous four (share of the kept set changed), else the last."""
    for epoch in range(5, len(epoch_masks) + 1):
        newest = epoch_masks[epoch - 1]
        if all((k - len(newest & epoch_masks[epoch - 1 - j])) / k < 0.1 for j in range(1, 5)):
            return epoch
    return len(epoch_masks)


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("earlybird") / "eb"
    result = run_earlybird(EarlyBirdConfig(TINY, density=0.3), out)
    assert result.status == "finished"
    return out


def test_the_ticket_epoch_is_the_criterion_on_the_runs_own_epoch_masks(search):
    parent = RunStore.open(search)
    steps = parent.mask_steps()
    assert steps == [PER_EPOCH * epoch for epoch in range(1, len(steps) + 1)]  # one mask per epoch, then stop
    masks = [kept_indices(parent.load_masks(step)) for step in steps]
    assert all(len(kept) == KEPT for kept in masks)
    epoch = first_epoch_by_hand(masks, KEPT)
    assert epoch == len(steps) < 12  # the criterion held before the last epoch, and the search stopped there
    final = json.loads((search / "run.json").read_text())["final"]
    assert final["ticket_epoch"] == epoch and final["emerged"] is True
    assert final["search_iterations"] == epoch * PER_EPOCH and final["final_iterations"] == 12 * PER_EPOCH
    assert final["iterations"] == (epoch + 12) * PER_EPOCH
    table = pd.read_csv(search / "epochs.csv")
    assert table["epoch"].tolist() == list(range(1, epoch + 1)) and table["ticket"].tolist() == [False] * (
        epoch - 1
    ) + [True]
    for row in table.itertuples():  # the distances, most recent first, by hand
        newest = masks[row.epoch - 1]
        for j in range(1, 5):
            value = getattr(row, f"distance_{j}")
            if row.epoch - j >= 1:
                assert value == pytest.approx((KEPT - len(newest & masks[row.epoch - 1 - j])) / KEPT)
            else:
                assert pd.isna(value)


def test_the_dense_search_ends_at_the_ticket_and_the_ticket_is_its_magnitude_mask(search):
    epoch = json.loads((search / "run.json").read_text())["final"]["ticket_epoch"]
    info = json.loads((search / "search" / "run.json").read_text())
    assert info["status"] == "finished" and info["config"]["method"] == "dense"
    assert info["final"]["steps"] == epoch * PER_EPOCH and info["total_steps"] == 12 * PER_EPOCH
    weights = ckpt.load_checkpoint(search / "search" / "checkpoint.pt")["model"]
    ticket = load_mask_checkpoint(search / "earlybird_mask.pt")
    for name, tensor in weights.items():
        assert same_bits(ticket.state_dict[name], tensor), name
    magnitude = torch.cat([weights[name].abs().flatten() for name in NAMES])
    kept = torch.cat([ticket.masks[name].flatten() for name in NAMES])
    assert int(kept.sum()) == KEPT and magnitude[kept].min() >= magnitude[~kept].max()
    assert ticket.meta["ticket_epoch"] == epoch and ticket.meta["generator"] == "earlybird"


def test_the_ticket_trains_from_its_weights_for_the_full_budget(search, tmp_path):
    ticket = load_mask_checkpoint(search / "earlybird_mask.pt")
    final = RunStore.open(search / "final")
    assert final.info["config"]["method"] == "static" and final.info["final"]["steps"] == 12 * PER_EPOCH
    start = final.load_weights(0)
    for name in NAMES:
        assert same_bits(start[name][ticket.masks[name]], ticket.state_dict[name][ticket.masks[name]])
        assert torch.equal(final.load_masks(12 * PER_EPOCH)[name], ticket.masks[name])
    parent = json.loads((search / "run.json").read_text())
    assert parent["final"]["test_accuracy"] == final.info["final"]["test_accuracy"]
    assert main(["export", str(search), "--out", str(tmp_path / "export")]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "export" / "epochs.csv"), pd.read_csv(search / "epochs.csv")
    )


def test_stopped_and_resumed_in_each_stage_draws_the_same_ticket(search, tmp_path):
    out = tmp_path / "eb"
    for stop_at, stage in ((20, "search"), (12 * PER_EPOCH + 30, "final")):
        stop = threading.Event()

        def progress(done: int, total: int, stop=stop, stop_at=stop_at) -> None:
            if done >= stop_at:
                stop.set()

        result = (
            run_earlybird(EarlyBirdConfig(TINY, density=0.3), out, progress=progress, stop_event=stop)
            if stage == "search"
            else resume_earlybird(out, progress=progress, stop_event=stop)
        )
        assert result.status == "interrupted" and result.interrupted_at[0] == stage
    done = resume_earlybird(out)
    assert done.status == "finished"
    mine, theirs = (
        load_mask_checkpoint(out / "earlybird_mask.pt"),
        load_mask_checkpoint(search / "earlybird_mask.pt"),
    )
    assert mine.meta == theirs.meta
    assert all(torch.equal(mine.masks[name], theirs.masks[name]) for name in NAMES)
    assert all(same_bits(mine.state_dict[name], theirs.state_dict[name]) for name in theirs.state_dict)
    ours, reference = (json.loads((d / "run.json").read_text())["final"] for d in (out, search))
    assert ours == reference
    again = run_earlybird(EarlyBirdConfig(TINY, density=0.3), out)
    assert again.already_finished and again.ticket_epoch == reference["ticket_epoch"]
    with pytest.raises(ValueError, match="other options \\(density 0.3 there, 0.2 now\\)"):
        run_earlybird(EarlyBirdConfig(TINY, density=0.2), out)


def test_without_five_epochs_the_ticket_is_the_last_epochs(tmp_path, capsys):
    out = tmp_path / "eb"
    args = [
        "earlybird",
        "--density",
        "0.5",
        "--epochs",
        "3",
        "--batch-size",
        "512",
        "--snapshot-every",
        "100",
    ]
    assert main([*args, "--device", "cpu", "--out", str(out)]) == 0
    assert "ticket drawn at epoch 3 (no epoch qualified" in capsys.readouterr().out
    final = json.loads((out / "run.json").read_text())["final"]
    assert final["ticket_epoch"] == 3 and final["emerged"] is False and final["search_iterations"] == 9
    assert json.loads((out / "search" / "run.json").read_text())["final"]["steps"] == 9
