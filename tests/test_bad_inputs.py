"""Every command refuses bad input as SPEC §8 promises: exit 2, one line on stderr naming the input.

One table of bad command lines across every command (unknown names, bad numbers, bad paths,
bad files written here, outputs into folders that hold the user's files). For each: exit status
2, exactly one line on stderr that names the input, and nothing changed in the folder it ran in:
no run folder left behind, no file of the user's replaced (the folder is hashed before and
after). Most run in-process through :func:`fullspectrum.cli.main` with warnings printed as a
process prints them; a few end to end as ``python -m fullspectrum``, among them the files whose
tensors claim more memory than the machine has (under a memory limit, so a regression fails
instead of swapping).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from test_runs_cli import make_run

from fullspectrum.checkpoints.mask_file import save_mask_checkpoint
from fullspectrum.cli import main

# the parameters of ``build_model("mlp", 10, (1, 8, 8))``, the model every case uses with digits
MLP = {"features.1.weight": (256, 64), "features.3.weight": (128, 256), "classifier.weight": (10, 128)}
MLP_BIASES = {"features.1.bias": (256,), "features.3.bias": (128,), "classifier.bias": (10,)}
MEMORY_LIMIT = 16 * 2**30  # bytes of address space for the end-to-end cases


class _Shell:
    """Unpickles into ``os.system``: a file no reader may execute (it would write ``pwned``)."""

    def __reduce__(self):
        return os.system, ("touch pwned",)


def _masks(density: float = 0.1, **overrides) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    masks = {name: torch.rand(shape, generator=generator) < density for name, shape in MLP.items()}
    return {**masks, **overrides}


def _weights(**overrides) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    shapes = {**MLP, **MLP_BIASES}
    return {**{name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}, **overrides}


def _raw_mask_file(path: Path, masks, state_dict) -> None:
    """A mask checkpoint written without the writer's checks (as a careless tool would)."""
    torch.save({"masks": masks, "state_dict": state_dict, "meta": {"generator": "test"}}, path)


def build_workspace(folder: Path) -> Path:
    """The files and folders the cases name, all relative to ``folder``."""
    folder.mkdir(parents=True)
    save_mask_checkpoint(folder / "good.pt", _masks(), _weights(), {"generator": "random"})
    (folder / "garbage.pt").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.pt").write_bytes(b"")
    (folder / "text.pt").write_text("these are my notes, not a checkpoint\n")
    (folder / "garbage.safetensors").write_bytes(b"\xff" * 64)
    torch.save({"weight": _Shell()}, folder / "unsafe.pt")
    torch.save({"weight": _Shell()}, folder / "unsafe_legacy.pt", _use_new_zipfile_serialization=False)
    _raw_mask_file(
        folder / "nan.pt", _masks(), _weights(**{"features.1.weight": torch.full((256, 64), torch.nan)})
    )
    _raw_mask_file(
        folder / "inf.pt", _masks(), _weights(**{"features.3.weight": torch.full((128, 256), torch.inf)})
    )
    _raw_mask_file(folder / "partial.pt", {"features.1.weight": _masks()["features.1.weight"]}, {})
    _raw_mask_file(folder / "unknown_names.pt", {"no.such.weight": torch.ones(4, 4, dtype=torch.bool)}, {})
    _raw_mask_file(
        folder / "wrong_shapes.pt", _masks(**{"features.1.weight": torch.ones(3, 3, dtype=torch.bool)}), {}
    )
    _raw_mask_file(folder / "all_zero.pt", _masks(0.0), _weights())
    _raw_mask_file(folder / "non_binary.pt", {n: torch.full(s, 0.5) for n, s in MLP.items()}, _weights())
    torch.save({"fc.weight": torch.randn(8, 4, dtype=torch.complex64)}, folder / "complex.pt")
    torch.save({"fc.weight": torch.zeros(0, 5)}, folder / "zero_size.pt")
    torch.save({"fc.weight": torch.zeros(1).expand(200_000, 200_000)}, folder / "huge.pt")  # 1 float stored
    torch.save({"fc.bias": torch.zeros(3), "step": torch.tensor(4)}, folder / "no_layers.pt")
    (folder / "a_file").write_text("mine\n")
    (folder / "plain").mkdir()
    user = folder / "user_dir"  # a folder of the user's, not a run
    user.mkdir()
    for name in ("checkpoint.pt", "source.pt", "layers.csv", "notes.txt"):
        (user / name).write_text(f"my own {name}\n")
    make_run(folder / "run")
    make_run(folder / "pags_run", kind="pags", method=None, generator="random")
    corrupt = make_run(folder / "corrupt_run")
    (corrupt / "run.json").write_text("{ not json")
    return folder


