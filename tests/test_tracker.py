"""``fullspectrum.Tracker``: the snapshot schedule, the three forms of masks, the run folder it
writes (read by the library's readers while it runs and after), its statuses and bad inputs."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import fullspectrum
from fullspectrum.errors import CheckpointError, FullSpectrumError, MaskError
from fullspectrum.runs import RunStore, export_run, jobs, list_runs
from fullspectrum.runs.run_file import DB_FILE
from fullspectrum.spectrum import SPECTRUM_FIELDS
from fullspectrum.tracking import Tracker, run_config
from fullspectrum.tracking import tracker as tracker_module


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(12, 16), act=nn.ReLU(), fc2=nn.Linear(16, 8), out=nn.Linear(8, 3))
    )


def random_masks(model: nn.Module, density: float = 0.4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        f"{name}.weight": torch.rand(module.weight.shape, generator=generator) < density
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
    }


def train_steps(model, steps, tracker, start: int = 1, masks=None) -> None:
    """A few SGD steps of a toy loop, each reported to ``tracker`` with its loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(start)
    for step in range(start, start + steps):
        inputs = torch.randn(8, 12, generator=generator)
        loss = nn.functional.cross_entropy(model(inputs), torch.randint(0, 3, (8,), generator=generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if masks is not None:
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if name in masks:
                        parameter.mul_(masks[name])
        tracker.step(step, loss=loss.item())


def tracker(model, run_dir, **options) -> Tracker:
    return Tracker(model, run_dir, spectra_worker=options.pop("spectra_worker", False), **options)


# -- the schedule ------------------------------------------------------------------------------------


def test_snapshots_at_step_zero_every_multiple_on_request_and_at_finish(tmp_path):
    model = mlp()
    masks = random_masks(model)
    with tracker(model, tmp_path / "run", masks=masks, every=5) as tr:
        train_steps(model, 7, tr)  # steps 1..7: a snapshot at 5
        tr.snapshot()  # at 7
        tr.snapshot()  # 7 has one already
        train_steps(model, 5, tr, start=8)  # 8..12: at 10
        tr.finish(test_accuracy=0.25)
    store = RunStore.open(tmp_path / "run")
    assert store.mask_steps() == [0, 5, 7, 10, 12]
    layers = store.layers()
    assert sorted(set(layers.step)) == [0, 5, 7, 10, 12]
    assert set(layers.layer) == {"fc1", "fc2", "out"} and len(layers) == 15
    assert sorted(store.load_weights(0)) == sorted(masks) == sorted(store.load_weights(12))
    assert store.load_weights(5) == {} and store.load_weights(10) == {}
    info = store.info
    assert info["status"] == "finished" and info["kind"] == "train"
    assert info["final"]["test_accuracy"] == 0.25 and info["final"]["steps"] == 12
    evals = store.evals()
    assert list(evals[evals.split == "train"].step) == list(range(1, 13))
    assert evals[evals.split == "test"].accuracy.tolist() == [0.25]
    assert not (tmp_path / "run" / f"{DB_FILE}-wal").exists()  # a finished run: rollback journal
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # nothing to resume a user's loop from


def test_finish_on_a_snapshot_step_keeps_the_weights_there_and_step_zero_is_not_repeated(tmp_path):
    model = mlp()
    with tracker(model, tmp_path / "run", masks=random_masks(model), every=4) as tr:
        for step in range(9):  # enumerate-style: starts at 0, which the tracker's own snapshot holds
            tr.step(step, loss=1.0 / (step + 1))
        tr.finish()
    store = RunStore.open(tmp_path / "run")
    assert store.mask_steps() == [0, 4, 8]
    assert len(store.layers().query("step == 8")) == 3  # one row per layer, not two
    weights = store.load_weights(8)
    assert sorted(weights) == ["fc1.weight", "fc2.weight", "out.weight"]
    kept = store.load_masks(8)["fc1.weight"]
    assert torch.equal(weights["fc1.weight"], (model.fc1.weight.detach() * kept).float())


@pytest.mark.parametrize(("total_steps", "writes"), [(None, [5, 10, 10]), (10, [5, 10])])
def test_a_snapshot_at_total_steps_keeps_its_weights_at_once(tmp_path, total_steps, writes):
    model = mlp()
    tr = tracker(model, tmp_path / "run", masks=random_masks(model), every=5, total_steps=total_steps)
    saved, save = [], tr.store.save_masks  # step 0 is written already (inline spectra)
    tr.store.save_masks = lambda step, *args, **options: (saved.append(step), save(step, *args, **options))
    with tr:
        train_steps(model, 10, tr)
    assert saved == writes  # without the total, the last snapshot's file is written again with its weights
    store = RunStore.open(tmp_path / "run")
    assert sorted(store.load_weights(10)) == ["fc1.weight", "fc2.weight", "out.weight"]
    assert store.load_weights(5) == {}


def test_step_must_be_an_int_that_never_goes_back(tmp_path):
    model = mlp()
    with tracker(model, tmp_path / "run", every=10) as tr:
        tr.step(torch.tensor(3))
        tr.step(3.0, loss=0.5)  # the same step again is fine
        with pytest.raises(FullSpectrumError, match=r"step 2 comes after step 3.*epoch \* len\(loader\)"):
            tr.step(2)
        for bad in ("4", 4.5, True, -1):
            with pytest.raises(FullSpectrumError, match="tracker.step: step"):
                tr.step(bad)
        with pytest.raises(FullSpectrumError, match="unknown scalar 'lr'; choose from accuracy, loss"):
            tr.step(4, lr=0.1)
        with pytest.raises(FullSpectrumError, match="scalar loss: expected a number, got str"):
            tr.step(4, loss="high")
        with pytest.raises(FullSpectrumError, match="unknown split 'dev'"):
            tr.log_eval("dev", accuracy=0.5)
    with pytest.raises(FullSpectrumError, match="has ended; start a new Tracker"):
        tr.step(5)


def _number(value):
    return None if value is None or math.isnan(value) else float(value)


def test_scalars_name_their_split_and_log_eval_records_at_a_step(tmp_path):
    with tracker(mlp(), tmp_path / "run", every=100) as tr:
        tr.step(1, loss=2.0, accuracy=0.1, val_loss=2.5, test_accuracy=torch.tensor(0.05))
        tr.log_eval("val", loss=1.5, accuracy=0.5)
        tr.log_eval("train", accuracy=np.float32(0.75), step=7)
    evals = RunStore.open(tmp_path / "run").evals()
    rows = [(int(r.step), r.split, _number(r.loss), _number(r.accuracy)) for r in evals.itertuples()]
    assert rows == [
        (1, "train", 2.0, 0.1),
        (1, "val", 2.5, None),
        (1, "test", None, pytest.approx(0.05)),
        (1, "val", 1.5, 0.5),
        (7, "train", None, 0.75),
    ]
    assert (evals.exploration_rate == 1.0).all()  # masks omitted: a dense model's non-zeros


# -- the three forms of masks ------------------------------------------------------------------------


def test_dict_masks_track_the_layers_they_name_and_in_place_changes_are_events(tmp_path):
    model = mlp()
    masks = {"fc1": random_masks(model)["fc1.weight"], "out.weight": random_masks(model)["out.weight"]}
    before = masks["fc1"].clone()
    with tracker(model, tmp_path / "run", masks=masks, every=100) as tr:
        tr.step(1)
        masks["fc1"][0, :] = True  # grown in place
        masks["fc1"][1, :] = False  # pruned in place
        tr.step(2)
        tr.step(3)  # no change: no event
        masks["out.weight"] = torch.ones_like(masks["out.weight"])  # an entry replaced
        tr.step(4)
    store = RunStore.open(tmp_path / "run")
    events = store.events()
    assert sorted(set(events.step)) == [2, 4] and set(events.layer) == {"fc1", "out"}
    at_2 = events[events.step == 2].set_index("layer")
    assert at_2.loc["fc1", "grown"] == int((~before[0]).sum())
    assert at_2.loc["fc1", "pruned"] == int(before[1].sum())
    assert at_2.loc["out", "pruned"] == 0 == at_2.loc["out", "grown"]  # every layer, as the trainer
    assert set(store.layers().layer) == {"fc1", "out"}  # fc2 was not given
    final = store.load_masks(4)
    assert torch.equal(final["fc1.weight"], masks["fc1"]) and bool(final["out.weight"].all())


def test_callable_masks_are_read_at_each_snapshot_and_new_tensors_at_the_next_one(tmp_path):
    model = mlp()
    current = random_masks(model)
    calls = []

    def masks():
        calls.append(1)
        return current

    with tracker(model, tmp_path / "run", masks=masks, every=3) as tr:
        assert len(calls) == 1  # the step-0 snapshot
        tr.step(1)
        tr.step(2)
        assert len(calls) == 1  # not read between snapshots
        current = {**current, "fc2.weight": torch.ones(8, 16, dtype=torch.bool)}  # new tensors
        tr.step(3)  # the snapshot sees them
        current["out.weight"][0, 0] = not bool(current["out.weight"][0, 0])  # in place: seen at once
        tr.step(4)
        current = {**current, "fc1.weight": ~current["fc1.weight"]}
        tr.masks_changed()  # announced: recorded at step 4
    store = RunStore.open(tmp_path / "run")
    events = store.events()
    assert sorted(set(events.step)) == [3, 4]
    at_3 = events[events.step == 3].set_index("layer")
    assert at_3.loc["fc2", "pruned"] == 0 and at_3.loc["fc2", "grown"] > 0
    at_4 = events[events.step == 4].groupby("layer")[["pruned", "grown"]].sum()
    assert at_4.loc["out"].sum() == 1 and at_4.loc["fc1"].sum() == 12 * 16
    assert torch.equal(store.load_masks(4)["fc1.weight"], current["fc1.weight"])


def test_a_callable_that_changes_its_layers_fails_the_run(tmp_path):
    calls = []

    def shifting():
        calls.append(1)
        return {"fc1": torch.ones(16, 12)} if len(calls) == 1 else {"fc2": torch.ones(8, 16)}

    with pytest.raises(
        MaskError, match=r"tracked layers changed \(missing \['fc1.weight'\], new \['fc2.weight'\]\)"
    ):
        with tracker(mlp(), tmp_path / "run", masks=shifting) as tr:
            tr.step(1)
            tr.masks_changed()
    store = RunStore.open(tmp_path / "run")
    assert store.status == "failed" and "tracked layers changed" in store.info["error"]


def test_omitted_masks_are_the_weights_non_zeros(tmp_path):
    model = mlp()
    with torch.no_grad():
        model.fc1.weight[:, :6] = 0.0
    with tracker(model, tmp_path / "run") as tr:
        tr.step(1)
    store = RunStore.open(tmp_path / "run")
    masks = store.load_masks(0)
    assert sorted(masks) == ["fc1.weight", "fc2.weight", "out.weight"]
    assert torch.equal(masks["fc1.weight"], model.fc1.weight.detach() != 0)
    assert store.layers().set_index("layer").loc["fc1"].iloc[0].density == pytest.approx(0.5)
    assert store.info["tracker"]["masks"] == "weights"


def test_omitted_masks_are_torch_prune_buffers_and_a_new_pruning_is_an_event(tmp_path):
    model = mlp()
    torch.manual_seed(1)
    prune.random_unstructured(model.fc1, "weight", amount=0.5)
    prune.l1_unstructured(model.fc2, "weight", amount=0.25)
    with tracker(model, tmp_path / "run", every=100) as tr:
        tr.step(1)
        prune.l1_unstructured(model.fc1, "weight", amount=0.5)  # prunes again: a new buffer
        tr.step(2)
    store = RunStore.open(tmp_path / "run")
    assert store.info["tracker"]["masks"] == "prune buffers"
    masks = store.load_masks(2)
    assert torch.equal(masks["fc1.weight"], model.fc1.weight_mask.bool())
    assert torch.equal(masks["fc2.weight"], model.fc2.weight_mask.bool())
    assert bool(masks["out.weight"].all())  # not pruned: its non-zeros
    events = store.events().set_index("layer")
    assert list(events.step.unique()) == [2]
    assert events.loc["fc1", "pruned"] == 48 and events.loc["fc1", "grown"] == 0
    rows = store.layers().query("step == 0").set_index("layer")
    assert rows.loc["fc1", "density"] == pytest.approx(0.5) and rows.loc["fc2", "density"] == pytest.approx(
        0.75
    )


def test_fused_attention_projections_are_three_layers(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(attn=nn.MultiheadAttention(8, 2), head=nn.Linear(8, 3)))
    with tracker(model, tmp_path / "run") as tr:
        tr.step(1)
    layers = RunStore.open(tmp_path / "run").layers()
    assert list(layers.query("step == 0").layer) == ["attn.q", "attn.k", "attn.v", "attn.out_proj", "head"]


@pytest.mark.parametrize(
    ("masks", "match"),
    [
        ({"fc9": torch.ones(3, 3)}, r"masks: 'fc9' is not a layer of the model \(its layers: fc1.weight"),
        ({"fc1": torch.ones(3, 3)}, r"mask of fc1.weight: shape \(3, 3\), the weight's is \(16, 12\)"),
        ({"fc1": torch.full((16, 12), 2.0)}, "mask of fc1.weight: values other than 0 and 1"),
        ({"fc1": "ones"}, "mask of fc1.weight: expected a tensor, got str"),
        (
            {"fc1": torch.ones(16, 12), "fc1.weight": torch.ones(16, 12)},
            "names the layer fc1.weight a second",
        ),
        ({}, "masks: the dict is empty"),
        ([torch.ones(16, 12)], "masks: expected a dict of mask tensors, a callable returning one, or None"),
        (lambda: [1], "masks callable: returned list"),
    ],
)
def test_bad_masks_are_refused_in_one_line_before_the_folder_exists(tmp_path, masks, match):
    with pytest.raises(MaskError, match=match) as error:
        Tracker(mlp(), tmp_path / "run", masks=masks)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_bad_model_every_and_config_are_refused(tmp_path):
    with pytest.raises(MaskError, match="model: expected a torch.nn.Module, got dict"):
        Tracker({}, tmp_path / "run")
    with pytest.raises(MaskError, match="no Conv/Linear layer to track"):
        Tracker(nn.Sequential(nn.ReLU()), tmp_path / "run")
    for every in (0, 2.5, True):
        with pytest.raises(FullSpectrumError, match="every: steps between snapshots must be a positive int"):
            Tracker(mlp(), tmp_path / "run", every=every)
    with pytest.raises(FullSpectrumError, match="config: expected a dict, an argparse.Namespace"):
        Tracker(mlp(), tmp_path / "run", config=[1, 2])
    assert not (tmp_path / "run").exists()


# -- the run folder ----------------------------------------------------------------------------------


def test_config_is_stored_as_given(tmp_path):
    args = argparse.Namespace(lr=0.1, widths=(64, 32), out=Path("runs/x"), name="mine", flag=True, n=None)
    with tracker(mlp(), tmp_path / "run", config=args, seed=7) as tr:
        assert tr.config == {
            "lr": 0.1,
            "widths": [64, 32],
            "out": "runs/x",
            "name": "mine",
            "flag": True,
            "n": None,
        }
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["config"] == tr.config and info["seed"] == 7 and info["device"] == "cpu"
    assert info["versions"]["torch"] == torch.__version__ and info["versions"]["fullspectrum"]
    assert run_config({"a": 1}) == {"a": 1} and run_config(None) == {}


@pytest.mark.parametrize("spectra_worker", [False, True], ids=["inline", "worker"])
def test_spectra_rows_equal_the_engine_on_the_same_masks(tmp_path, spectra_worker):
    model = mlp()
    masks = random_masks(model, density=0.3)
    with tracker(model, tmp_path / "run", masks=masks, spectra_worker=spectra_worker) as tr:
        assert tr.store.info["spectra"] == ("worker process" if spectra_worker else "inline")
    rows = RunStore.open(tmp_path / "run").layers().query("step == 0").set_index("layer")
    weights = dict(model.named_parameters())
    layers = [
        (mask, weights[name].detach() * mask, name.removesuffix(".weight")) for name, mask in masks.items()
    ]
    expected = fullspectrum.layer_spectra(layers)
    assert list(rows.index) == ["fc1", "fc2", "out"]
    for (_, _, layer), spectrum in zip(layers, expected, strict=True):
        for field in SPECTRUM_FIELDS:
            want, got = getattr(spectrum, field), rows.loc[layer, field]
            assert got == want or (math.isnan(want) and math.isnan(got)), (layer, field)


def test_spectra_go_to_the_worker_for_networks_above_the_inline_size(tmp_path):
    small = Tracker(nn.Linear(300, 300), tmp_path / "small")  # 90,000 weights
    big = Tracker(nn.Linear(400, 300), tmp_path / "big")  # 120,000
    small.finish(), big.finish()
    assert RunStore.open(tmp_path / "small").info["spectra"] == "inline"
    assert RunStore.open(tmp_path / "big").info["spectra"] == "worker process"
    assert tracker_module.INLINE_MAX_WEIGHTS == 100_000


def test_readers_open_the_run_while_it_runs_and_after(tmp_path):
    model = mlp()
    run_dir = tmp_path / "runs" / "live"
    with tracker(
        model, run_dir, masks=random_masks(model), every=2, spectra_worker=True, total_steps=4
    ) as tr:
        train_steps(model, 2, tr)
        tr._rows.flush()
        deadline = time.monotonic() + 60
        while RunStore.open(run_dir).mask_steps() != [0, 2] and time.monotonic() < deadline:
            tr._writer.poll()
            time.sleep(0.05)
        assert (run_dir / f"{DB_FILE}-wal").exists()  # WAL while running
        reader = RunStore.open(run_dir)
        assert reader.status == "running" and sorted(set(reader.layers().step)) == [0, 2]
        assert list(reader.evals().step) == [1, 2]
        [summary] = list_runs(tmp_path / "runs")
        assert summary.status == "running" and summary.steps == 2
        written = export_run(run_dir, tmp_path / "export_live")
        assert sorted(path.name for path in written) == ["evals.csv", "events.csv", "layers.csv"]
        train_steps(model, 2, tr, start=3)
    assert not (run_dir / f"{DB_FILE}-wal").exists()
    [summary] = list_runs(tmp_path / "runs")
    assert summary.status == "finished" and summary.steps == 4
    export_run(run_dir, tmp_path / "export_done", "parquet")
    assert len(__import__("pandas").read_parquet(tmp_path / "export_done" / "layers.parquet")) == 9


def test_the_heartbeat_is_refreshed_while_the_loop_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(tracker_module, "HEARTBEAT_S", 0.05)
    with tracker(mlp(), tmp_path / "run") as tr:
        first = tr.store.info["heartbeat"]
        deadline = time.monotonic() + 10
        while tr.store.info["heartbeat"] == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tr.store.info["heartbeat"] != first


def test_an_error_in_the_block_leaves_a_readable_failed_run(tmp_path):
    model = mlp()
    with pytest.raises(ZeroDivisionError):
        with tracker(model, tmp_path / "run", every=2) as tr:
            train_steps(model, 3, tr)
            1 / 0  # noqa: B018
    store = RunStore.open(tmp_path / "run")
    assert store.status == "failed" and store.info["error"] == "ZeroDivisionError: division by zero"
    assert store.mask_steps() == [0, 2] and len(store.evals()) == 3  # what was captured is written
    assert not (tmp_path / "run" / f"{DB_FILE}-wal").exists()
    export_run(tmp_path / "run", tmp_path / "export")


@pytest.mark.parametrize(
    ("stop", "error"), [(KeyboardInterrupt, "KeyboardInterrupt"), (SystemExit(3), "SystemExit: 3")]
)
def test_ctrl_c_or_sys_exit_in_the_block_leaves_an_interrupted_run(tmp_path, stop, error):
    model = mlp()
    with pytest.raises(type(stop) if isinstance(stop, BaseException) else stop):
        with tracker(model, tmp_path / "run", every=2) as tr:
            train_steps(model, 1, tr)
            raise stop
    store = RunStore.open(tmp_path / "run")
    assert store.status == "interrupted" and store.info["final"] == {}
    assert store.info["error"] == error
    assert list_runs(tmp_path)[0].status == "interrupted"


def test_leaving_the_block_without_finish_finishes(tmp_path):
    model = mlp()
    with tracker(model, tmp_path / "run", every=10) as tr:
        train_steps(model, 3, tr)
    store = RunStore.open(tmp_path / "run")
    assert store.status == "finished" and store.mask_steps() == [0, 3] and store.info["final"]["steps"] == 3


def test_a_bad_run_dir_is_refused_in_one_line_and_nothing_of_the_users_is_touched(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    with pytest.raises(FullSpectrumError, match="is a file, not a folder") as error:
        Tracker(mlp(), file)
    assert "\n" not in str(error.value) and file.read_text() == "mine"
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "data.csv").write_text("1,2")
    with pytest.raises(FullSpectrumError, match="not empty and not a run") as error:
        Tracker(mlp(), folder)
    assert "\n" not in str(error.value) and sorted(p.name for p in folder.iterdir()) == ["data.csv"]
    with tracker(mlp(), tmp_path / "run"):
        pass
    with pytest.raises(FullSpectrumError, match="already holds a finished train run"):
        Tracker(mlp(), tmp_path / "run")


def test_job_state_and_resume_know_a_tracker_run(tmp_path):
    with tracker(mlp(), tmp_path / "run") as tr:
        tr.step(1)
        tr.log_eval("val", accuracy=0.5)  # committed at once (a step's rows wait up to a second)
        state = jobs.job_state(tmp_path / "run")
        assert (
            state.status == "running" and state.step == 1 and state.total_steps is None
        )  # config of its own
        with pytest.raises(KeyboardInterrupt):
            with tr:
                raise KeyboardInterrupt
    with pytest.raises(CheckpointError, match=r"written by fullspectrum.Tracker beside your own loop"):
        fullspectrum.resume(tmp_path / "run")
    with tracker(mlp(), tmp_path / "counted", total_steps=40) as tr:
        tr.step(10)
        tr.log_eval("val", accuracy=0.5)
        assert jobs.job_state(tmp_path / "counted").fraction == 0.25
