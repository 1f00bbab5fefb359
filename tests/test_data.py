"""Offline datasets: loading, deterministic splits, the MNIST-1D cache, CIFAR's safe reader, augmentation."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from fullspectrum.data import (
    DATASET_NAMES,
    ChannelNormalize,
    RandomCropFlip,
    dataset_options,
    load_dataset,
    make_loader,
    stratified_split,
)
from fullspectrum.data.cifar import LAYOUTS
from fullspectrum.data.loaders import AugmentingLoader
from fullspectrum.data.mnist_1d import generate_mnist1d
from fullspectrum.errors import FullSpectrumError, UnknownNameError

OFFLINE = {
    "digits": ((1, 8, 8), 10),
    "mnist1d": ((1, 40), 10),
    "synthetic": ((3, 32, 32), 10),
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """MNIST-1D is cached in a test folder, never in the user's home."""
    monkeypatch.setenv("FULLSPECTRUM_CACHE", str(tmp_path_factory.getbasetemp() / "fullspectrum-cache"))


def _pool_indices(splits):
    return np.sort(np.concatenate([splits.train.indices, splits.val.indices]))


# --- every dataset loads offline ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_dataset_loads(name):
    shape, classes = OFFLINE[name]
    splits = load_dataset(name)
    assert splits.input_shape == shape and splits.num_classes == classes
    for part in (splits.train, splits.val, splits.test):
        x, y = part[0]
        assert tuple(x.shape) == shape and x.dtype == torch.float32
        assert 0 <= int(y) < classes
        xs, ys = part.tensors()
        assert torch.isfinite(xs).all() and ys.min() >= 0 and ys.max() < classes
    # validation is carved from the training part: disjoint, together the whole pool
    assert not set(splits.train.indices) & set(splits.val.indices)
    assert np.array_equal(_pool_indices(splits), np.arange(len(splits.train) + len(splits.val)))
    assert len(splits.val) == pytest.approx(0.1 * (len(splits.train) + len(splits.val)), abs=classes)
    # every class appears in training
    assert set(splits.train.targets.tolist()) == set(range(classes))


@pytest.mark.parametrize(("name", "flat"), [("digits", 64), ("mnist1d", 40), ("synthetic", 3072)])
def test_flatten_gives_vectors(name, flat):
    splits = load_dataset(name, flatten=True)
    assert splits.input_shape == (flat,)
    assert tuple(splits.train[0][0].shape) == (flat,)
    unflat = load_dataset(name)
    assert torch.equal(splits.test[3][0], unflat.test[3][0].reshape(-1))


def test_digits_sizes_and_standardisation():
    splits = load_dataset("digits")
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    pool = torch.cat([splits.train.tensors()[0], splits.val.tensors()[0]])
    assert float(pool.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(pool.std()) == pytest.approx(1.0, abs=1e-3)


def test_mnist1d_matches_package_defaults():
    splits = load_dataset("mnist1d")
    assert len(splits.train) + len(splits.val) == 4000 and len(splits.test) == 1000
    raw = generate_mnist1d()
    assert np.array_equal(splits.test.tensors()[0][:, 0].numpy(), raw["x_test"])
    assert np.array_equal(splits.test.targets.numpy(), raw["y_test"])


# --- splits: deterministic, from split_seed only ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_splits_depend_on_split_seed_only(name):
    def load_with_global_seed(run_seed, split_seed):
        torch.manual_seed(run_seed)
        np.random.seed(run_seed)
        random.seed(run_seed)
        return load_dataset(name, split_seed=split_seed)

    a = load_with_global_seed(1, split_seed=5)
    b = load_with_global_seed(2, split_seed=5)
    c = load_with_global_seed(1, split_seed=6)
    assert np.array_equal(a.val.indices, b.val.indices)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.targets, b.val.targets)
    assert not np.array_equal(a.val.indices, c.val.indices)
    # the test set never moves with a seed
    assert torch.equal(a.test.x, c.test.x) and torch.equal(a.test.targets, c.test.targets)


def test_stratified_split_holds_the_fraction_per_class():
    labels = np.repeat(np.arange(4), [10, 20, 30, 41])
    kept, held = stratified_split(labels, 0.1, seed=0)
    assert np.bincount(labels[held]).tolist() == [1, 2, 3, 4]
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(labels)))
    assert np.array_equal(held, stratified_split(labels, 0.1, seed=0)[1])
    assert len(stratified_split(labels, 0.0, seed=0)[1]) == 0