P = "prune --model mlp --data digits --method random --density 0.1 --out new.pt"
T = "train --model mlp --data digits --method itop --epochs 1 --out new"
TS = "train --model mlp --data digits --method static --epochs 1 --out new"
G = "pags --model mlp --data digits --generator random --population 2 --out new"
I = "ingest good.pt --out new"  # noqa: E741 - the ingest command line, like P, T and G

# (id, command line run in the workspace, what the one line must name: any of these)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # the command itself
    ("no-command", "", ("command",)),
    ("unknown-command", "bogus", ("bogus",)),
    ("unknown-global-flag", "--bogus runs .", ("--bogus",)),
    # prune
    ("prune-model", P.replace("--model mlp", "--model bogus"), ("bogus",)),
    ("prune-data", P.replace("--data digits", "--data bogus"), ("bogus",)),
    ("prune-method", P.replace("--method random", "--method bogus"), ("bogus",)),
    ("prune-density-0", P + " --density 0", ("--density", "density")),
    ("prune-density-1.5", P + " --density 1.5", ("--density", "density")),
    ("prune-density-nan", P + " --density nan", ("--density", "density")),
    ("prune-density-word", P + " --density half", ("--density", "density")),
    ("prune-seed-negative", P + " --seed -1", ("--seed", "seed")),
    ("prune-seed-2**70", P + f" --seed {2**70}", ("--seed", "seed")),
    ("prune-seed-float", P + " --seed 1.5", ("--seed", "seed")),
    ("prune-split-seed", P + " --split-seed -1", ("--split-seed",)),
    ("prune-batch-size-0", P + " --batch-size 0", ("--batch-size", "batch_size")),
    ("prune-examples-0", P + " --examples 0", ("--examples",)),
    ("prune-rounds-0", P.replace("random", "synflow") + " --rounds 0", ("--rounds",)),
    ("prune-rounds-not-used", P + " --rounds 3", ("--rounds",)),
    ("prune-device", P + " --device tpu", ("--device",)),
    ("prune-out-folder", P.replace("new.pt", "user_dir"), ("user_dir",)),
    ("prune-out-under-a-file", P.replace("new.pt", "a_file/masks.pt"), ("a_file",)),
    ("prune-no-out", P.replace(" --out new.pt", ""), ("--out",)),
    ("prune-cifar-without-data-dir", P.replace("digits", "cifar10"), ("cifar10", "--data-dir")),
    ("prune-cifar-missing-data-dir", P.replace("digits", "cifar10") + " --data-dir nowhere", ("nowhere",)),
    ("prune-unknown-flag", P + " --bogus", ("--bogus",)),
    # analyze
    ("analyze-missing", "analyze missing.pt", ("missing.pt",)),
    ("analyze-folder", "analyze plain", ("plain",)),
    ("analyze-garbage", "analyze garbage.pt", ("garbage.pt",)),
    ("analyze-empty", "analyze empty.pt", ("empty.pt",)),
    ("analyze-text", "analyze text.pt", ("text.pt",)),
    ("analyze-garbage-safetensors", "analyze garbage.safetensors", ("garbage.safetensors",)),
    ("analyze-unsafe", "analyze unsafe.pt", ("unsafe.pt",)),
    ("analyze-unsafe-legacy", "analyze unsafe_legacy.pt", ("unsafe_legacy.pt",)),
    ("analyze-no-layers", "analyze no_layers.pt", ("no_layers.pt",)),
    ("analyze-non-binary", "analyze non_binary.pt", ("non_binary.pt",)),
    ("analyze-complex", "analyze complex.pt", ("complex.pt",)),
    ("analyze-zero-size", "analyze zero_size.pt", ("zero_size.pt",)),
    ("analyze-format", "analyze good.pt --format xml", ("--format",)),
    ("analyze-parquet-without-out", "analyze good.pt --format parquet", ("--out",)),
    ("analyze-out-is-the-input", "analyze good.pt --format csv --out good.pt", ("good.pt",)),
    ("analyze-out-folder", "analyze good.pt --out user_dir", ("user_dir",)),
    ("analyze-out-under-a-file", "analyze good.pt --out a_file/table.txt", ("a_file",)),
    ("analyze-out-missing-folder", "analyze good.pt --out nowhere/table.txt", ("nowhere",)),
    ("analyze-convention", "analyze good.pt --convention bogus", ("--convention",)),
    # train
    ("train-model", T.replace("--model mlp", "--model bogus"), ("bogus",)),
    ("train-data", T.replace("--data digits", "--data bogus"), ("bogus",)),
    ("train-method", T.replace("--method itop", "--method bogus"), ("--method",)),
    ("train-init", T + " --init bogus", ("--init",)),
    ("train-density-0", T + " --density 0", ("--density", "density")),
    ("train-density-nan", T + " --density nan", ("--density", "density")),
    ("train-density-1.5", T + " --density 1.5", ("--density", "density")),
    ("train-epochs-0", T + " --epochs 0", ("--epochs", "epochs")),
    ("train-epochs-negative", T + " --epochs -2", ("--epochs", "epochs")),
    ("train-batch-size-0", T + " --batch-size 0", ("--batch-size", "batch_size")),
    ("train-lr-inf", T + " --lr inf", ("--lr", "lr")),
    ("train-lr-nan", T + " --lr nan", ("--lr", "lr")),
    ("train-lr-negative", T + " --lr -0.1", ("--lr", "lr")),
    ("train-lr-0", T + " --lr 0", ("--lr", "lr")),
    ("train-seed-negative", T + " --seed -1", ("--seed", "seed")),
    ("train-seed-2**70", T + f" --seed {2**70}", ("--seed", "seed")),
    ("train-delta-t-0", T + " --delta-t 0", ("--delta-t", "delta_t")),
    ("train-snapshot-every-0", T + " --snapshot-every 0", ("--snapshot-every", "snapshot_every")),
    ("train-device", T + " --device tpu", ("--device",)),
    ("train-no-out", T.replace(" --out new", ""), ("--out",)),
    ("train-out-user-folder", T.replace("new", "user_dir"), ("user_dir",)),
    ("train-out-a-file", T.replace("new", "a_file"), ("a_file",)),
    ("train-out-under-a-file", T.replace("new", "a_file/run"), ("a_file",)),
    ("train-out-existing-run", T.replace("new", "run"), ("run",)),
    ("train-cifar-without-data-dir", T.replace("digits", "cifar10"), ("cifar10", "--data-dir")),
    ("train-mask-missing", TS + " --mask missing.pt", ("missing.pt",)),
    ("train-mask-garbage", TS + " --mask garbage.pt", ("garbage.pt",)),
    ("train-mask-unsafe", TS + " --mask unsafe.pt", ("unsafe.pt",)),
    ("train-mask-not-a-mask-file", TS + " --mask no_layers.pt", ("no_layers.pt",)),
    ("train-mask-nan-weights", TS + " --mask nan.pt", ("nan.pt",)),
    ("train-mask-inf-weights", TS + " --mask inf.pt", ("inf.pt",)),
    ("train-mask-partial", TS + " --mask partial.pt", ("partial.pt",)),
    ("train-mask-unknown-names", TS + " --mask unknown_names.pt", ("unknown_names.pt",)),
    ("train-mask-wrong-shapes", TS + " --mask wrong_shapes.pt", ("wrong_shapes.pt",)),
    ("train-mask-all-zero", TS + " --mask all_zero.pt", ("all_zero.pt",)),
    ("train-mask-non-binary", TS + " --mask non_binary.pt", ("non_binary.pt",)),
    ("train-resume-missing", "train --resume missing", ("missing",)),
    ("train-resume-not-a-run", "train --resume plain", ("plain",)),
    ("train-resume-a-pags-run", "train --resume pags_run", ("pags_run",)),
    ("train-resume-corrupt-run", "train --resume corrupt_run", ("corrupt_run",)),
    ("train-resume-with-flags", "train --resume run --epochs 3", ("--epochs", "epochs")),
    # pags
    ("pags-model", G.replace("--model mlp", "--model bogus"), ("bogus",)),
    ("pags-data", G.replace("--data digits", "--data bogus"), ("bogus",)),
    ("pags-generator", G.replace("--generator random", "--generator bogus"), ("bogus",)),
    ("pags-rule", G + " --rule bogus", ("bogus",)),
    ("pags-score-from", G + " --score-from bogus", ("bogus",)),
    ("pags-density-0", G + " --density 0", ("--density", "density")),
    ("pags-density-nan", G + " --density nan", ("--density", "density")),
    ("pags-population-0", G + " --population 0", ("--population", "population")),
    ("pags-population-negative", G + " --population -3", ("--population", "population")),
    ("pags-workers-0", G + " --workers 0", ("--workers", "workers")),
    (
        "pags-iters-per-candidate-0",
        G.replace("random", "snip") + " --iters-per-candidate 0",
        ("--iters-per-candidate", "iters_per_candidate"),
    ),  # fmt: skip
    ("pags-warmup-iters-negative", G + " --warmup-iters -1", ("--warmup-iters", "warmup_iters")),
    ("pags-warmup-lr-inf", G + " --warmup-iters 2 --warmup-lr inf", ("--warmup-lr", "warmup_lr")),
    ("pags-seed-negative", G + " --seed -1", ("--seed", "seed")),
    ("pags-batch-size-0", G + " --batch-size 0", ("--batch-size", "batch_size")),
    ("pags-cifar-without-data-dir", G.replace("digits", "cifar10"), ("cifar10", "--data-dir")),
    ("pags-out-user-folder", G.replace("new", "user_dir"), ("user_dir",)),
    ("pags-out-a-file", G.replace("new", "a_file"), ("a_file",)),
    ("pags-out-existing-pags-run", G.replace("new", "pags_run"), ("pags_run",)),
    ("pags-no-out", G.replace(" --out new", ""), ("--out",)),
    ("pags-resume-missing", "pags --resume missing", ("missing",)),
    # runs
    ("runs-missing", "runs missing", ("missing",)),
    ("runs-a-file", "runs a_file", ("a_file",)),
    ("runs-under-a-file", "runs a_file/runs", ("a_file",)),
    ("runs-format", "runs . --format xml", ("--format",)),
    ("runs-no-root", "runs", ("ROOT",)),
    # export
    ("export-missing", "export missing --out new", ("missing",)),
    ("export-not-a-run", "export plain --out new", ("plain",)),
    ("export-a-file", "export a_file --out new", ("a_file",)),
    ("export-corrupt-run", "export corrupt_run --out new", ("corrupt_run",)),
    ("export-format", "export run --format xlsx --out new", ("--format",)),
    ("export-no-out", "export run", ("--out",)),
    ("export-out-a-file", "export run --out a_file", ("a_file",)),
    ("export-out-under-a-file", "export run --out a_file/tables", ("a_file",)),
    ("export-out-user-folder", "export run --out user_dir", ("user_dir",)),
    # ingest
    ("ingest-missing", I.replace("good.pt", "missing.pt"), ("missing.pt",)),
    ("ingest-garbage", I.replace("good.pt", "garbage.pt"), ("garbage.pt",)),
    ("ingest-unsafe", I.replace("good.pt", "unsafe.pt"), ("unsafe.pt",)),
    ("ingest-unsafe-legacy", I.replace("good.pt", "unsafe_legacy.pt"), ("unsafe_legacy.pt",)),
    ("ingest-no-layers", I.replace("good.pt", "no_layers.pt"), ("no_layers.pt",)),
    ("ingest-complex", I.replace("good.pt", "complex.pt"), ("complex.pt",)),
    ("ingest-zero-size", I.replace("good.pt", "zero_size.pt"), ("zero_size.pt",)),
    ("ingest-convention", I + " --convention bogus", ("--convention",)),
    ("ingest-no-out", "ingest good.pt", ("--out",)),
    ("ingest-out-user-folder", I.replace("new", "user_dir"), ("user_dir",)),
    ("ingest-out-a-file", I.replace("new", "a_file"), ("a_file",)),
    ("ingest-out-existing-run", I.replace("new", "run"), ("run",)),
    # app (refused before Streamlit would start)
    ("app-port-0", "app --port 0", ("--port",)),
    ("app-port-70000", "app --port 70000", ("--port",)),
    ("app-runs-missing", "app --runs missing", ("missing",)),
    ("app-runs-a-file", "app --runs a_file", ("a_file",)),
]

