"""The trainer end to end on digits (SPEC §6, §8): learning, snapshots, stop and resume to identical
rows, static/dense/RigL runs, bad mask files and tampered checkpoints."""

from __future__ import annotations

import pytest
import torch

from fullspectrum.training import (
    TrainConfig,
    maskable_weights,
)

# -- the trainer, end to end on digits -----------------------------------------------------------------


def small_config(**changes) -> TrainConfig:
    base = dict(
        epochs=6,
        density=0.2,
        lr=0.1,
        delta_t=20,
        snapshot_every=40,
        device="cpu",
        model_options={"widths": [64]},
    )
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def itop_run(tmp_path_factory):
    from fullspectrum.runs import RunStore
    from fullspectrum.training import train

    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("itop") / "run"
    result = train(small_config(), run_dir)
    return result, RunStore.open(run_dir)


def test_itop_on_digits_learns_and_finishes(itop_run):
    result, store = itop_run
    assert result.status == "finished" and store.info["status"] == "finished"
    assert result.test_accuracy > 0.6  # chance is 0.1
    assert store.info["final"]["test_accuracy"] == result.test_accuracy
    evals = store.evals()
    test = evals[evals.split == "test"]
    assert list(test.step) == [result.total_steps] and test.accuracy.iloc[0] == result.test_accuracy
    config = store.info["config"]
    assert (config["epochs"], config["delta_t"], config["snapshot_every"], config["batch_size"]) == (
        6,
        20,
        40,
        64,
    )
    assert config["eval_every"] == result.total_steps // 6  # presets are written into the run
    assert store.info["total_steps"] == result.total_steps  # readers show progress as a fraction


def test_first_and_last_snapshots_keep_weights_that_give_the_recorded_rows(itop_run):
    import numpy as np

    from fullspectrum.spectrum import layer_spectrum

    result, store = itop_run
    steps = store.mask_steps()
    assert all(store.load_weights(step) == {} for step in steps[1:-1])  # masks only in between
    layers = store.layers()
    for step in (steps[0], steps[-1]):
        weights, masks = store.load_weights(step), store.load_masks(step)
        assert list(weights) == list(masks)
        for name, weight in weights.items():
            layer = name.removesuffix(".weight")
            row = layers.query("step == @step and layer == @layer").iloc[0]
            again = layer_spectrum(masks[name], weight, name=layer)
            np.testing.assert_equal((again.lambda_w, again.lambda_imsg), (row.lambda_w, row.lambda_imsg))


def test_step_zero_distance_is_exactly_zero_and_snapshots_are_where_promised(itop_run):
    from fullspectrum.runs import LAYER_COLUMNS

    result, store = itop_run
    layers = store.layers()
    assert tuple(layers.columns) == LAYER_COLUMNS
    assert set(layers.layer) == {"features.1", "classifier"}
    start = layers[layers.step == 0]
    assert len(start) == 2 and (start.moving_distance == 0.0).all()
    total = result.total_steps
    updates = {t for t in range(1, total) if t % 20 == 0}
    expected = {0, total} | updates | {t for t in range(1, total + 1) if t % 40 == 0}
    assert set(layers.step) == expected
    assert set(store.mask_steps()) == expected
    assert (layers[layers.step > 0].moving_distance > 0).any()


def test_recorded_masks_keep_density_and_events_balance(itop_run):
    result, store = itop_run
    events = store.events()
    assert len(events) == 2 * len({t for t in range(1, result.total_steps) if t % 20 == 0})
    assert (events.pruned == events.grown).all() and (events.pruned > 0).all()
    first = store.load_masks(0)
    fired = {name: mask.clone() for name, mask in first.items()}
    for step in store.mask_steps():
        masks = store.load_masks(step)
        for name, mask in masks.items():
            assert int(mask.sum()) == int(first[name].sum())
            fired[name] |= mask
    layers = store.layers()
    final = layers[layers.step == result.total_steps].set_index("layer")
    for name, mask in fired.items():  # exploration rate >= what the saved snapshots alone show
        assert (
            final.loc[name.removesuffix(".weight"), "exploration_rate"]
            >= int(mask.sum()) / mask.numel() - 1e-12
        )
    rates = store.evals().query("split == 'val'").exploration_rate
    assert rates.is_monotonic_increasing


