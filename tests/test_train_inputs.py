"""``fullspectrum train`` refuses bad input before its run folder exists, and reports divergence as such.

SPEC §8: bad input is exit 2 with one line on stderr naming the input and the problem, and no run
folder is left behind (a folder left ``failed`` would block the same ``--out``). Every input is
checked first: the model, the mask file against the model (its weights finite, its masks covering
exactly the model's maskable weights with their shapes, at least one weight kept), the learning
rate (finite, positive). A learning rate that is valid but too high for the network makes the run
*diverge*: that is reported with its step in one line (exit 2: the user fixes it by changing an
input), and the run is left ``failed`` with the reason in ``run.json``.
"""

from __future__ import annotations

import json

import pytest
import torch

from fullspectrum.cli import main
from fullspectrum.data import load_dataset
from fullspectrum.models import build_model
from fullspectrum.training import TrainConfig, TrainingDiverged, maskable_weights, train

ARGS = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--device", "cpu"]


def one_line(err: str) -> str:
    """The only line of ``err`` (a progress bar's carriage returns aside); fails when there are several."""
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    return err.rsplit("\r", 1)[-1].rstrip("\n")


def mask_file(path, change=None):
    """A mask checkpoint for the default ``mlp`` on digits, changed by ``change(masks, state_dict)``."""
    splits = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("mlp", splits.num_classes, splits.input_shape)
    generator = torch.Generator().manual_seed(1)
    masks = {
        name: torch.rand(w.shape, generator=generator) < 0.2 for name, w in maskable_weights(model).items()
    }
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    if change is not None:
        change(masks, state)
    torch.save({"masks": masks, "state_dict": state, "meta": {"generator": "test"}}, path)
    return path


def _first(masks) -> str:
    return next(iter(masks))


def _nan_weight(masks, state):
    state[_first(masks)].view(-1)[0] = float("nan")


def _inf_bias(masks, state):
    bias = _first(masks).replace("weight", "bias")
    state[bias].view(-1)[0] = float("inf")


def _partial(masks, state):
    masks.pop(_first(masks))


def _unknown_name(masks, state):
    masks["features.9.weight"] = torch.ones(3, 3, dtype=torch.bool)


def _wrong_shape(masks, state):
    name = _first(masks)
    masks[name] = torch.ones(masks[name].shape[0], masks[name].shape[1] + 1, dtype=torch.bool)
    state[name] = torch.randn(masks[name].shape)


def _masks_only_wrong_shape(masks, state):
    state.clear()
    name = _first(masks)
    masks[name] = masks[name][:, :-1]


def _all_zero(masks, state):
    for name in masks:
        masks[name] = torch.zeros_like(masks[name])


def _state_of_another_model(masks, state):
    state["features.1.weight"] = torch.randn(3, 3)
    masks["features.1.weight"] = torch.ones(3, 3, dtype=torch.bool)


BAD_MASKS = {
    "NaN weight": (_nan_weight, "NaN"),
    "Inf bias": (_inf_bias, "Inf"),
    "partial masks": (_partial, "missing ['features.1.weight']"),
    "unknown name": (_unknown_name, "features.9.weight"),
    "wrong shape": (_wrong_shape, "does not fit model 'mlp'"),
    "weights of another model": (_state_of_another_model, "does not fit model 'mlp'"),
    "masks only, wrong shape": (_masks_only_wrong_shape, "mask of features.1.weight has shape"),
    "all-zero mask": (_all_zero, "keeps no weights"),
}


@pytest.mark.parametrize("case", list(BAD_MASKS))
def test_a_mask_file_that_does_not_fit_is_refused_before_the_run_folder_exists(case, tmp_path, capsys):
    change, fragment = BAD_MASKS[case]
    path = mask_file(tmp_path / "mask.pt", change)
    out = tmp_path / "run"
    assert main([*ARGS, "--method", "static", "--mask", str(path), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("fullspectrum: error: ") and str(path) in line and fragment in line, line
    assert "density must be" not in line  # an empty mask is said to be one, not a bad density
    assert not out.exists()
    assert main([*ARGS, "--method", "static", "--mask", str(mask_file(path)), "--out", str(out)]) == 0
    capsys.readouterr()  # the same --out works once the input is fixed: nothing was left blocking it


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--model", "bogus"], "unknown model 'bogus'"),
        (["--data", "bogus"], "bogus"),
        (["--lr", "inf"], "argument --lr: must be a finite number > 0, got 'inf'"),
        (["--lr", "nan"], "argument --lr: must be a finite number > 0, got 'nan'"),
        (["--lr", "0"], "argument --lr"),
        (["--lr", "-0.1"], "argument --lr"),
        (["--seed", "-1"], "argument --seed"),
    ],
)
def test_bad_flags_are_refused_before_the_run_folder_exists(flags, fragment, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*ARGS, *flags, "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(("fullspectrum: error: ", "fullspectrum train: error: ")) and fragment in line, (
        line
    )
    assert not out.exists()


def test_lr_must_be_finite_and_positive_in_the_library_too():
    for lr in (float("inf"), float("-inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError, match="finite positive"):
            TrainConfig(lr=lr)


def test_a_diverging_run_is_reported_as_divergence_with_its_step(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*ARGS, "--lr", "1e6", "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"fullspectrum: error: {out}: training diverged at step "), line
    assert "--lr 1e+06" in line and "weight holds NaN" not in line  # the lr is named, not the weights
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "training diverged at step" in info["error"]
    step = int(line.split("at step ")[1].split(":")[0])
    assert 0 < step <= info["total_steps"]


def test_divergence_in_the_library_stops_before_any_non_finite_row(tmp_path):
    import re

    import numpy as np

    from fullspectrum.runs import RunStore

    config = TrainConfig(epochs=2, lr=1e6, device="cpu", model_options={"widths": [32]}, spectra_worker=False)
    with pytest.raises(TrainingDiverged, match="training diverged at step") as caught:
        train(config, tmp_path / "run")
    diverged = int(re.search(r"at step (\d+)", str(caught.value)).group(1))
    store = RunStore.open(tmp_path / "run")
    assert store.info["status"] == "failed" and str(caught.value) == store.info["error"]
    assert store.mask_steps()[0] == 0 and max(store.mask_steps()) < diverged
    assert store.layers().step.max() < diverged and np.isfinite(store.evals()["loss"]).all()
