"""PAGS / PEGS (SPEC §5): budgets, selection rules, worker independence, regeneration, run files, CLI."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import signal
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fullspectrum.sampling.candidates as candidates
from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
from fullspectrum.cli import main
from fullspectrum.errors import FullSpectrumError, UnknownNameError
from fullspectrum.models import build_model
from fullspectrum.runs import POPULATION_COLUMNS, RunStore
from fullspectrum.sampling import (
    ASSEMBLED,
    BASE,
    SELECTION_RULES,
    LayerPoint,
    SamplingConfig,
    prepare,
    regenerate_candidate,
    run_pags,
    sample,
    select,
)
from fullspectrum.sampling.candidates import CandidateEvaluator, candidate_batches
from fullspectrum.spectrum import VECTOR_AXES, full_spectrum_vector, layer_spectra, layer_spectrum

POPULATION = 6
TINY = dict(
    model="mlp", data="digits", density=0.1, population=POPULATION, model_options={"widths": [32, 16]}
)


def config(**changes) -> SamplingConfig:
    return SamplingConfig(**{**TINY, **changes})


def neg_inf_if_nan(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def counts(masks) -> dict[str, int]:
    return {name: int(mask.sum()) for name, mask in masks.items()}


@pytest.fixture(scope="module")
def snip_setup():
    return prepare(config(generator="snip", seed=3))


@pytest.fixture(scope="module")
def snip_result(snip_setup):
    return sample(snip_setup)


@pytest.fixture(scope="module")
def pags_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pags") / "run"
    return out, run_pags(config(generator="snip", seed=1), out)


# -- selection rules --------------------------------------------------------------------------------

points = st.tuples(
    st.one_of(st.just(math.nan), st.floats(-3, 3, allow_nan=False)), st.floats(0, 5, allow_nan=False)
)


@settings(max_examples=200, deadline=None)
@given(base=points, candidates=st.lists(points, max_size=12))
def test_fs23_rule_never_lowers_delta_r_imdb_nor_the_score(base, candidates):
    kept = LayerPoint(BASE, *base)
    for index, (imdb, score) in enumerate(candidates):
        candidate = LayerPoint(index, imdb, score)
        replaced = SELECTION_RULES["fs23"](candidate, kept)
        assert replaced == (neg_inf_if_nan(imdb) >= neg_inf_if_nan(kept.delta_r_imdb) and score >= kept.score)
        if replaced:
            kept = candidate
    winners = select(
        {"l": LayerPoint(BASE, *base)}, [{"l": LayerPoint(i, *p)} for i, p in enumerate(candidates)], "fs23"
    )
    assert winners == {"l": kept.candidate}
    assert neg_inf_if_nan(kept.delta_r_imdb) >= neg_inf_if_nan(base[0]) and kept.score >= base[1]


@settings(max_examples=200, deadline=None)
@given(base=points, candidates=st.lists(points, max_size=12))
def test_max_norm_picks_the_first_largest_score(base, candidates):
    layer = [LayerPoint(BASE, *base)] + [LayerPoint(i, *p) for i, p in enumerate(candidates)]
    best = max(point.score for point in layer)
    first = next(point.candidate for point in layer if point.score == best)
    winners = select({"l": layer[0]}, [{"l": point} for point in layer[1:]], "max-norm")
    assert winners == {"l": first}


def test_unknown_names_and_bad_numbers_are_one_line_errors():
    with pytest.raises(UnknownNameError, match="fs23, max-norm"):
        config(rule="best")
    with pytest.raises(UnknownNameError, match="snip"):
        config(generator="snipp")
    with pytest.raises(FullSpectrumError, match="population"):
        config(population=0)
    with pytest.raises(FullSpectrumError, match="density"):
        config(density=0.0)
    with pytest.raises(UnknownNameError, match="rounds"):
        config(generator="synflow", generator_options={"n_examples": 3})
    loaded = SamplingConfig.from_dict(json.loads(json.dumps(config(warmup_iters=5).as_dict())))
    assert loaded == config(warmup_iters=5) and loaded.method == "pegs"


# -- the sampling itself ----------------------------------------------------------------------------


def test_base_mask_is_the_prune_commands_mask(tmp_path):
    out = tmp_path / "snip.pt"
    argv = ["prune", "--model", "mlp", "--data", "digits", "--method", "snip", "--density", "0.1"]
    with redirect_stdout(io.StringIO()):
        assert main([*argv, "--seed", "3", "--batch-size", "64", "--out", str(out)]) == 0
    pruned = load_mask_checkpoint(out)
    setup = prepare(SamplingConfig(generator="snip", density=0.1, population=1, seed=3, batch_size=64))
    assert list(setup.base_masks) == list(pruned.masks)
    assert all(torch.equal(setup.base_masks[name], mask) for name, mask in pruned.masks.items())
    assert all(torch.equal(setup.state_dict[name], w) for name, w in pruned.state_dict.items())
    assert setup.counts == counts(pruned.masks)


def test_one_and_two_workers_give_the_same_result(snip_setup, snip_result):
    two = sample(dataclasses.replace(snip_setup, config=dataclasses.replace(snip_setup.config, workers=2)))
    pd.testing.assert_frame_equal(snip_result.population, two.population)
    assert snip_result.winners == two.winners
    for name, mask in snip_result.assembled_masks.items():
        assert torch.equal(mask, two.assembled_masks[name]), name


@pytest.mark.parametrize(
    ("generator", "rule", "options"),
    [
        ("snip", "fs23", {}),
        ("erk", "fs23", {}),
        ("magnitude", "fs23", {}),
        ("synflow", "max-norm", {"rounds": 3}),
        ("grasp", "max-norm", {}),
    ],
)
def test_assembled_mask_has_the_base_budget_and_takes_each_layer_from_its_winner(generator, rule, options):
    setup = prepare(config(generator=generator, rule=rule, generator_options=options))
    result = sample(setup)
    assert counts(result.assembled_masks) == counts(result.base_masks) == setup.counts
    population = result.population
    assert list(population.columns) == list(POPULATION_COLUMNS)
    assert sorted(set(population["candidate"])) == [ASSEMBLED, BASE, *range(POPULATION)]
    for name, mask in result.assembled_masks.items():
        layer = name.removesuffix(".weight")
        winner = result.winners[layer]
        source = setup.base_masks if winner == BASE else regenerate_candidate(setup, winner).masks
        assert torch.equal(mask, source[name]), layer
        rows = population[(population["layer"] == layer) & (population["candidate"] >= BASE)]
        assert list(rows.loc[rows["won"], "candidate"]) == [winner]
        fresh = layer_spectrum(mask.numpy(), setup.state_dict[name].numpy())  # scored as its own point
        base = layer_spectrum(setup.base_masks[name].numpy(), setup.state_dict[name].numpy())
        norm, base_norm = (np.linalg.norm(full_spectrum_vector(s)) for s in (fresh, base))
        assembled_row = population[(population["layer"] == layer) & (population["candidate"] == ASSEMBLED)]
        assert assembled_row["score"].item() == pytest.approx(norm, abs=1e-12)
        assert norm >= base_norm - 1e-12
        if rule == "fs23":
            assert neg_inf_if_nan(fresh.delta_r_imdb) >= neg_inf_if_nan(base.delta_r_imdb), layer


def test_population_rows_are_the_per_layer_spectra_of_each_mask(snip_setup, snip_result):
    """Layers scored together give the rows of one ``layer_spectrum`` call per layer (to 1e-9)."""
    population = snip_result.population
    members = {BASE: snip_setup.base_masks, ASSEMBLED: snip_result.assembled_masks}
    for index in (BASE, 0, POPULATION - 1, ASSEMBLED):
        masks = members.get(index) or regenerate_candidate(snip_setup, index).masks
        rows = population[population["candidate"] == index].set_index("layer")
        assert list(rows.index) == [name.removesuffix(".weight") for name in masks]
        for name, mask in masks.items():
            spectrum = layer_spectrum(mask.numpy(), snip_setup.state_dict[name].double().numpy())
            row = rows.loc[name.removesuffix(".weight")]
            for field in VECTOR_AXES:
                expected = getattr(spectrum, field)
                if math.isnan(expected):
                    assert math.isnan(row[field]), (index, name, field)
                else:
                    assert row[field] == pytest.approx(expected, abs=1e-9 * max(1.0, abs(expected)))
            norm = np.linalg.norm(full_spectrum_vector(spectrum))
            assert row["score"] == pytest.approx(norm, abs=1e-9 * max(1.0, norm)), (index, name)


def test_all_layers_of_a_candidate_are_solved_in_one_engine_call(snip_setup, monkeypatch):
    calls = []

    def spy(jobs, **options):
        calls.append((len(jobs), options.get("device")))
        return layer_spectra(jobs, **options)

    monkeypatch.setattr(candidates, "layer_spectra", spy)
    result = CandidateEvaluator(snip_setup.context).evaluate(snip_setup.config.seed, 0, snip_setup.batches(0))
    assert calls == [(len(snip_setup.counts), snip_setup.context.device)]  # on the sampling's device
    assert list(result.rows) == list(snip_setup.counts)


def test_candidates_are_fresh_draws_of_the_base_budget(snip_setup, snip_result):
    masks = [regenerate_candidate(snip_setup, index).masks for index in range(3)]
    for name, base in snip_setup.base_masks.items():
        assert len({tuple(torch.nonzero(m[name].flatten()).flatten().tolist()) for m in masks}) == 3, name
        assert all(int(m[name].sum()) == int(base.sum()) for m in masks)


def test_magnitude_candidates_are_small_perturbations_of_the_base_mask():
    setup = prepare(config(generator="magnitude", population=2))
    candidate = regenerate_candidate(setup, 1).masks
    overlap = sum(int((candidate[n] & m).sum()) for n, m in setup.base_masks.items())
    kept = sum(setup.counts.values())
    assert 0.9 * kept < overlap < kept  # 1e-3 noise only reorders weights near each layer's threshold


def test_a_regenerated_candidate_equals_its_population_rows(snip_setup, snip_result, pags_run):
    for index in (0, POPULATION - 1):
        alone = regenerate_candidate(snip_setup, index).population
        rows = snip_result.population[snip_result.population["candidate"] == index].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone.drop(columns="won"), rows.drop(columns="won"))
    out, result = pags_run  # from the run directory alone
    alone = regenerate_candidate(out, 2)
    rows = result.population[result.population["candidate"] == 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.population.drop(columns="won"), rows.drop(columns="won"))


def test_any_mask_of_a_run_is_saved_as_a_trainable_checkpoint(pags_run, tmp_path):
    from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
    from fullspectrum.sampling import save_candidate_checkpoint

    out, result = pags_run
    base = load_mask_checkpoint(out / "base_mask.pt")
    saved = load_mask_checkpoint(save_candidate_checkpoint(out, 2, tmp_path / "candidate2.pt"))
    regenerated = regenerate_candidate(out, 2).masks
    assert saved.masks.keys() == regenerated.keys()
    assert all(torch.equal(saved.masks[name], regenerated[name]) for name in regenerated)
    assert all(torch.equal(saved.state_dict[k], base.state_dict[k]) for k in base.state_dict)
    assert saved.meta["candidate"] == 2 and counts(saved.masks) == counts(base.masks)  # the base budget
    assembled = load_mask_checkpoint(save_candidate_checkpoint(out, -2, tmp_path / "assembled.pt"))
    assert all(torch.equal(assembled.masks[n], result.assembled_masks[n]) for n in result.assembled_masks)


def test_scores_from_the_base_mask_are_distances_from_its_vector():
    result = sample(prepare(config(generator="erk", population=3, score_from="base")))
    population = result.population
    base = population[population["candidate"] == BASE].set_index("layer")
    assert (base["score"] == 0).all()
    for _, row in population[population["candidate"] >= 0].iterrows():
        expected = np.linalg.norm(full_spectrum_vector(row) - full_spectrum_vector(base.loc[row["layer"]]))
        assert row["score"] == pytest.approx(expected, abs=1e-12)


def test_candidate_minibatches_depend_on_their_seed_only(snip_setup):
    train = snip_setup.splits.train
    first = candidate_batches(train, 16, 2, data_seed=5)
    again = candidate_batches(train, 16, 2, data_seed=5)
    other = candidate_batches(train, 16, 2, data_seed=6)
    assert [x.shape[0] for x, _ in first] == [16, 16]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0][0])
    stacked = torch.cat([x for x, _ in first]).flatten(1)
    assert len(torch.unique(stacked, dim=0)) == len(stacked) or len(train) < 32  # drawn without replacement


# -- run directory, mask checkpoints, PEGS --------------------------------------------------------------


def test_pags_run_directory_holds_the_population_masks_and_checkpoints(pags_run):
    out, result = pags_run
    store = RunStore.open(out)
    info = store.info
    assert (store.status, info["kind"], info["config"]["generator"], info["config"]["method"]) == (
        "finished",
        "pags",
        "snip",
        "pags",
    )
    assert info["final"]["layers_replaced"] == result.layers_replaced
    pd.testing.assert_frame_equal(store.population(), result.population)
    assert list(store.layers()["step"].unique()) == [0, 1]
    assert store.mask_steps() == [0, 1]
    for name, mask in store.load_masks(1).items():
        assert torch.equal(mask, result.assembled_masks[name])
    assembled = load_mask_checkpoint(out / "pags_mask.pt")
    base = load_mask_checkpoint(out / "base_mask.pt")
    assert counts(assembled.masks) == counts(base.masks) == counts(result.base_masks)
    assert assembled.meta["generator"] == "snip" and assembled.meta["mask"] == "assembled"

    torch.manual_seed(1)
    init = build_model("mlp", 10, (1, 8, 8), widths=[32, 16]).state_dict()
    for checkpoint in (assembled, base):  # PAGS: the initial weights
        assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in init.items())

    stdout = io.StringIO()
    with redirect_stdout(stdout):
        assert main(["analyze", str(out / "pags_mask.pt"), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(stdout.getvalue()))
    assert list(table["edges"]) == list(counts(result.assembled_masks).values())
    assert np.allclose(table["delta_r_imdb"], result.assembled_layers["delta_r_imdb"], equal_nan=True)


def test_pegs_checkpoints_carry_the_warmed_up_weights(tmp_path):
    result = run_pags(config(generator="erk", population=2, warmup_iters=3, seed=1), tmp_path / "pegs")
    torch.manual_seed(1)
    init = build_model("mlp", 10, (1, 8, 8), widths=[32, 16]).state_dict()
    for file in ("pags_mask.pt", "base_mask.pt"):
        weights = load_mask_checkpoint(tmp_path / "pegs" / file).state_dict
        assert all(torch.equal(weights[k], v) for k, v in result.state_dict.items())
        assert all(not torch.equal(weights[k], init[k]) for k in weights if k.endswith("weight"))
    assert math.isfinite(result.warmup_loss)
    assert RunStore.open(tmp_path / "pegs").info["config"]["method"] == "pegs"


# -- command line ----------------------------------------------------------------------------------------


def test_cli_smoke(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["pags", "--model", "mlp", "--data", "digits", "--density", "0.1", "--population", "3"]
    assert main([*argv, "--generator", "erk", "--out", str(out), "--seed", "2", "--batch-size", "32"]) == 0
    assert "3 candidates" in capsys.readouterr().out
    store = RunStore.open(out)
    population = store.population()
    assert sorted(set(population["candidate"])) == [ASSEMBLED, BASE, 0, 1, 2]
    assert (population[population["candidate"] >= BASE].groupby("layer")["won"].sum() == 1).all()
    assert store.info["config"]["batch_size"] == 32
    assert main([*argv, "--out", str(out)]) == 2  # the folder already holds a run
    assert main([*argv, "--rule", "best", "--out", str(tmp_path / "bad")]) == 2
    assert "choose from fs23, max-norm" in capsys.readouterr().err


def test_progress_reaches_the_total_and_the_embedding_hook_is_stored(tmp_path):
    calls = []

    def embed(population: pd.DataFrame) -> pd.DataFrame:
        ids = sorted(set(population["candidate"]))
        return pd.DataFrame({"candidate": ids, "x": ids, "y": 0.0, "method": "test"})

    run_pags(
        config(generator="erk", population=3, warmup_iters=2),
        tmp_path / "a",
        progress=lambda *a: calls.append(a),
        embed=embed,
    )
    assert calls[-1] == (5, 5) and [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert RunStore.open(tmp_path / "a").info["progress"] == {"done": 5, "total": 5}
    table = pd.read_csv(tmp_path / "a" / "embedding.csv")
    assert list(table["candidate"]) == [ASSEMBLED, BASE, 0, 1, 2]

    def broken(population):
        raise RuntimeError("no map today")

    run_pags(config(generator="erk", population=2), tmp_path / "b", embed=broken)
    store = RunStore.open(tmp_path / "b")  # an embedding failure is noted, the sampling still finishes
    assert store.status == "finished" and "no map today" in store.info["embedding_error"]
    assert not (tmp_path / "b" / "embedding.csv").exists()


def test_candidate_minibatches_have_the_batch_size_even_from_a_small_split():
    dataset = torch.utils.data.TensorDataset(
        torch.arange(10.0).unsqueeze(1), torch.zeros(10, dtype=torch.long)
    )
    batches = candidate_batches(dataset, 4, 4, data_seed=0)
    assert [len(x) for x, _ in batches] == [4, 4, 4, 4]
    first_pass = torch.cat([x for x, _ in batches]).flatten()[:10]
    assert sorted(first_pass.tolist()) == list(range(10))  # every example once before any repeats


NEW_RUN = ["pags", "--model", "mlp", "--data", "digits", "--density", "0.1", "--population", "2"]
BAD_INPUTS = {
    "unknown model": ["--model", "bogus"],
    "unknown dataset": ["--data", "bogus"],
    "cifar10 without --data-dir": ["--data", "cifar10"],
    "cifar10 from a missing folder": ["--data", "cifar10", "--data-dir", "/nonexistent/cifar"],
    "unknown generator": ["--generator", "bogus"],
    "unknown rule": ["--rule", "bogus"],
    "unknown score origin": ["--score-from", "bogus"],
    "no candidates": ["--population", "0"],
    "negative population": ["--population", "-3"],
    "density 0": ["--density", "0"],
    "density above 1": ["--density", "1.5"],
    "density nan": ["--density", "nan"],
    "no minibatches": ["--iters-per-candidate", "0"],
    "negative warm-up": ["--warmup-iters", "-1"],
    "negative seed": ["--seed", "-1"],
    "seed beyond 64 bits": ["--seed", str(2**70)],
    "negative split seed": ["--split-seed", "-1"],
    "batch size 0": ["--batch-size", "0"],
    "warm-up lr 0": ["--warmup-lr", "0"],
    "warm-up lr inf": ["--warmup-lr", "inf"],
    "warm-up lr nan": ["--warmup-lr", "nan"],
    "no workers": ["--workers", "0"],
    "diverging warm-up": ["--warmup-iters", "3", "--warmup-lr", "1e6"],
}


def visible_lines(err: str) -> list[str]:
    """What a terminal shows of ``err``: each line's text after its last carriage return (a progress bar
    that clears itself leaves nothing)."""
    return [shown for line in err.split("\n") if (shown := line.rsplit("\r", 1)[-1].strip())]


@pytest.mark.parametrize("extra", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_leaves_no_run_folder(tmp_path, capsys, extra):
    out = tmp_path / "new" / "run"
    assert main([*NEW_RUN, "--device", "cpu", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    [line] = visible_lines(err)
    # the library's refusals say "fullspectrum: error:", the flag checks "fullspectrum pags: error:"
    assert re.match(r"fullspectrum( pags)?: error: ", line) and "Traceback" not in err, err
    if "--warmup-lr" not in extra or extra[-1] != "1e6":  # refused before any work: no progress bar either
        assert err == line + "\n"
    assert not (tmp_path / "new").exists()


def _sigint_held_off(pid: int) -> bool:
    """Whether process ``pid`` ignores or blocks SIGINT (from /proc/PID/status)."""
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    bit = 1 << (signal.SIGINT - 1)
    return bool((int(fields["SigIgn"], 16) | int(fields["SigBlk"], 16)) & bit)


def _pool_processes(pid: int) -> list[int]:
    """The fork server and pool workers under process ``pid`` (children of children, from /proc)."""
    found, parents = [], {pid}
    for _ in range(3):
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid in parents:
                children.append(int(entry.name))
                if b"multiprocessing.forkserver" in cmdline:
                    found.append(int(entry.name))
        parents = set(children)
    return found


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads signal masks from /proc")
def test_pool_processes_leave_ctrl_c_to_the_parent(snip_setup):
    seen: list[dict[int, bool]] = []

    def progress(done: int, total: int) -> None:
        if done == 1:
            seen.append({pid: _sigint_held_off(pid) for pid in _pool_processes(os.getpid())})

    setup = dataclasses.replace(snip_setup, config=dataclasses.replace(snip_setup.config, workers=2))
    sample(setup, progress=progress)
    assert len(seen[0]) >= 3, seen  # the fork server and two workers
    assert all(seen[0].values()), seen  # a Ctrl-C in the terminal reaches the parent alone
