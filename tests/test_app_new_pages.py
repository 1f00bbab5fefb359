"""The Unrolled view, Graphon & NTK and Reproductions pages under AppTest: they open on the cached runs,
show the library's numbers, and say what is missing or partial instead of failing."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis.graphon_studies import (
    claims_not_holding,
    load_trainability_study,
    load_width_study,
    mask_ntk_spectrum,
)
from analysis.mask_sources import load_mask_source
from analysis.predictors import predictor_studies
from analysis.run_features import run_features
from analysis.unrolled_view import unrolled_view
from analysis.width_limit import WidthLimitConfig, run_width_limit, write_width_study
from app.charts.graphon import loss_curves_figure, spectra_figure
from app.charts.reproduction import cost_accuracy_figure
from app.charts.unrolled import effective_bars, live_flow
from fullspectrum.reproduction.report import fs23_claims
from fullspectrum.runs import RunStore
from fullspectrum.spectrum import layer_spectrum
from tests.app_fixtures import make_run, make_runs
from tests.test_analysis_graphon_studies import tiny_trainability
from tests.test_analysis_reproduction_view import hand_points, make_reproduction

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app" / "streamlit_app.py")
CACHED = REPO / "cached_runs"
CACHED_REPRODUCTION = Path(__file__).resolve().parents[1] / "cached_runs" / "reproductions" / "fs23-quick"


def _app(page: str, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _decode(value):
    """Plotly >= 6 sends numeric arrays as ``{"dtype", "bdata"}`` (base64); turn them back into lists."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            if "shape" in value:
                shape = value["shape"]
                shape = [int(n) for n in shape.split(",")] if isinstance(shape, str) else shape
                return array.reshape(shape).tolist()
            return array.tolist()
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _figure(at: AppTest, index: int) -> dict:
    return _decode(json.loads(at.get("plotly_chart")[index].proto.spec))


