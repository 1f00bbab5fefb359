"""Hugging Face model folders in the app: a sharded LLaMA-shaped folder under a run
folder is analysed from the Runs page into a run in the workspace (transformer layer names, fused
q/k/v split, 2:4 detected) and selected; a folder anywhere else is refused in one line naming it;
an analysis run's layers filter by block and projection and draw as a block × projection heat map;
the Graph inspector picks layers by block and projection and explains an N:M layer.

The folders are written by the tests (``tests/test_sharded_builders.py``). Most tests run the worker's
work in the test process (``start_analysis`` replaced by :func:`_inline`); one starts the real worker.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from test_sharded_builders import LLAMA_PROJECTIONS, gpt2_state, llama_state, write_sharded

from app import model_folders
from app.charts.blocks import block_grid, block_heatmap
from fullspectrum.errors import FullSpectrumError
from fullspectrum.runs import RunStore
from fullspectrum.runs.jobs import JOB_LOG
from tests.app_fixtures import make_run

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "streamlit_app.py")
BLOCKS = 3
PROJECTIONS = [name.split(".")[-1] for name in LLAMA_PROJECTIONS]


@pytest.fixture
def roots(tmp_path, monkeypatch) -> dict[str, Path]:
    """A run folder holding a training run, a 2:4-pruned 3-block LLaMA and a GPT-2 block (fused c_attn);
    the workspace. The training run is what the sidebar would pick unless the new run is selected."""
    runs = tmp_path / "runs"
    make_run(runs / "run_0", density=0.3, seed=0, accuracy=0.5)
    write_sharded(runs / "models" / "llama-2-4", llama_state(blocks=BLOCKS, nm=(2, 4)))
    write_sharded(runs / "models" / "gpt2", gpt2_state())
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(runs))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.delenv("FULLSPECTRUM_ANY_FOLDER", raising=False)
    return {"runs": runs, "workspace": tmp_path / "workspace", "tmp": tmp_path}


def _inline(folder, run_dir, layers):
    """``start_analysis`` done at once in this process; a failure leaves the worker's log line."""
    try:
        model_folders.analyse_folder(folder, run_dir, layers=layers)
    except FullSpectrumError as error:
        (Path(run_dir) / JOB_LOG).write_text(f"fullspectrum: error: {error}\n")


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _analyse(at: AppTest, typed: str, layers: str = "") -> AppTest:
    at.selectbox(key="runs_folder_pick").set_value(model_folders_choice(at, typed)).run()
    if at.selectbox(key="runs_folder_pick").value == "Another folder…":
        at.text_input(key="runs_folder_path").set_value(typed).run()
    at.text_input(key="runs_folder_layers").set_value(layers).run()
    at.button(key="runs_folder_analyse").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def model_folders_choice(at: AppTest, typed: str) -> str:
    """The picker's option for ``typed`` when it lists it, else "Another folder…"."""
    options = at.selectbox(key="runs_folder_pick").options
    return typed if typed in options else "Another folder…"


def _runs(workspace: Path) -> list[Path]:
    return sorted(p for p in workspace.glob("model_*") if p.is_dir()) if workspace.is_dir() else []


def _errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def _layers_table(at: AppTest) -> pd.DataFrame:
    return next(frame.value for frame in at.dataframe if "lambda_w" in frame.value.columns)


