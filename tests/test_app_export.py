"""Downloads (app/export.py): a table's CSV button serves exactly the table, a chart's toolbar saves a
PNG named after it, its Export popover offers PNG/SVG rendered by kaleido on demand, and without kaleido
or Chromium the popover says so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from app import export
from tests.app_fixtures import make_run

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
CHROMIUM = Path("/usr/bin/chromium")


def _tiny_page() -> None:
    import pandas as pd
    import plotly.graph_objects as go

    from app import export

    frame = pd.DataFrame({"layer": ["fc1", "fc2"], "density": [0.1, 0.25]}, index=pd.Index([3, 7], name="i"))
    export.table(frame, "Layers · run 1")
    export.chart(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), "Curve · run 1", key="curve")


@pytest.fixture
def served(monkeypatch) -> list[tuple[bytes, str, str | None]]:
    """Every file the AppTest run hands to Streamlit's media storage: (bytes, mime, file name)."""
    files = []
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        files.append((path_or_data, mimetype, filename))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return files


def test_a_table_downloads_as_the_csv_of_its_rows(served):
    at = AppTest.from_function(_tiny_page, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    csv = [button for button in at.get("download_button") if button.proto.label == "CSV"]
    assert len(csv) == 1
    expected = pd.DataFrame(
        {"layer": ["fc1", "fc2"], "density": [0.1, 0.25]}, index=pd.Index([3, 7], name="i")
    )
    assert [(data, mime, name) for data, mime, name in served if mime == "text/csv"] == [
        (expected.to_csv().encode("utf-8"), "text/csv", "Layers_run_1.csv".lower())
    ]


def test_a_hidden_or_plain_index_is_not_exported():
    frame = pd.DataFrame({"a": [1, 2]})
    assert export.table_csv(frame) == b"a\n1\n2\n"
    named = frame.set_axis(pd.Index(["x", "y"], name="k"))
    assert export.table_csv(named) == b"k,a\nx,1\ny,2\n"
    assert export.table_csv(named, hide_index=True) == b"a\n1\n2\n"


def test_a_chart_saves_under_its_name_and_offers_png_and_svg_on_demand(monkeypatch):
    monkeypatch.setattr(export, "image_export_problem", lambda: None)
    rendered = []
    monkeypatch.setattr(export, "figure_image", lambda figure_json, fmt: rendered.append(fmt) or b"")
    at = AppTest.from_function(_tiny_page, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    config = json.loads(at.get("plotly_chart")[0].proto.config)
    assert config["toImageButtonOptions"]["filename"] == "curve_run_1"
    images = {b.proto.label: b.proto for b in at.get("download_button") if b.proto.label != "CSV"}
    assert set(images) == {"PNG", "SVG"}
    assert all(proto.deferred_file_id for proto in images.values())  # rendered on click only
    assert rendered == []


def test_without_deferred_downloads_a_render_button_comes_first(monkeypatch):
    monkeypatch.setattr(export, "image_export_problem", lambda: None)
    monkeypatch.setattr(export, "DEFERRED_DOWNLOADS", False)
    monkeypatch.setattr(export, "figure_image", lambda figure_json, fmt: f"<{fmt}>".encode())
    at = AppTest.from_function(_tiny_page, default_timeout=30).run()
    assert [b.proto.label for b in at.get("download_button")] == ["CSV"]
    next(b for b in at.button if b.label.startswith("Render PNG and SVG")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    images = [b.proto for b in at.get("download_button") if b.proto.label != "CSV"]
    assert [proto.label for proto in images] == ["PNG", "SVG"] and all(proto.url for proto in images)


def test_without_kaleido_or_chromium_the_popover_says_so_in_one_line(monkeypatch):
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None)
    assert "kaleido" in export.image_export_problem()
    monkeypatch.undo()
    monkeypatch.setattr(export, "_find_chromium", lambda: None)
    problem = export.image_export_problem()
    assert problem is None or "Chromium" in problem  # None only where kaleido itself is missing
    monkeypatch.setattr(export, "image_export_problem", lambda: "PNG/SVG export needs Chromium.")
    at = AppTest.from_function(_tiny_page, default_timeout=30).run()
    assert not at.exception
    assert [c.value for c in at.caption] == ["PNG/SVG export needs Chromium."]
    assert [b.proto.label for b in at.get("download_button")] == ["CSV"]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium for kaleido")
def test_kaleido_renders_a_figure_as_svg_and_png():
    pytest.importorskip("kaleido")
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]), layout={"title": {"text": "a curve"}})
    svg = export.figure_image(figure.to_json(), "svg")
    assert svg.startswith(b"<svg") and b"a curve" in svg
    assert export.figure_image(figure.to_json(), "png").startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="unknown image format 'gif'"):
        export.figure_image(figure.to_json(), "gif")


def test_the_trajectories_page_offers_its_tables_as_csv(tmp_path, monkeypatch, served):
    run = make_run(tmp_path / "runs" / "r", density=0.2, seed=0, accuracy=0.9)
    monkeypatch.setenv("FULLSPECTRUM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FULLSPECTRUM_WORKSPACE", str(tmp_path / "workspace"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["selected_run"] = str(run)
    at.run()
    at.switch_page("app_pages/trajectories.py").run()
    assert not at.exception, [e.value for e in at.exception]
    names = {name for _, mime, name in served if mime == "text/csv"}
    assert any(name.startswith("trajectory_values") for name in names), names