def test_val_fraction_option_and_validation():
    splits = load_dataset("synthetic", shape=(4,), n_train=100, num_classes=2, val_fraction=0.3)
    assert len(splits.val) == 30 and len(splits.train) == 70
    assert len(load_dataset("digits", val_fraction=0).val) == 0
    with pytest.raises(FullSpectrumError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.5)


# --- MNIST-1D: global RNG states and the cache --------------------------------------------------------------


def test_mnist1d_restores_global_rng_states():
    random.seed(123)
    np.random.seed(321)
    before_py, before_np = random.getstate(), np.random.get_state()
    generate_mnist1d(num_samples=100)
    after_np = np.random.get_state()
    assert random.getstate() == before_py
    assert after_np[0] == before_np[0] and np.array_equal(after_np[1], before_np[1])
    assert after_np[2:] == before_np[2:]
    # and the next draw is the one the caller would have had
    expected = np.random.RandomState(321).rand()
    assert np.random.rand() == expected


def test_mnist1d_cache_is_written_then_reused(tmp_path, monkeypatch):
    import fullspectrum.data.mnist_1d as module

    monkeypatch.setenv("FULLSPECTRUM_CACHE", str(tmp_path))
    first = load_dataset("mnist1d", num_samples=200)
    files = list(tmp_path.glob("mnist1d-*_n200_seed42.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("regenerated although the cache was present")

    monkeypatch.setattr(module, "generate_mnist1d", fail)
    second = load_dataset("mnist1d", num_samples=200)
    assert torch.equal(first.train.x, second.train.x)
    assert torch.equal(first.test.targets, second.test.targets)


def test_mnist1d_corrupt_cache_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("FULLSPECTRUM_CACHE", str(tmp_path))
    reference = load_dataset("mnist1d", num_samples=200)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not an npz file")
    again = load_dataset("mnist1d", num_samples=200)
    assert torch.equal(reference.train.x, again.train.x)
    assert path.stat().st_size > 1000  # rewritten whole


# --- synthetic ----------------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_class_conditional():
    a = load_dataset("synthetic", shape=(2, 4, 4), num_classes=3, n_train=300, n_test=90, data_seed=7)
    b = load_dataset("synthetic", shape=(2, 4, 4), num_classes=3, n_train=300, n_test=90, data_seed=7)
    c = load_dataset("synthetic", shape=(2, 4, 4), num_classes=3, n_train=300, n_test=90, data_seed=8)
    assert a.input_shape == (2, 4, 4) and a.num_classes == 3 and len(a.test) == 90
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.targets, b.test.targets)
    assert not torch.equal(a.train.x, c.train.x)
    assert torch.bincount(a.test.targets).tolist() == [30, 30, 30]
    # the classes differ in mean: a nearest-class-mean rule fitted on train beats chance by far on test
    x, y = a.train.tensors()
    means = torch.stack([x[y == k].mean(0) for k in range(3)]).flatten(1)
    xt, yt = a.test.tensors()
    predicted = torch.cdist(xt.flatten(1), means).argmin(1)
    assert (predicted == yt).float().mean() > 0.8


# --- CIFAR: tiny files in the python-pickle layout ----------------------------------------------------------


def _write_cifar(root, name, *, protocol, per_file=20, bytes_keys=True):
    """Tiny CIFAR files: image i of the whole set is filled with value i (mod 256), label i mod classes."""
    layout = LAYOUTS[name]
    folder = root / layout.folder
    folder.mkdir(parents=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    counter = 0
    for filename in layout.files:
        values = (np.arange(per_file) + counter) % 256
        data = np.repeat(values[:, None], 3072, axis=1).astype(np.uint8)  # (N, 3072)
        labels = [int(v) % layout.num_classes for v in values]
        batch = {key("data"): data, key(layout.label_key): labels, key("batch_label"): b"tiny"}
        if name == "cifar100":
            batch[key("coarse_labels")] = [v % 20 for v in labels]
        (folder / filename).write_bytes(pickle.dumps(batch, protocol=protocol))
        counter += per_file
    return folder


@pytest.mark.parametrize(("name", "protocol"), [("cifar10", 2), ("cifar100", 4), ("cifar10", 5)])
@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar_reads_the_pickle_layout(tmp_path, name, protocol, point_at):
    per_file = 20 if name == "cifar10" else 500  # CIFAR-100 needs 5 per class to carve validation
    folder = _write_cifar(tmp_path, name, protocol=protocol, per_file=per_file)
    layout = LAYOUTS[name]
    splits = load_dataset(name, data_dir=tmp_path if point_at == "parent" else folder, val_fraction=0.2)
    n_train = per_file * len(layout.train_files)
    assert splits.num_classes == layout.num_classes and splits.input_shape == (3, 32, 32)
    assert len(splits.train) + len(splits.val) == n_train and len(splits.test) == per_file
    assert len(splits.val) == n_train // 5
    assert splits.train.x.dtype == torch.uint8  # normalised on access, not stored as float
    mean, std = torch.tensor(layout.mean), torch.tensor(layout.std)
    for part, offset in ((splits.train, 0), (splits.val, 0), (splits.test, n_train)):
        for k in (0, len(part) - 1):
            x, y = part[k]
            value = (int(part.indices[k]) + offset) % 256  # image i was filled with i
            expected = (value / 255 - mean) / std
            assert torch.allclose(x, expected.view(3, 1, 1).expand(3, 32, 32), atol=1e-5)
            assert int(y) == value % layout.num_classes


def test_cifar_str_keys_are_accepted(tmp_path):
    _write_cifar(tmp_path, "cifar10", protocol=4, bytes_keys=False)
    assert len(load_dataset("cifar10", data_dir=tmp_path).test) == 20


class _Payload:
    """Not a container: its presence in a CIFAR file must be refused."""


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))  # would create a file if the unpickler ran it