def _decode(value):
    """Plotly >= 6 sends numeric arrays as ``{"dtype", "bdata"}`` (base64); turn them back into lists."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            shape = value.get("shape")  # "3, 7" for a 2-D array
            return (
                array.reshape([int(n) for n in str(shape).split(",")]).tolist() if shape else array.tolist()
            )
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _heatmap(at: AppTest) -> dict:
    figures = [_decode(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]
    return next(f for f in figures if f["data"] and f["data"][0]["type"] == "heatmap")


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# -- analysing a folder --------------------------------------------------------------------------------


def test_a_llama_folder_is_analysed_into_a_selected_run_with_transformer_names_and_2_4(roots, monkeypatch):
    monkeypatch.setattr(model_folders, "start_analysis", _inline)
    folder = roots["runs"] / "models" / "llama-2-4"
    before = _files(folder)
    at = _analyse(_page(), str(folder))
    [run] = _runs(roots["workspace"])
    assert at.session_state["selected_run"] == str(run)
    assert RunStore.open(run).status == "finished"
    assert _files(folder) == before  # the user's folder is only read
    assert any("llama-2-4" in str(s.value) and "analysed and selected" in str(s.value) for s in at.success)
    table = _layers_table(at)
    expected = {f"model.layers.{b}.{p}" for b in range(BLOCKS) for p in LLAMA_PROJECTIONS} | {"lm_head"}
    assert set(table["layer"]) == expected
    patterns = dict(zip(table["layer"], table["nm_pattern"], strict=True))
    assert patterns["model.layers.0.self_attn.q_proj"] == "2:4"
    assert {patterns[name] for name in expected - {"lm_head"}} == {"2:4"}
    assert patterns["lm_head"] == ""  # pruned at random
    row = table.set_index("layer").loc["model.layers.2.mlp.down_proj"]
    assert (row["block"], row["projection"]) == ("model.layers.2", "down_proj")


def test_a_fused_qkv_is_split_into_q_k_v(roots, monkeypatch):
    monkeypatch.setattr(model_folders, "start_analysis", _inline)
    at = _analyse(_page(), "models/gpt2")  # relative to a run folder
    assert not _errors(at), _errors(at)
    layers = set(_layers_table(at)["layer"])
    assert {f"transformer.h.0.attn.c_attn.{p}" for p in "qkv"} <= layers
    assert "transformer.h.0.attn.c_attn" not in layers


def test_the_layers_pattern_picks_a_subset(roots, monkeypatch):
    monkeypatch.setattr(model_folders, "start_analysis", _inline)
    at = _analyse(_page(), str(roots["runs"] / "models" / "llama-2-4"), layers=r"layers\.1\.mlp")
    assert sorted(_layers_table(at)["layer"]) == [
        f"model.layers.1.mlp.{p}" for p in ("down_proj", "gate_proj", "up_proj")
    ]


@pytest.mark.slow
def test_the_real_worker_shows_progress_and_finishes(roots):
    folder = roots["runs"] / "models" / "llama-2-4"
    at = _page()
    at.selectbox(key="runs_folder_pick").set_value(str(folder)).run()
    at.button(key="runs_folder_analyse").click().run()
    assert not _errors(at), _errors(at)
    bars = [str(bar.proto.text) for bar in at.get("progress")]
    deadline = time.monotonic() + 180
    while at.session_state["_folder_jobs"] and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
        bars += [str(bar.proto.text) for bar in at.get("progress")]
    assert bars and all(text.startswith("Analysing ") for text in bars), bars
    assert not at.session_state["_folder_jobs"], "the worker did not finish in 180 s"
    [run] = _runs(roots["workspace"])
    assert RunStore.open(run).status == "finished"
    info = RunStore.open(run).info
    assert info["progress"] == {"done": 3 * 7 + 1, "total": 3 * 7 + 1}
    assert at.session_state["selected_run"] == str(run)


# -- refused folders -------------------------------------------------------------------------------------


def _refusals(tmp: Path, runs: Path) -> dict[str, str]:
    outside = tmp / "elsewhere" / "model"
    write_sharded(outside, llama_state(blocks=1))
    (runs / "link").symlink_to(outside)
    (runs / "not-a-model").mkdir()
    return {
        "absolute path outside": str(outside),
        "..": "models/../../elsewhere/model",
        "link out": str(runs / "link"),
        "missing": "models/nothing-here",
        "not a model folder": str(runs / "not-a-model"),
    }


@pytest.mark.parametrize("case", ["absolute path outside", "..", "link out", "missing", "not a model folder"])
def test_a_folder_that_is_not_a_model_under_the_run_folders_is_refused_in_one_line(roots, monkeypatch, case):
    started = []
    monkeypatch.setattr(model_folders, "start_analysis", lambda *args: started.append(args))
    typed = _refusals(roots["tmp"], roots["runs"])[case]
    at = _analyse(_page(), typed)
    errors = _errors(at)
    assert len(errors) == 1 and typed in errors[0], errors
    assert "\n" not in errors[0] and "Traceback" not in errors[0]
    assert started == [] and _runs(roots["workspace"]) == []


def test_a_pattern_that_keeps_no_layer_is_refused_naming_the_folder(roots, monkeypatch):
    monkeypatch.setattr(model_folders, "start_analysis", _inline)
    at = _analyse(_page(), "models/llama-2-4", layers="no_such_layer")
    [error] = _errors(at)
    assert error.startswith("models/llama-2-4 cannot be analysed: layers 'no_such_layer' matches none"), error
    assert _runs(roots["workspace"]) == []


def test_a_failed_worker_is_one_line_naming_the_folder_and_leaves_no_run(roots, monkeypatch):
    def failing(folder, run_dir, layers):
        (Path(run_dir) / JOB_LOG).write_text(
            f"Traceback...\nfullspectrum: error: {run_dir}/masks: disk full\n"
        )

    monkeypatch.setattr(model_folders, "start_analysis", failing)
    at = _analyse(_page(), "models/llama-2-4")
    [error] = _errors(at)
    assert error.startswith("models/llama-2-4 could not be analysed: model_llama-2-4"), error
    assert str(roots["workspace"]) not in error  # the server's run folder is not shown
    assert _runs(roots["workspace"]) == []


# -- hundreds of layers: filters and the heat map ------------------------------------------------------------


@pytest.fixture
def analysed(roots, monkeypatch) -> AppTest:
    monkeypatch.setattr(model_folders, "start_analysis", _inline)
    return _analyse(_page(), "models/llama-2-4")


def test_the_block_and_projection_filters_narrow_the_table(analysed):
    at = analysed
    run = at.session_state["selected_run"]
    assert len(_layers_table(at)) == BLOCKS * 7 + 1
    at.multiselect(key=f"runs_blocks_{run}").set_value(["model.layers.1"]).run()
    table = _layers_table(at)
    assert set(table["block"]) == {"model.layers.1"} and len(table) == 7
    at.multiselect(key=f"runs_projections_{run}").set_value(["down_proj", "q_proj"]).run()
    assert sorted(_layers_table(at)["layer"]) == [
        "model.layers.1.mlp.down_proj",
        "model.layers.1.self_attn.q_proj",
    ]


def test_the_heat_map_has_one_cell_per_block_and_projection(analysed):
    at = analysed
    run = at.session_state["selected_run"]
    at.selectbox(key=f"runs_heatmap_metric_{run}").set_value("lambda_w").run()
    trace = _heatmap(at)["data"][0]
    assert trace["y"] == [f"model.layers.{b}" for b in range(BLOCKS)]
    assert sorted(trace["x"]) == sorted(PROJECTIONS)
    z = np.array(trace["z"], dtype=float)
    assert z.shape == (BLOCKS, len(PROJECTIONS)) and np.isfinite(z).all()
    table = _layers_table(at).set_index("layer")
    for b, block in enumerate(trace["y"]):
        for p, projection in enumerate(trace["x"]):
            name = next(n for n in table.index if n.startswith(f"{block}.") and n.endswith(f".{projection}"))
            assert z[b, p] == pytest.approx(table.loc[name, "lambda_w"])
    assert trace["colorbar"]["title"]["text"]


def test_block_grid_orders_blocks_as_numbers_and_leaves_a_missing_cell_blank():
    table = pd.DataFrame(
        {
            "block": ["m.layers.10", "m.layers.2", "m.layers.2", ""],
            "projection": ["q_proj", "q_proj", "down_proj", "lm_head"],
            "delta_r": [1.0, 2.0, 3.0, 9.0],
        }
    )
    grid = block_grid(table, "delta_r")
    assert list(grid.index) == ["m.layers.2", "m.layers.10"]
    assert list(grid.columns) == ["q_proj", "down_proj"]
    assert np.isnan(grid.loc["m.layers.10", "down_proj"]) and grid.loc["m.layers.2", "down_proj"] == 3.0
    colour_bar = block_heatmap(table, "delta_r", label="Δr").data[0].colorbar.title.text
    assert colour_bar == "Δr"


# -- Graph inspector ---------------------------------------------------------------------------------------


def test_the_inspector_picks_by_block_and_projection_and_explains_2_4(analysed):
    at = analysed
    run = at.session_state["selected_run"]
    at.switch_page("app_pages/graph_inspector.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key=f"gi_block_{run}").set_value("model.layers.2").run()
    at.selectbox(key=f"gi_projection_{run}").set_value("down_proj").run()
    layer = at.selectbox(key=f"gi_layer_{run}")
    assert layer.options == ["model.layers.2.mlp.down_proj"]
    assert any("2:4 sparse" in str(i.value) and "groups of 4" in str(i.value) for i in at.info)
    at.selectbox(key=f"gi_block_{run}").set_value("any").run()
    at.selectbox(key=f"gi_projection_{run}").set_value("any").run()
    assert len(at.selectbox(key=f"gi_layer_{run}").options) == BLOCKS * 7 + 1
    at.selectbox(key=f"gi_layer_{run}").set_value("lm_head").run()
    assert not any("sparse: every output unit" in str(i.value) for i in at.info)  # lm_head is not N:M


def test_a_model_too_large_for_stored_masks_says_so_in_the_table_and_the_inspector(roots, monkeypatch):
    monkeypatch.setattr(model_folders, "start_analysis", _inline)
    monkeypatch.setattr(model_folders, "MASKS_LIMIT", 100)  # the tiny LLaMA's layers hold more
    at = _analyse(_page(), "models/llama-2-4")
    run = Path(at.session_state["selected_run"])
    assert RunStore.open(run).mask_steps() == []
    assert len(_layers_table(at)) == BLOCKS * 7 + 1  # the table is complete all the same
    assert any("masks not stored" in str(i.value) for i in at.info)
    at.switch_page("app_pages/graph_inspector.py")
    at.run()
    assert any(str(i.value).startswith("No masks to draw: masks not stored") for i in at.info)
