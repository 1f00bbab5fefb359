"""App inspection pages: Graph inspector, PAGS lab and Compare masks under AppTest, and their
pure chart builders (graph, compare, pags)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis.compare import compare_masks
from analysis.embedding import embed_population, network_points
from app.charts.compare import composition_figure, difference_bars, graphon_figure, iou_bars
from app.charts.graph import bipartite_figure, degree_histograms_figure, singular_values_figure
from app.charts.pags import accuracy_figure, embedding_figure, population_3d_figure
from fullspectrum.runs import RunStore
from fullspectrum.spectrum import layer_spectrum, regular_subgraphs, top_singular_values
from fullspectrum.spectrum.graphon import graphon_estimate
from tests.app_fixtures import make_corrupt_run

PAGES = Path(__file__).resolve().parents[1] / "app" / "app_pages"


def _masks(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "conv1.weight": torch.rand(8, 3, 3, 3, generator=g) < 0.4,
        "fc.weight": torch.rand(10, 32, generator=g) < 0.3,
    }


def _train_run(path: Path) -> Path:
    store = RunStore.create(path, kind="train", config={"model": "tiny", "data": "digits", "method": "itop",
                                                        "density": 0.3}, seed=0, device="cpu")  # fmt: skip
    for step, seed in ((0, 0), (10, 1)):
        masks = _masks(seed)
        weights = {name: torch.randn(mask.shape) * mask for name, mask in masks.items()}
        # Recorded with the weights of the moment, which step 0's snapshot keeps and step 10's does not.
        rows = [{"layer": name[: -len(".weight")], **layer_spectrum(mask, weights[name]).as_dict(),
                 "moving_distance": 0.0, "exploration_rate": 0.3} for name, mask in masks.items()]  # fmt: skip
        store.add_snapshot(
            step, rows, [{"split": "val", "loss": 1.0, "accuracy": 0.5, "exploration_rate": 0.3}]
        )
        store.save_masks(step, masks, weights if step == 0 else None)
    store.finish(final={"test_accuracy": 0.5})
    return path


@pytest.fixture(scope="module")
def run_root(tmp_path_factory, tiny_pags_run) -> Path:
    root = tmp_path_factory.mktemp("inspect") / "runs"
    _train_run(root / "a_train")
    shutil.copytree(tiny_pags_run, root / "b_pags")  # pages may write (trainings, candidates) beside it
    return root


@pytest.fixture
def app_env(run_root, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(run_root))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    return run_root


def _page(name: str, **session) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=120)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _titles(at: AppTest) -> list[str]:
    import json

    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]


# -- Graph inspector -------------------------------------------------------------------------------------


def test_graph_inspector_loads_and_reacts(app_env):
    at = _page("graph_inspector", selected_run=str(app_env / "a_train"))
    assert {s.label for s in at.selectbox} >= {"Run", "Step", "Layer", "Show degree class"}
    assert len(at.get("plotly_chart")) == 3
    assert at.selectbox(key=f"gi_step_{app_env / 'a_train'}").value == 10
    first = [m.value for m in at.metric]
    recorded = RunStore.open(app_env / "a_train").layers().query("step == 10 and layer == 'conv1'")
    assert (
        first[1] == f"{recorded.lambda_w.iloc[0]:.4g}" != "nan"
    )  # the run's recorded λ, not a mask-only NaN
    titles = _titles(at)
    assert titles[0].startswith("conv1:")
    at.selectbox(key=f"gi_layer_{app_env / 'a_train'}").set_value("fc").run()
    assert not at.exception
    assert [m.value for m in at.metric] != first
    assert _titles(at)[0].startswith("fc:")
    classes = at.selectbox(key=f"gi_class_{app_env / 'a_train'}_fc")
    degree = classes.options[-1]
    classes.set_value(int(degree.split("=")[1])).run()
    assert "alone" in _titles(at)[0]


def test_graph_inspector_shows_class_lambdas_where_the_snapshot_kept_weights(app_env):
    run = app_env / "a_train"
    at = _page("graph_inspector", selected_run=str(run))
    at.selectbox(key=f"gi_step_{run}").set_value(0).run()  # this snapshot kept its weights
    assert not at.exception
    classes = at.dataframe[0].value
    assert classes.loc[classes.qualifies, "lambda_c"].notna().all() and classes.qualifies.any()
    assert not any("stores no weights" in caption.value for caption in at.caption)
    recorded = RunStore.open(run).layers().query("step == 0 and layer == 'conv1'")
    assert at.metric[1].value == f"{recorded.lambda_w.iloc[0]:.4g}"  # recomputed from them: the same λ
    at.selectbox(key=f"gi_step_{run}").set_value(10).run()  # masks only
    assert at.dataframe[0].value["lambda_c"].isna().all()
    assert any("stores no weights" in caption.value for caption in at.caption)


def test_graph_inspector_corrupt_run_and_empty_state(app_env, tmp_path, monkeypatch):
    broken = make_corrupt_run(tmp_path / "broken_root" / "broken")
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(broken.parent))
    at = _page("graph_inspector")
    assert at.error and "cannot be read" in at.error[0].value
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(empty))
    at = _page("graph_inspector")
    assert at.info and "No runs yet" in at.info[0].value


# -- Compare masks ---------------------------------------------------------------------------------------


def test_compare_masks_defaults_and_changes(app_env):
    run = str(app_env / "a_train")
    at = _page("compare_masks", selected_run=run)
    assert at.selectbox(key="cmp_step_a").value == 10 and at.selectbox(key="cmp_step_b").value == 0
    summary = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert summary and summary[0].startswith("- Across 2 layers the mean IoU is")
    assert "of each mask's kept weights are shared" in summary[0] or "budgets differ" in summary[0]
    assert len(at.get("plotly_chart")) == 4
    at.multiselect(key="cmp_metrics").set_value(["lambda_w"]).run()
    table = next(frame.value for frame in at.dataframe if "lambda_w_a" in frame.value.columns)
    assert table.lambda_w_a.isna().all() and table.lambda_w_b.notna().all()  # step 0 kept its weights
    at.selectbox(key="cmp_step_b").set_value(10).run()
    assert not at.exception
    summary = [m.value for m in at.markdown if m.value.startswith("- ")]
    assert summary[0].startswith("- A and B are the same mask")
    at.selectbox(key="cmp_layer").set_value("fc").run()
    assert "fc: degree-sorted adjacency" in " ".join(_titles(at))


def test_compare_masks_candidates_from_the_pags_lab(app_env):
    run = str(app_env / "b_pags")
    at = _page(
        "compare_masks",
        compare_a={"kind": "candidate", "run": run, "candidate": 1},
        compare_b={"kind": "candidate", "run": run, "candidate": -1},
    )
    assert at.selectbox(key="cmp_cand_a").value == 1
    labels = [m.value for m in at.markdown if m.value.startswith("**A**")]
    assert labels == ["**A** = b_pags: candidate 1 · **B** = b_pags: base mask"]


def test_compare_masks_bad_source_is_an_error_not_an_exception(app_env, tmp_path):
    broken = make_corrupt_run(tmp_path / "broken")
    at = _page("compare_masks", compare_a={"kind": "upload", "run": None})
    assert not at.exception
    at = AppTest.from_file(str(PAGES / "compare_masks.py"), default_timeout=60)
    at.session_state["compare_a"] = {"kind": "run", "run": str(broken), "step": 0}
    at.run()
    assert not at.exception  # a corrupt run is not offered: the picker falls back to a readable one


# -- PAGS lab --------------------------------------------------------------------------------------------


def test_pags_lab_shows_the_population(app_env):
    at = _page("pags_lab")
    assert at.selectbox(key="pags_run").value == str(app_env / "b_pags")
    titles = _titles(at)
    assert titles[0].startswith("Population") and titles[1].startswith("PCA")  # 6 masks: PCA fallback
    winners = [frame.value for frame in at.dataframe if "winner" in frame.value.columns]
    assert len(winners) == 1 and len(winners[0]) == 3  # one winner per MLP layer
    assert {b.label for b in at.button} >= {"Start sampling", "Open in Compare masks", "Train both"}
    at.selectbox(key="pags_pick_b").set_value(2).run()
    at.button(key="pags_compare").click().run()
    assert not at.exception
    assert at.session_state["compare_a"] == {
        "kind": "candidate",
        "run": str(app_env / "b_pags"),
        "candidate": -2,
    }
    assert at.session_state["compare_b"]["candidate"] == 2


def test_pags_lab_trains_the_two_picked_masks(app_env, monkeypatch):
    from fullspectrum.checkpoints.mask_file import load_mask_checkpoint
    from fullspectrum.runs import jobs
    from fullspectrum.sampling import regenerate_candidate

    started = []  # the worker itself is tested in test_app_core; here: what the page asks it to train
    monkeypatch.setattr(jobs, "start_training", lambda options, run_dir: started.append((options, run_dir)))
    at = _page("pags_lab")
    at.selectbox(key="pags_pick_b").set_value(2).run()
    at.button(key="pags_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [Path(run_dir).name.rsplit("_", 1)[-1] for _, run_dir in started] == ["assembled", "candidate2"]
    assert all(options["method"] == "static" for options, _ in started)
    candidate = load_mask_checkpoint(started[1][0]["mask"])
    regenerated = regenerate_candidate(app_env / "b_pags", 2).masks
    assert all(torch.equal(candidate.masks[name], regenerated[name]) for name in regenerated)


def test_pags_lab_empty_state(tmp_path, monkeypatch):
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(tmp_path))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    at = _page("pags_lab")
    assert any("No finished PAGS run" in i.value for i in at.info)


# -- chart builders --------------------------------------------------------------------------------------


def _mask(shape, density, seed):
    return np.random.default_rng(seed).random(shape) < density


def test_bipartite_figure_colours_classes_and_marks_dead_units():
    mask = _mask((10, 40), 0.2, 0)
    mask[:, :5] = False
    mask[0] = False
    classes = regular_subgraphs(mask)
    figure = bipartite_figure(mask, classes, name="fc")
    names = [trace.name for trace in figure.data]
    edge_traces = [t for t in figure.data if t.mode == "lines"]
    assert len(edge_traces) == len(classes)
    assert sum(len([v for v in t.x if v is not None]) // 2 for t in edge_traces) == mask.sum()
    assert len({t.line.color for t in edge_traces}) == len(classes)  # each class its own colour
    assert "dead output units (1)" in names
    assert f"dead input units ({int((mask.sum(axis=0) == 0).sum())})" in names
    assert figure.layout.meta["reduction"] == ""
    assert figure.layout.xaxis.title.text and figure.layout.yaxis.title.text


def test_bipartite_figure_selected_class_alone():
    mask = _mask((12, 30), 0.3, 1)
    classes = regular_subgraphs(mask)
    chosen = classes[-1]
    figure = bipartite_figure(mask, classes, selected=chosen.d_c)
    edge_traces = [t for t in figure.data if t.mode == "lines"]
    assert len(edge_traces) == 1 and edge_traces[0].name.startswith(f"d_c={chosen.d_c}")
    assert len([v for v in edge_traces[0].x if v is not None]) // 2 == chosen.edges
    assert "alone" in figure.layout.title.text


def test_bipartite_figure_states_its_reduction_on_large_layers():
    mask = _mask((256, 1024), 0.3, 2)
    figure = bipartite_figure(mask, regular_subgraphs(mask), seed=3)
    assert "reduced:" in figure.layout.title.text and "random, seed 3" in figure.layout.title.text
    edges = sum(len([v for v in t.x if v is not None]) // 2 for t in figure.data if t.mode == "lines")
    assert 0 < edges <= 3000
    shown = int(figure.layout.meta["reduction"].split()[1])
    rows = [t for t in figure.data if t.name == "output units"][0]
    assert len(rows.y) <= shown  # the drawn outputs carry all their edges
    conv = _mask((64, 64, 3, 3), 0.5, 4)
    channel = bipartite_figure(conv, (), view="channels")
    assert "channel-level view" in channel.layout.title.text
    assert channel.layout.meta["level"] == "channels"


def test_degree_histograms_and_singular_values():
    mask = _mask((20, 30), 0.3, 5)
    histograms = degree_histograms_figure(mask)
    assert len(histograms.data) == 2
    assert histograms.layout.xaxis.title.text.startswith("input-unit degree")
    assert histograms.layout.xaxis2.title.text.startswith("output-unit degree")
    assert sum(histograms.data[0].y) == 30 and sum(histograms.data[1].y) == 20
    spectrum = layer_spectrum(mask)
    values = top_singular_values(mask, k=10)
    figure = singular_values_figure(values, spectrum.d_left, spectrum.d_right)
    assert len(figure.data) == 2
    bound = math.sqrt(spectrum.d_left - 1) + math.sqrt(spectrum.d_right - 1)
    assert figure.data[1].y[0] == pytest.approx(bound)
    assert f"{bound - values[1]:.3g}" in figure.layout.title.text
    assert f"{spectrum.delta_r:.3g}" in figure.layout.title.text  # the chart's Δr is the engine's
    assert figure.layout.yaxis.title.text == "singular value"


def test_compare_charts():
    a = {
        "conv.weight": torch.from_numpy(_mask((8, 4, 3, 3), 0.4, 6)),
        "fc.weight": torch.from_numpy(_mask((6, 20), 0.5, 7)),
    }
    b = {name: torch.from_numpy(_mask(tuple(m.shape), 0.2, 8)) for name, m in a.items()}
    result = compare_masks(a, b)
    bars = difference_bars(result.long(("delta_r", "delta_r_imdb")))
    assert len(bars.data) == 2
    assert list(bars.data[0].x) == ["conv", "fc"]
    np.testing.assert_allclose(bars.data[0].y, result.table["delta_r_delta"])
    assert iou_bars(result.table).layout.yaxis.title.text == "IoU"
    ga, gb = graphon_estimate(a["conv.weight"]).values, graphon_estimate(b["conv.weight"]).values
    heat = graphon_figure(ga, gb, layer="conv")
    assert [t.type for t in heat.data] == ["heatmap"] * 3
    np.testing.assert_allclose(heat.data[2].z, gb - ga)
    composition = composition_figure(result.classes, "conv")
    assert [t.name.split()[0] for t in composition.data] == ["A", "B"]


def test_pags_charts_highlight_base_and_assembled():
    rows = []
    for candidate in (-2, -1, 0, 1, 2):
        for layer in ("l1", "l2"):
            value = float(candidate + 3)
            rows.append({"candidate": candidate, "layer": layer, "delta_r": value, "lambda_w": 1.0,
                         "delta_r_imdb": np.nan if candidate == 2 else value, "lambda_imsg": 0.0,
                         "score": value, "won": False})  # fmt: skip
    population = pd.DataFrame(rows)
    points = network_points(population)
    figure = population_3d_figure(points)
    names = [t.name for t in figure.data]
    assert names == ["candidates (2)", "base mask", "assembled mask"]
    assert figure.data[1].x[0] == 2.0 and figure.data[2].x[0] == 1.0
    assert "1 masks with an undefined coordinate" in figure.layout.title.text
    assert figure.layout.scene.zaxis.title.text == "mean Δr_imdb"
    embedding = embed_population(population)
    emb = embedding_figure(embedding.frame, embedding.method, embedding.note)
    assert emb.layout.title.text.startswith("PCA") and emb.layout.xaxis.title.text == "PCA 1"
    assert [t.name for t in emb.data][1:] == ["base mask", "assembled mask"]
    assert embedding_figure(embedding.frame, "umap").layout.title.text.startswith("UMAP")
    evals = pd.DataFrame({"step": [0, 1], "split": ["val", "val"], "accuracy": [0.1, 0.5]})
    curves = accuracy_figure({"base": evals, "assembled": evals})
    assert len(curves.data) == 2 and curves.layout.yaxis.title.text == "accuracy"