# run end to end as `python -m fullspectrum`: a handful for the whole path, and the files whose
# tensors claim 160 GB (a process of its own, under a memory limit)
END_TO_END = {"unknown-command", "train-model", "runs-a-file", "analyze-huge", "ingest-huge"}
CASES += [
    ("analyze-huge", "analyze huge.pt", ("huge.pt",)),
    ("ingest-huge", I.replace("good.pt", "huge.pt"), ("huge.pt",)),
]


@pytest.fixture(scope="module")
def workspace_template(tmp_path_factory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("bad_inputs") / "workspace")


def tree_hashes(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` (relative path -> content hash, or ``dir``)."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        hashes[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@contextlib.contextmanager
def warnings_printed_as_by_a_process():
    """Warnings reach stderr as in a fresh ``python`` (pytest would otherwise collect them)."""

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = show
        yield


def _limit_memory() -> None:  # runs in the child before exec
    import resource  # POSIX only, and only needed in the child

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_in_process(argv: list[str], capfd, monkeypatch) -> tuple[int, str]:
    def no_server(*args, **kwargs):
        raise AssertionError("a refused input must not start the app")

    monkeypatch.setattr(os, "execve", no_server)
    monkeypatch.setattr(subprocess, "call", no_server)
    with warnings_printed_as_by_a_process():
        code = main(argv)
    return code, capfd.readouterr().err


def _run_process(argv: list[str], cwd: Path) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "fullspectrum", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_memory if os.name == "posix" else None,
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    "case_id, command, named",
    [  # the end-to-end cases start a real process: slow (left out of the fast loop)
        pytest.param(*case, id=case[0], marks=[pytest.mark.slow] if case[0] in END_TO_END else [])
        for case in CASES
    ],
)
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    case_id, command, named, workspace_template, tmp_path, capfd, monkeypatch
):
    workspace = tmp_path / "workspace"
    shutil.copytree(workspace_template, workspace)
    before = tree_hashes(workspace)
    monkeypatch.chdir(workspace)
    argv = shlex.split(command)
    if case_id in END_TO_END:
        code, err = _run_process(argv, workspace)
    else:
        code, err = _run_in_process(argv, capfd, monkeypatch)
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line on stderr, got:\n{err}"
    assert any(name in err for name in named), f"the line names none of {named}: {err}"
    after = tree_hashes(workspace)
    assert after == before, {
        "created": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
    }


def test_the_table_covers_every_command_with_many_inputs():
    commands = {shlex.split(command)[0] for _, command, _ in CASES if command and command[0] != "-"}
    assert commands >= {"analyze", "prune", "train", "pags", "runs", "export", "ingest", "app"}
    assert len(CASES) >= 60 and len({case[0] for case in CASES}) == len(CASES)
