"""Run store: mask snapshots, truncation, broken runs, closing and file modes."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from fullspectrum.errors import FullSpectrumError, MaskError
from fullspectrum.runs import (
    RunError,
    RunStore,
)
from tests.run_rows import folder_files, layer_row, new_store

# -- masks ----------------------------------------------------------------------------------------------------


def test_masks_round_trip_bit_packed(tmp_path):
    store = new_store(tmp_path / "run")
    generator = torch.Generator().manual_seed(0)
    masks = {
        "conv1.weight": torch.rand(16, 3, 3, 3, generator=generator) < 0.1,  # 432 entries
        "layer1.0.conv1.weight": torch.rand(64, 64, 3, 3, generator=generator) < 0.5,
        "fc.weight": torch.rand(10, 13, generator=generator) < 0.3,  # 130: not a multiple of 8
        "tiny.weight": torch.ones(1, 1, dtype=torch.bool),
        "empty.weight": torch.zeros(0, 4, dtype=torch.bool),
    }
    store.save_masks(12, masks)
    store.save_masks(3, {"fc.weight": masks["fc.weight"].float()})  # 0/1 floats are accepted
    assert store.mask_steps() == [3, 12]
    loaded = store.load_masks(12)
    assert list(loaded) == list(masks)
    for name, mask in masks.items():
        assert loaded[name].dtype == torch.bool and loaded[name].shape == mask.shape
        assert torch.equal(loaded[name], mask), name
    assert torch.equal(store.load_masks(3)["fc.weight"], masks["fc.weight"])
    size = (tmp_path / "run" / "masks" / "step_00000012.npz").stat().st_size
    assert size < sum(mask.numel() for mask in masks.values()) / 4, "bit-packed, not one byte per entry"
    with pytest.raises(RunError, match=r"no mask snapshot at step 5 \(saved steps: 3, 12\)"):
        store.load_masks(5)
    with pytest.raises(MaskError, match="'bad.weight': values other than 0/1"):
        store.save_masks(4, {"bad.weight": torch.tensor([[0.0, 2.0]])})
    assert store.mask_steps() == [3, 12]
    store.close()


def test_snapshot_weights_round_trip_as_float32_on_the_mask(tmp_path):
    store = new_store(tmp_path / "run")
    generator = torch.Generator().manual_seed(1)
    masks = {
        "conv1.weight": torch.rand(8, 3, 3, 3, generator=generator) < 0.3,
        "fc.weight": torch.rand(10, 13, generator=generator) < 0.3,
    }
    weights = {
        name: torch.randn(mask.shape, generator=generator, dtype=torch.float64)
        for name, mask in masks.items()
    }
    store.save_masks(0, masks, weights)
    store.save_masks(5, masks)
    loaded = store.load_weights(0)
    assert list(loaded) == list(masks)
    for name, mask in masks.items():
        assert loaded[name].dtype == torch.float32
        assert torch.equal(loaded[name], (weights[name] * mask).float()), name  # zero off the mask
    assert store.load_weights(5) == {} and store.load_weights(7) == {}  # masks only / no snapshot
    with pytest.raises(MaskError, match="'fc.weight': shape"):
        store.save_masks(6, masks, {"fc.weight": torch.zeros(3, 3)})
    # A snapshot whose kept values do not match its mask is reported, not misread.
    path = tmp_path / "run" / "masks" / "step_00000000.npz"
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["values_1"] = arrays["values_1"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(RunError, match="step_00000000.npz: unreadable weights"):
        store.load_weights(0)
    store.close()


def test_truncate_after_removes_later_rows_and_masks(tmp_path):
    store = new_store(tmp_path / "run")
    for step in range(6):
        store.add_snapshot(
            step,
            [layer_row("a", step), layer_row("b", step)],
            [{"split": "val", "accuracy": step / 10}],
            [{"layer": "a", "pruned": 1, "grown": 1}],
        )
        store.save_masks(step, {"a.weight": torch.eye(3, dtype=torch.bool)})
    store.add_population([{"candidate": 0, "layer": "a", "won": True}])
    (tmp_path / "run" / "masks" / ".step_00000009.npz.x.tmp").write_bytes(b"half")  # a crashed write
    store.truncate_after(2)
    assert store.layers()["step"].tolist() == [0, 0, 1, 1, 2, 2]
    assert store.evals()["step"].tolist() == [0, 1, 2] and store.events()["step"].tolist() == [0, 1, 2]
    assert store.mask_steps() == [0, 1, 2] and len(store.population()) == 1
    assert sorted(p.name for p in (tmp_path / "run" / "masks").iterdir()) == [
        f"step_{step:08d}.npz" for step in range(3)
    ]
    store.add_snapshot(3, [layer_row("a", 3), layer_row("b", 3)])  # resumed: no duplicates
    assert store.layers().groupby("step").size().tolist() == [2, 2, 2, 2]
    store.close()


def test_artifact_path_stays_inside_the_run(tmp_path):
    store = new_store(tmp_path / "run")
    assert store.artifact_path("pags_mask.pt") == tmp_path / "run" / "pags_mask.pt"
    for bad in ("../x.pt", "/etc/passwd", "", "a/b.pt"):
        with pytest.raises(FullSpectrumError, match="plain file name"):
            store.artifact_path(bad)
    store.close()


# -- opening broken runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-folder", "no such folder"),
        ("no-run-json", "not a run directory"),
        ("garbage-run-json", "run.json: corrupt"),
        ("list-run-json", "expected a JSON object"),
        ("no-db", "metrics.sqlite missing"),
        ("garbage-db", "metrics.sqlite: unreadable"),
        ("foreign-db", "not a run database"),
    ],
)
def test_open_reports_a_broken_run_in_one_line(tmp_path, damage, message):
    import sqlite3

    run = tmp_path / "run"
    new_store(run).finish()
    if damage == "no-folder":
        run = tmp_path / "missing"
    elif damage == "no-run-json":
        (run / "run.json").unlink()
    elif damage == "garbage-run-json":
        (run / "run.json").write_text('{"status": "runn')
    elif damage == "list-run-json":
        (run / "run.json").write_text("[1, 2]")
    elif damage == "no-db":
        (run / "metrics.sqlite").unlink()
    elif damage == "garbage-db":
        (run / "metrics.sqlite").write_bytes(b"this is not sqlite" * 100)
    else:
        (run / "metrics.sqlite").unlink()
        sqlite3.connect(run / "metrics.sqlite").execute("CREATE TABLE other (x)").connection.close()
    for readonly in (True, False):
        with pytest.raises(RunError, match=message) as error:
            RunStore.open(run, readonly=readonly)
        assert "\n" not in str(error.value) and str(run) in str(error.value)


def test_close_leaves_wal_mode_unless_a_reader_holds_the_database(tmp_path):
    import sqlite3

    run = tmp_path / "run"
    store = new_store(run)
    store.add_evals(0, [{"split": "val", "accuracy": 0.5}])
    store.close()
    assert not list(run.glob("metrics.sqlite-*")) and not (run / ".writer.lock").exists()
    before = folder_files(run)
    assert RunStore.open(run).evals()["accuracy"].tolist() == [0.5]
    assert RunStore.open(run).status == "running"  # close() is not finish()
    assert folder_files(run) == before, "reading a closed run creates no -wal/-shm"

    store = RunStore.open(run, readonly=False)
    assert (run / "metrics.sqlite").read_bytes()[18] == 2
    store.add_evals(1, [{"split": "val", "accuracy": 0.6}])
    reader = sqlite3.connect(f"file:{run / 'metrics.sqlite'}?mode=ro", uri=True, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM evals").fetchone() == (2,)  # holds a read lock
    store.close()  # cannot leave WAL now, but closes without error
    reader.close()
    assert RunStore.open(run).evals()["step"].tolist() == [0, 1]


def test_module_doctests_run():
    import doctest

    from fullspectrum.runs import store as module

    assert doctest.testmod(module).failed == 0


def test_written_files_are_readable_like_ordinary_files(tmp_path):
    from fullspectrum.checkpoints.atomic import FILE_MODE

    store = new_store(tmp_path / "run")
    store.save_masks(0, {"a.weight": torch.ones(2, 3, dtype=torch.bool)})
    store.close()
    umask = os.umask(0o022)
    os.umask(umask)
    assert FILE_MODE == 0o666 & ~umask
    for file in (tmp_path / "run" / "run.json", tmp_path / "run" / "masks" / "step_00000000.npz"):
        assert stat.S_IMODE(file.stat().st_mode) == FILE_MODE, file