def test_stop_event_leaves_a_resumable_run_with_identical_rows(tmp_path, itop_run):
    import threading

    from fullspectrum.runs import RunStore
    from fullspectrum.training import resume, train

    reference = itop_run[1]
    stop = threading.Event()
    result = train(
        small_config(), tmp_path / "run", progress=lambda d, t: d == 53 and stop.set(), stop_event=stop
    )
    assert (result.status, result.step) == ("interrupted", 53)
    assert RunStore.open(tmp_path / "run").info["status"] == "interrupted"
    resumed = resume(tmp_path / "run")
    assert resumed.status == "finished" and resumed.test_accuracy == itop_run[0].test_accuracy
    store = RunStore.open(tmp_path / "run")
    for table in ("layers", "evals", "events"):
        pd_equal(getattr(store, table)(), getattr(reference, table)())
    files = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    again = resume(tmp_path / "run")
    assert again.already_finished and again.test_accuracy == resumed.test_accuracy
    after = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    assert after == files  # a finished run (a cached one, say) is left byte for byte as it was


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs in the job (not an Exception, so nothing catches it)."""


def _assert_resumes_to_the_reference(run_dir, itop_run) -> None:
    from fullspectrum.runs import RunStore
    from fullspectrum.training import resume

    resumed = resume(run_dir)
    assert resumed.status == "finished" and resumed.test_accuracy == itop_run[0].test_accuracy
    store, reference = RunStore.open(run_dir), itop_run[1]
    for table in ("layers", "evals", "events"):  # step 0 included: once, as in the uninterrupted run
        pd_equal(getattr(store, table)(), getattr(reference, table)())
    assert store.mask_steps() == reference.mask_steps()


def test_a_run_stopped_before_its_first_iteration_resumes_to_identical_rows(tmp_path, itop_run):
    import threading

    from fullspectrum.training import train

    stop = threading.Event()
    result = train(small_config(), tmp_path / "run", progress=lambda d, t: stop.set(), stop_event=stop)
    assert (result.status, result.step) == ("interrupted", 0)
    _assert_resumes_to_the_reference(tmp_path / "run", itop_run)


def test_a_run_killed_before_its_second_checkpoint_resumes_to_identical_rows(tmp_path, itop_run):
    """Killed at step 19, while the step-0 checkpoint is the only one (SIGKILL, full disk...)."""
    from fullspectrum.runs import RunStore
    from fullspectrum.training import train

    def kill_at_19(done, total):
        if done == 19:  # the first mask update (a snapshot, with its checkpoint) is at step 20
            raise _Killed

    with pytest.raises(_Killed):
        train(small_config(), tmp_path / "run", progress=kill_at_19)
    killed = RunStore.open(tmp_path / "run")
    assert killed.mask_steps() == [0] and (tmp_path / "run" / "checkpoint.pt").is_file()
    _assert_resumes_to_the_reference(tmp_path / "run", itop_run)


def pd_equal(left, right) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True), check_exact=True)


def test_static_run_keeps_the_given_mask_and_weights(tmp_path):
    from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
    from fullspectrum.data import load_dataset
    from fullspectrum.models import build_model
    from fullspectrum.runs import RunStore
    from fullspectrum.training import train

    splits = load_dataset("digits")
    torch.manual_seed(7)
    model = build_model("mlp", splits.num_classes, splits.input_shape, widths=[64])
    weights = maskable_weights(model)
    generator = torch.Generator().manual_seed(3)
    masks = {name: torch.rand(w.shape, generator=generator) < 0.3 for name, w in weights.items()}
    save_mask_checkpoint(tmp_path / "mask.pt", masks, model.state_dict(), {"generator": "test"})
    config = small_config(method="static", mask=str(tmp_path / "mask.pt"), epochs=2)
    train(config, tmp_path / "run")
    store = RunStore.open(tmp_path / "run")
    assert store.events().empty
    kept = sum(int(m.sum()) for m in masks.values())
    assert store.info["config"]["density"] == pytest.approx(kept / sum(m.numel() for m in masks.values()))
    for step in store.mask_steps():
        saved = store.load_masks(step)
        assert all(torch.equal(saved[name], masks[name]) for name in masks)
    start = store.layers().query("step == 0").set_index("layer")
    for name, mask in masks.items():  # the step-0 weighted spectrum is that of the file's weights
        from fullspectrum.spectrum import layer_spectrum

        expected = layer_spectrum(mask, weights[name].detach() * mask)
        assert start.loc[name.removesuffix(".weight"), "omega1"] == pytest.approx(expected.omega1, rel=1e-12)


def test_dense_and_rigl_runs(tmp_path):
    from fullspectrum.runs import RunStore
    from fullspectrum.training import train

    dense = train(small_config(method="dense", epochs=1), tmp_path / "dense")
    store = RunStore.open(tmp_path / "dense")
    assert dense.exploration_rate == 1.0 and store.events().empty
    assert (store.layers().density == 1.0).all()
    train(small_config(method="rigl", epochs=2, delta_t=10), tmp_path / "rigl")
    events = RunStore.open(tmp_path / "rigl").events()
    assert len(events) and (events.pruned == events.grown).all()


def test_bad_mask_file_is_one_line_error(tmp_path):
    from fullspectrum.errors import CheckpointError
    from fullspectrum.training import train

    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        train(small_config(method="static", mask=str(tmp_path / "bad.pt")), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing is created for a run that cannot start


def test_spectra_in_a_worker_process_give_the_same_rows(tmp_path, itop_run):
    from fullspectrum.runs import RunStore
    from fullspectrum.training import train

    result = train(small_config(spectra_worker=True), tmp_path / "run")
    assert result.test_accuracy == itop_run[0].test_accuracy
    store = RunStore.open(tmp_path / "run")
    for table in ("layers", "evals", "events"):
        pd_equal(getattr(store, table)(), getattr(itop_run[1], table)())
    assert store.mask_steps() == itop_run[1].mask_steps()


def test_a_tampered_training_checkpoint_is_refused_before_it_allocates(tmp_path):
    from fullspectrum.errors import CheckpointError
    from fullspectrum.training.checkpoint import FORMAT, VERSION, load_checkpoint

    path = tmp_path / "checkpoint.pt"
    # a stride-0 view: 4 bytes of storage claiming 10^10 elements (40 GB once materialised)
    torch.save(
        {"format": FORMAT, "version": VERSION, "weights": torch.zeros(1).expand(100_000, 100_000)}, path
    )
    with pytest.raises(CheckpointError, match="checkpoint.pt") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)
