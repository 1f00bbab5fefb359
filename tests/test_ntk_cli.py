"""``fullspectrum ntk`` (SPEC §7b, §8): its formats hold ``ntk_spectrum`` of ``empirical_ntk``, exit 2 on bad input."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch

from fullspectrum.checkpoints.mask_file import load_mask_checkpoint, save_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.data import load_dataset
from fullspectrum.models import build_model
from fullspectrum.ntk import empirical_ntk, ntk_spectrum
from fullspectrum.pruning import generate_masks

N = 8  # small enough for a second per call
SUMMARY = ("N", "lambda_max", "condition", "effective_rank", "top5_energy", "decay_alpha")


def _digits_mlp(seed: int = 0):
    splits = load_dataset("digits")
    torch.manual_seed(seed)
    return splits, build_model("mlp", splits.num_classes, splits.input_shape)


def write_mask_file(path, *, with_weights: bool = True) -> None:
    """A random mask at density 0.2 of the digits MLP, with (or without) the weights it was made for."""
    _, model = _digits_mlp(seed=3)
    result = generate_masks(model, "random", 0.2, seed=3)
    state = model.state_dict() if with_weights else {}
    save_mask_checkpoint(path, result.masks, state, {"generator": "random", "density": 0.2})


@pytest.fixture(scope="module")
def mask_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ntk") / "mask.pt"
    write_mask_file(path)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["ntk", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ntk_args(path, *extra) -> list[str]:
    return [str(path), "--model", "mlp", "--data", "digits", "--inputs", str(N), *map(str, extra)]


def expected_spectrum(path):
    """The spectrum computed with the library directly: the file's weights and masks, the first N test digits."""
    splits, model = _digits_mlp()
    mask_file = load_mask_checkpoint(path)
    model.load_state_dict(mask_file.state_dict)
    inputs, _ = splits.test.tensors(N)
    return ntk_spectrum(empirical_ntk(model, inputs, mask_file.masks))


def test_table_prints_every_summary_field_and_the_split(mask_path, capsys):
    code, out, err = run_cli(capsys, *ntk_args(mask_path))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "test" in lines[0] and "mlp" in lines[0] and "digits" in lines[0]
    fields = dict(line.split() for line in lines[1:])
    assert tuple(fields) == SUMMARY
    assert int(fields["N"]) == N
    expected = expected_spectrum(mask_path)
    assert float(fields["lambda_max"]) == pytest.approx(expected.lambda_max, rel=1e-5)


def test_json_holds_the_library_spectrum(mask_path, capsys):
    code, out, _ = run_cli(capsys, *ntk_args(mask_path, "--format", "json"))
    assert code == 0
    record = json.loads(out)
    expected = expected_spectrum(mask_path)
    np.testing.assert_allclose(record["eigenvalues"], expected.eigenvalues, rtol=0, atol=1e-10)
    assert record["N"] == N and record["split"] == "test" and record["model"] == "mlp"
    for name in SUMMARY[1:]:
        assert record[name] == pytest.approx(getattr(expected, name), rel=1e-10), name
    assert record["density"] == pytest.approx(0.2, abs=1e-4)


def test_csv_is_one_row_per_eigenvalue_with_the_summary(mask_path, capsys):
    code, out, _ = run_cli(capsys, *ntk_args(mask_path, "--format", "csv"))
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["split", "k", "eigenvalue", *SUMMARY]
    assert list(frame["k"]) == list(range(1, N + 1)) and set(frame["split"]) == {"test"}
    expected = expected_spectrum(mask_path)
    np.testing.assert_allclose(frame["eigenvalue"], expected.eigenvalues, rtol=1e-15, atol=1e-12)
    assert frame["effective_rank"].nunique() == 1
    assert frame["effective_rank"].iloc[0] == pytest.approx(expected.effective_rank, rel=1e-12)


def test_out_writes_a_new_file_and_never_replaces_one(mask_path, tmp_path, capsys):
    out = tmp_path / "spectrum.json"
    code, stdout, _ = run_cli(capsys, *ntk_args(mask_path, "--format", "json", "--out", out))
    assert code == 0 and stdout == ""
    written = out.read_text()
    assert json.loads(written)["N"] == N
    code, _, err = run_cli(capsys, *ntk_args(mask_path, "--format", "json", "--out", out))
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert out.read_text() == written
    before = mask_path.read_bytes()
    code, _, err = run_cli(capsys, *ntk_args(mask_path, "--out", mask_path))
    assert code == 2 and "input" in err and mask_path.read_bytes() == before


def test_weights_the_file_lacks_are_drawn_with_the_seed(tmp_path, capsys):
    path = tmp_path / "masks_only.pt"
    write_mask_file(path, with_weights=False)

    def eigenvalues(seed: int) -> list[float]:
        code, out, err = run_cli(capsys, *ntk_args(path, "--format", "json", "--seed", seed))
        assert code == 0, err
        return json.loads(out)["eigenvalues"]

    assert eigenvalues(1) == eigenvalues(1)
    assert eigenvalues(1) != eigenvalues(2)


def _bad_files(folder):
    (folder / "garbage.pt").write_bytes(bytes(range(256)) * 4)
    (folder / "a_folder").mkdir()
    (folder / "taken.csv").write_text("mine\n")


# (id, arguments after "ntk" with {mask} and {dir} filled in, what the one line must name)
BAD = [
    ("missing-file", "{dir}/nope.pt --model mlp --data digits", ("nope.pt",)),
    ("garbage-file", "{dir}/garbage.pt --model mlp --data digits", ("garbage.pt",)),
    ("unknown-model", "{mask} --model bogus --data digits", ("bogus",)),
    ("unknown-data", "{mask} --model mlp --data bogus", ("bogus",)),
    ("model-does-not-fit", "{mask} --model lenet5 --data digits", ("lenet5",)),
    ("data-does-not-fit", "{mask} --model mlp --data mnist1d", ("mask.pt",)),
    ("inputs-1", "{mask} --model mlp --data digits --inputs 1", ("--inputs",)),
    ("inputs-0", "{mask} --model mlp --data digits --inputs 0", ("--inputs",)),
    ("inputs-word", "{mask} --model mlp --data digits --inputs many", ("--inputs",)),
    ("inputs-over-split", "{mask} --model mlp --data digits --inputs 100000", ("--inputs",)),
    ("format", "{mask} --model mlp --data digits --format xml", ("--format",)),
    ("format-parquet", "{mask} --model mlp --data digits --format parquet", ("--format",)),
    ("seed", "{mask} --model mlp --data digits --seed -1", ("--seed",)),
    ("out-missing-folder", "{mask} --model mlp --data digits --out {dir}/no/x.csv", ("x.csv",)),
    ("out-folder", "{mask} --model mlp --data digits --out {dir}/a_folder", ("a_folder",)),
    ("out-existing", "{mask} --model mlp --data digits --out {dir}/taken.csv", ("taken.csv",)),
    ("out-is-input", "{mask} --model mlp --data digits --out {mask}", ("mask.pt",)),
    ("no-model", "{mask} --data digits", ("--model",)),
]


@pytest.mark.parametrize("case_id, command, named", BAD, ids=[case[0] for case in BAD])
def test_bad_input_exits_2_in_one_line(case_id, command, named, mask_path, tmp_path, capsys):
    _bad_files(tmp_path)
    argv = command.format(mask=mask_path, dir=tmp_path).split()
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and any(name in err for name in named), err
    assert (tmp_path / "taken.csv").read_text() == "mine\n"