@pytest.mark.parametrize("payload", ["os.system", "open", "class"])
def test_cifar_refuses_forbidden_globals(tmp_path, payload):
    folder = _write_cifar(tmp_path, "cifar10", protocol=2)
    marker = tmp_path / "executed"
    evil = {"os.system": os.system, "open": _Exploit(marker), "class": _Payload()}[payload]
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": evil, b"labels": []}, protocol=2))
    with pytest.raises(FullSpectrumError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(info.value)
    assert "data_batch_3" in message and "refusing" in message and "\n" not in message
    expected_global = {"os.system": "system", "open": ".open'", "class": "_Payload"}[payload]
    assert expected_global in message
    assert not marker.exists()


def test_cifar_missing_folder_names_the_expected_files(tmp_path):
    with pytest.raises(FullSpectrumError) as info:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert "\n" not in message
    assert "cifar-10-batches-py" in message and "data_batch_1" in message and "test_batch" in message
    with pytest.raises(FullSpectrumError, match="needs --data-dir.*cifar-100-python.*train.*test"):
        load_dataset("cifar100")
    folder = _write_cifar(tmp_path, "cifar10", protocol=4)
    (folder / "data_batch_4").unlink()
    with pytest.raises(FullSpectrumError, match=r"missing in .*: data_batch_4\)$"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x80\x04truncated", "not a readable CIFAR pickle"),
        (pickle.dumps([1, 2, 3]), "expected a dict"),
        (pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}), r"shape \(N, 3072\)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 images but 1 labels"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "labels must lie"),
    ],
)
def test_cifar_malformed_files_fail_with_the_file_name(tmp_path, content, match):
    folder = _write_cifar(tmp_path, "cifar10", protocol=4)
    (folder / "test_batch").write_bytes(content)
    with pytest.raises(FullSpectrumError, match=match) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "test_batch" in str(info.value)


def test_cifar_flatten_and_no_augment(tmp_path):
    _write_cifar(tmp_path, "cifar100", protocol=4)
    flat = load_dataset("cifar100", data_dir=tmp_path, flatten=True)
    full = load_dataset("cifar100", data_dir=tmp_path)
    assert flat.input_shape == (3072,)
    assert torch.allclose(flat.test[5][0], full.test[5][0].reshape(-1))
    # augmentation also works on flat batches
    batch = flat.train.tensors(4)[0]
    assert flat.augment(batch, torch.Generator().manual_seed(0)).shape == batch.shape
    plain = load_dataset("cifar100", data_dir=tmp_path, augment=False)
    assert plain.augment is None and plain.train_transform == "none"
    assert "random crop 32x32 padding 4" in full.train_transform


# --- augmentation and loaders -------------------------------------------------------------------------------