def _texts(at: AppTest, kind: str) -> list[str]:
    return [str(element.value) for element in getattr(at, kind)]


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Point the app at a run folder (or several) and a fresh workspace."""

    def use(*roots: Path) -> None:
        monkeypatch.setenv("FULLSPECTRUM_RUNS", os.pathsep.join(str(r) for r in roots))
        monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))

    return use


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """Six tiny training runs (three Linear layers that are not the zoo MLP's), a tiny G25 graphon folder,
    a finished reproduction and one that is still running."""
    root = tmp_path_factory.mktemp("new_pages") / "runs"
    make_runs(root)
    config = WidthLimitConfig(generators=("random", "snip"), widths=(16, 32, 64), seeds=(0, 1), K=4)
    write_width_study(run_width_limit(config), root / "graphon" / "width")
    from analysis.trainability import write_trainability_study  # why: only this fixture writes a study

    write_trainability_study(tiny_trainability(slower_snip=True), root / "graphon" / "trainability")
    make_reproduction(
        root / "repro_done", report="# FS23 Tables 2–3 reproduced: mlp on digits (preset tiny)\n"
    )
    make_reproduction(root / "repro_running", finished=False, tables=False)
    return root


# -- Unrolled view -------------------------------------------------------------------------------------


def test_unrolled_view_on_the_cached_runs_shows_the_librarys_numbers(env):
    env(CACHED)
    at = _app("unrolled_view")
    path = at.selectbox(key="uv_run_run").value
    step = at.selectbox(key=f"uv_step_{path}").value
    source = load_mask_source(("run", path, int(step)))
    config = RunStore.open(path).info["config"]
    expected = unrolled_view(source.masks, source.weights, config["model"], config["data"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["nodes"] == f"{expected.topometrics['nodes']:,}"
    assert metrics["unrolled edges"] == f"{expected.topometrics['edges']:,}"
    assert metrics["effective density"] == f"{expected.topometrics['effective_density']:.4f}"
    table = at.dataframe[0].value
    assert table["metric"].tolist() == expected.metrics["metric"].tolist()
    assert table["value"].to_numpy() == pytest.approx(expected.metrics["value"].to_numpy())
    assert all(table["meaning"].astype(bool))  # every metric explained where it appears
    # the cell cuts long sentences: each is also written out in full beside the table
    shown = "\n".join(m.value for m in at.markdown)
    assert all(
        f"**{metric}**: {meaning}" in shown for metric, meaning in zip(table["metric"], table["meaning"])
    )
    bars, flow = _figure(at, 0), _figure(at, 1)
    assert bars["data"][0]["y"] == expected.layers["effective"].tolist()
    assert bars["data"][1]["y"] == expected.layers["ineffective"].tolist()
    assert flow["data"][0]["type"] == "sankey"
    assert sum(flow["data"][0]["link"]["value"]) == int(
        expected.partitions["live"].iloc[:-1].sum()
        + (expected.partitions["units"] - expected.partitions["live"]).sum()
    )
    if expected.layers["ineffective"].sum():
        assert any("are ineffective" in text for text in _texts(at, "warning"))


def test_masks_that_do_not_fit_the_zoo_network_are_one_line(env, tiny_root):
    env(tiny_root)
    at = _app("unrolled_view", selected_run=str(tiny_root / "run_0"))
    (error,) = _texts(at, "error")
    assert "cannot be built" in error and "fc1.weight" in error and "\n" not in error


def test_predictor_study_needs_enough_runs(env, tmp_path):
    root = tmp_path / "few"
    for i in range(2):
        make_run(root / f"run_{i}", density=0.1, seed=i, accuracy=0.6)
    env(root)
    at = _app("unrolled_view")
    assert any("has 6 finished training runs" in text for text in _texts(at, "info"))


def _weighted_static_run(path: Path, masks: dict, weights: dict, *, seed: int, accuracy: float) -> Path:
    """A finished static training run whose one snapshot keeps ``masks`` and ``weights`` (no training)."""
    config = {"model": "mlp", "data": "digits", "method": "static", "density": 0.1, "epochs": 1}
    store = RunStore.create(path, kind="train", config=config, seed=seed, device="cpu")
    rows = [{"layer": name.removesuffix(".weight"), **layer_spectrum(mask, weights[name], name=name).as_dict(),
             "moving_distance": 0.0, "exploration_rate": float(mask.float().mean())}
            for name, mask in masks.items()]  # fmt: skip
    store.add_snapshot(
        0, rows, [{"split": "val", "loss": 1.0, "accuracy": accuracy, "exploration_rate": 0.1}]
    )
    store.save_masks(0, masks, weights)
    store.add_evals(0, [{"split": "test", "loss": 0.5, "accuracy": accuracy, "exploration_rate": 0.1}])
    store.finish(final={"test_accuracy": accuracy, "steps": 0})
    return path


@pytest.mark.slow
def test_predictor_study_shows_the_librarys_scores_density_first(env, tmp_path):
    # six finished runs of the zoo MLP's own layers, masks and weights stored (so the unrolled features exist
    # and their weighted metrics are fixed), at two densities
    generator = torch.Generator().manual_seed(0)
    shapes = {"features.1.weight": (256, 64), "features.3.weight": (128, 256), "classifier.weight": (10, 128)}
    paths = []
    for i, density in enumerate([0.05, 0.05, 0.05, 0.2, 0.2, 0.2]):
        masks = {name: torch.rand(shape, generator=generator) < density for name, shape in shapes.items()}
        weights = {
            name: torch.randn(shape, generator=generator) * masks[name] for name, shape in shapes.items()
        }
        paths.append(str(_weighted_static_run(tmp_path / "zoo" / f"run_{i}", masks, weights, seed=i,
                                              accuracy=0.5 + 0.05 * i)))  # fmt: skip
    env(tmp_path / "zoo")
    at = _app("unrolled_view", uv_study=True)
    study = predictor_studies(run_features(paths))[("mlp", "digits")]
    assert study.verdict in _texts(at, "info") + _texts(at, "warning")
    shown = next(d.value for d in at.dataframe if "feature set" in d.value.columns)
    assert shown["feature set"].iloc[0] == "density"
    expected = study.table().set_index("feature_set")
    for name, text in zip(shown["feature set"], shown["R² [95% CI]"], strict=True):
        assert text.startswith(f"{expected.loc[name, 'r2']:.3f}")


# -- Graphon & NTK ---------------------------------------------------------------------------------------


def test_graphon_page_says_where_g25_does_not_hold_from_the_cached_studies(env, tiny_root):
    env(tiny_root)
    at = _app("graphon_ntk")
    width = load_width_study(tiny_root / "graphon" / "width")
    trainability = load_trainability_study(tiny_root / "graphon" / "trainability")
    lines = claims_not_holding(width, {"trainability": trainability})
    assert any(line.startswith("Trainability") for line in lines)
    (failures,) = [text for text in _texts(at, "warning") if text.startswith("**Where the cached studies")]
    for line in lines:
        assert line in failures
    assert trainability.verdict in _texts(at, "warning")
    markdown = " ".join(_texts(at, "markdown"))
    assert (
        "K = 64 is this project's default, not G25's" in markdown and "mean-field approximation" in markdown
    )
    verdicts = next(
        d.value for d in at.dataframe if "verdict" in d.value.columns and "falls" in d.value.columns
    )
    assert verdicts["verdict"].tolist() == width.verdicts["verdict"].tolist()
    summary = next(d.value for d in at.dataframe if "top5_energy" in d.value.columns)
    own = trainability.runs[trainability.runs["kind"] == "generator"]
    for generator, rows in own.groupby("generator"):
        row = summary[summary["mask"].str.startswith(f"{generator} (cached")]
        assert row["top5_energy"].iloc[0] == pytest.approx(rows["top5_energy"].mean())
    heat = _figure(at, 0)
    assert heat["data"][0]["type"] == "heatmap" and heat["data"][0]["showscale"]  # a colour bar on the scale
    spectra = next(_figure(at, i) for i in range(len(at.get("plotly_chart"))) if _figure(at, i)["layout"]
                   ["xaxis"].get("type") == "log" and "eigenvalue" in _figure(at, i)["layout"]["xaxis"]["title"]["text"])  # fmt: skip
    assert spectra["layout"]["yaxis"]["type"] == "log"


def test_graphon_page_without_cached_studies_says_so(env, tmp_path):
    (tmp_path / "empty").mkdir()
    env(tmp_path / "empty")
    at = _app("graphon_ntk")
    infos = _texts(at, "info")
    assert any("No cached G25 studies" in text for text in infos)
    assert any("No cached width study" in text for text in infos)
    assert any("No cached trainability study" in text for text in infos)


def test_graphon_page_opens_on_the_cached_runs(env):
    env(CACHED)
    _app("graphon_ntk")


def test_spectra_figure_is_log_log_with_one_line_per_mask():
    shares = pd.DataFrame(
        {"mask": ["a"] * 3 + ["b"] * 3, "k": [1, 2, 3] * 2, "share": [0.7, 0.2, 0.1, 0.5, 0.3, 0.2]}
    )
    figure = spectra_figure(shares)
    assert [t.name for t in figure.data] == ["a", "b"]
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"


# -- Reproductions ---------------------------------------------------------------------------------------


def test_reproductions_page_shows_the_results_claims_and_cost(env, tiny_root):
    env(tiny_root)
    at = _app("reproductions", rp_run=str(tiny_root / "repro_done"))
    assert at.selectbox(key="rp_run").value == str(tiny_root / "repro_done")
    written = pd.read_csv(tiny_root / "repro_done" / "results.csv")
    table = next(d.value for d in at.dataframe if "accuracy" in d.value.columns)
    assert table["accuracy"].to_numpy() == pytest.approx(written["mean_accuracy"].to_numpy())
    assert table["iterations"].tolist() == written["iterations"].tolist()
    shown = _texts(at, "success") + _texts(at, "warning") + _texts(at, "error")
    for verdict in fs23_claims(hand_points()):
        assert verdict.text in shown
    cost = next(_figure(at, i) for i in range(len(at.get("plotly_chart"))))
    assert cost["layout"]["xaxis"]["type"] == "log"
    assert sorted(y for trace in cost["data"] for y in trace["y"]) == pytest.approx(
        sorted(written["mean_accuracy"])
    )
    assert any("No finished ITOP run" in text for text in _texts(at, "info"))


def test_a_running_reproduction_without_tables_says_so(env, tiny_root):
    env(tiny_root)
    at = _app("reproductions", rp_run=str(tiny_root / "repro_running"))
    (notes,) = [text for text in _texts(at, "warning") if "still running" in text]
    assert "nothing to show yet" in notes
    assert any("No trained network has finished yet" in text for text in _texts(at, "info"))


def test_no_reproduction_says_how_to_make_one(env, tmp_path):
    make_run(tmp_path / "only" / "run", density=0.1, seed=0, accuracy=0.5)
    env(tmp_path / "only")
    at = _app("reproductions")
    assert any("fullspectrum reproduce fs23-table" in text for text in _texts(at, "info"))


@pytest.mark.parametrize("preset", ["quick", "cpu"])
def test_the_cached_reproductions_open_with_their_own_tables(env, preset):
    """The quick and cpu presets' real folders as shipped (their sweeps' run folders left out): their tables shown."""
    shipped = CACHED_REPRODUCTION.parent / f"fs23-{preset}"
    env(shipped.parent)
    at = _app("reproductions", rp_run=str(shipped))
    written = pd.read_csv(shipped / "results.csv")
    tables = [d.value for d in at.dataframe if "accuracy" in d.value.columns]  # one per dataset
    assert len(tables) == written["data"].nunique()
    shown = np.concatenate([table["accuracy"].to_numpy() for table in tables])
    assert shown == pytest.approx(written["mean_accuracy"].to_numpy())
    correlations = next(d.value for d in at.dataframe if "Pearson r [95% CI]" in d.value.columns)
    report = (shipped / "report.md").read_text()
    for value in correlations["Pearson r [95% CI]"]:
        assert value in report  # the trimmed copy reads its correlation from the report


def test_cost_accuracy_figure_one_colour_per_method_with_ci_bars():
    results = pd.DataFrame({"label": ["snip", "PAGS@0 over snip"], "method": ["generator", "pags"],
                            "mean_accuracy": [0.9, 0.92], "ci95_low": [0.85, float("nan")],
                            "ci95_high": [0.95, float("nan")], "iterations": [840, 840], "density": 0.05,
                            "n": [3, 1]})  # fmt: skip
    figure = cost_accuracy_figure(results)
    assert [t.name for t in figure.data] == ["generator", "pags"] and figure.layout.xaxis.type == "log"
    assert list(figure.data[0].error_y.array) == pytest.approx([0.05]) and list(
        figure.data[1].error_y.array
    ) == [0]


def test_effective_bars_and_flow_from_tables():
    layers = pd.DataFrame({"layer": ["a", "b"], "kept": [10, 4], "effective": [7, 4], "ineffective": [3, 0]})
    bars = effective_bars(layers)
    assert (
        list(bars.data[0].y) == [7, 4] and list(bars.data[1].y) == [3, 0] and bars.layout.barmode == "stack"
    )
    parts = pd.DataFrame({"partition": ["input", "a", "b"], "units": [4, 5, 2], "live": [4, 3, 2]})
    flow = live_flow(parts).data[0]
    assert list(flow.link.source) == [0, 1, 1] and list(flow.link.target) == [1, 2, 4]
    assert list(flow.link.value) == [4, 3, 2]


def test_loss_curves_are_seed_means_with_their_range():
    curves = pd.DataFrame({"generator": "snip", "kind": ["generator"] * 4 + ["density_only"] * 2, "seed": [0, 0, 1, 1, 0, 0],
                           "step": [0, 10, 0, 10, 0, 10], "loss": [2.0, 1.0, 2.2, 1.4, 9.0, 9.0]})  # fmt: skip
    band, mean = loss_curves_figure(curves).data
    assert list(mean.y) == pytest.approx([2.1, 1.2]) and list(band.y) == pytest.approx([2.2, 1.4, 1.0, 2.0])


def test_an_added_mask_s_ntk_summary_is_the_librarys(env):
    env(CACHED)
    at = _app("graphon_ntk")
    at.number_input(key="gn_inputs").set_value(4)
    at.run()
    path = at.selectbox(key="gn_src_run_run").value
    step = at.selectbox(key=f"gn_src_step_{path}").value
    at.button(key="gn_add").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    source = load_mask_source(("run", path, int(step)))
    config = RunStore.open(path).info["config"]
    expected = mask_ntk_spectrum(source.masks, source.weights, config["model"], config["data"], inputs=4)
    summary = next(d.value for d in at.dataframe if "top5_energy" in d.value.columns).set_index("mask")
    row = summary.loc[f"{source.label} (N=4)"]
    assert row["lambda_max"] == pytest.approx(expected.lambda_max)
    assert row["effective_rank"] == pytest.approx(expected.effective_rank)