def _crop_oracle(image, padded_fill, out, pad=4):
    """Is ``out`` some ``pad``-shifted crop of ``image`` (padded with ``padded_fill``), maybe flipped?"""
    c, h, w = image.shape
    padded = padded_fill.view(c, 1, 1).repeat(1, h + 2 * pad, w + 2 * pad)
    padded[:, pad : pad + h, pad : pad + w] = image
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(out, crop) or torch.equal(out, crop.flip(-1)):
                return True
    return False


def test_random_crop_flip_is_a_crop_of_the_padded_image():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(6, 3, 8, 8)
    fill = (-1.0, -2.0, -3.0)
    augment = RandomCropFlip((3, 8, 8), padding=2, fill=fill)
    out = augment(images, generator)
    assert out.shape == images.shape
    for image, result in zip(images, out):
        assert _crop_oracle(image, torch.tensor(fill), result, pad=2)
    # over many draws every offset and both flips occur
    big = torch.arange(64.0).view(1, 1, 8, 8).repeat(400, 1, 1, 1)
    many = RandomCropFlip((1, 8, 8), padding=2, fill=(0.0,))(big, torch.Generator().manual_seed(1))
    assert len({tuple(m.flatten().tolist()) for m in many}) == 50  # 5x5 offsets x 2 flips


def test_augmentation_is_reproducible_for_a_seed():
    augment = RandomCropFlip((3, 32, 32))
    images = torch.randn(16, 3, 32, 32)
    a = augment(images, torch.Generator().manual_seed(5))
    b = augment(images, torch.Generator().manual_seed(5))
    c = augment(images, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_channel_normalize_and_black_fill():
    norm = ChannelNormalize((0.5, 0.25), (0.5, 0.25), (2, 2, 2), scale=1 / 255)
    x = torch.full((2, 2, 2), 255, dtype=torch.uint8)
    assert torch.allclose(norm(x)[0], torch.ones(2, 2)) and torch.allclose(
        norm(x)[1], torch.full((2, 2), 3.0)
    )
    zero = norm(torch.zeros(2, 2, 2, dtype=torch.uint8))
    assert zero[:, 0, 0].tolist() == list(norm.black())


def test_loaders_are_reproducible_and_only_train_is_augmented(tmp_path):
    _write_cifar(tmp_path, "cifar10", protocol=4)
    splits = load_dataset("cifar10", data_dir=tmp_path)

    def batches(seed, global_seed):
        torch.manual_seed(global_seed)
        loader = splits.loader("train", 16, seed=seed)
        return [(x.clone(), y.clone()) for x, y in loader]

    first, again, other = batches(3, 0), batches(3, 99), batches(4, 0)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other))
    train_loader = splits.loader("train", 16, seed=3)
    assert isinstance(train_loader, AugmentingLoader) and len(train_loader) == len(first)
    # augmented batches differ from the stored examples, evaluation batches do not
    x0, _ = first[0]
    assert x0.shape == (16, 3, 32, 32)
    val_x, val_y = next(iter(splits.loader("val", 1000, seed=0)))
    assert not isinstance(splits.loader("val", 8, seed=0), AugmentingLoader)
    assert torch.equal(val_x, splits.val.tensors()[0]) and torch.equal(val_y, splits.val.targets)


def test_make_loader_shuffles_deterministically():
    splits = load_dataset("digits")
    order = [y for _, ys in make_loader(splits.train, 64, shuffle=True, seed=1) for y in ys.tolist()]
    same = [y for _, ys in make_loader(splits.train, 64, shuffle=True, seed=1) for y in ys.tolist()]
    other = [y for _, ys in make_loader(splits.train, 64, shuffle=True, seed=2) for y in ys.tolist()]
    assert order == same and order != other
    assert sorted(order) == sorted(splits.train.targets.tolist())
    with pytest.raises(FullSpectrumError, match="batch_size"):
        make_loader(splits.train, 0, shuffle=False, seed=0)


# --- registry -----------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in DATASET_NAMES)


def test_unknown_option_lists_the_options():
    with pytest.raises(FullSpectrumError, match="no option 'augment'.*val_fraction"):
        load_dataset("digits", augment=True)
    assert "augment" in dataset_options("cifar10") and "shape" in dataset_options("synthetic")
    with pytest.raises(FullSpectrumError, match="split_seed"):
        load_dataset("digits", split_seed=0.5)
