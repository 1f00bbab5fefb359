"""The app in a real browser: ``fullspectrum app`` headless on a free localhost port, driven
by Debian's Chromium through Playwright's Python client (never a browser download).

Every page must render without an exception element and draw its plotly charts;
a live-training run started from the page must make its chart grow. Screenshots
go to ``test-artifacts/``. Without ``/usr/bin/chromium`` the tests skip (CI
installs it from the Debian packages when it runs as root).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.app_fixtures import app_server, make_corrupt_run, make_pags_run, make_runs

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# (url path, title, whether the page draws plotly charts with the test runs)
PAGES = (
    ("", "Runs", True),
    ("trajectories", "Trajectories", True),
    ("graph_inspector", "Graph inspector", True),
    ("pags_lab", "PAGS lab", True),
    ("compare_masks", "Compare masks", True),
    ("live_training", "Live training", False),
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    make_runs(root / "runs")
    make_pags_run(root / "runs" / "pags_random")
    make_corrupt_run(root / "runs" / "zz_broken")
    with app_server(root / "runs", root / "workspace", log_path=root / "app.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def _settle(page, timeout_ms: int = 30_000) -> None:
    """Wait for the script run to finish (Streamlit's status widget shows 'Running...' meanwhile)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(500)


def _exceptions(page) -> list[str]:
    return [element.inner_text()[:300] for element in page.query_selector_all('[data-testid="stException"]')]


@pytest.mark.parametrize(("path", "title", "charts"), PAGES, ids=[title for _, title, _ in PAGES])
def test_every_page_renders_without_exceptions(app_url, browser, path, title, charts):
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    try:
        page.goto(f"{app_url}/{path}")
        _settle(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.wait_for_selector(f'h1:has-text("{title}")', timeout=30_000)
        if charts:
            page.wait_for_selector(".js-plotly-plot", timeout=30_000)
            assert page.locator(".js-plotly-plot").count() >= 1
        page.screenshot(path=str(ARTIFACTS / f"page_{title.lower().replace(' ', '_')}.png"), full_page=True)
        assert _exceptions(page) == []
    finally:
        page.close()


def _points(page) -> int:
    """Markers drawn in the live page's 3-D chart (its traces' points), read from the plotly element."""
    return page.evaluate(
        "() => { const plot = document.querySelector('.js-plotly-plot');"
        " if (!plot || !plot._fullData) return 0;"
        " return plot._fullData.reduce((n, t) => n + (t._length || (t.x ? t.x.length : 0) || 0), 0); }"
    )


def test_live_training_chart_updates_and_stops(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        page.goto(f"{app_url}/live_training")
        _settle(page)
        page.get_by_label("Epochs").fill("300")  # long enough to be still running whatever the machine
        page.get_by_label("Snapshot interval (iterations, 0 = preset)").fill("3")
        page.get_by_label("Run name").fill("browser_live")
        page.get_by_role("button", name="Start training").click()
        page.wait_for_selector(".js-plotly-plot", timeout=90_000)
        first = _points(page)
        deadline = time.monotonic() + 90
        while _points(page) <= first and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        assert _points(page) > first, "the live chart did not grow"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "live_training_running.png"), full_page=True)
        main = page.get_by_test_id("stMainBlockContainer")  # not Streamlit's own header "Stop" (a rerun)
        main.get_by_role("button", name="Stop").click()
        main.get_by_role("button", name="Resume").wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "live_training_stopped.png"), full_page=True)
        assert _exceptions(page) == []
    finally:
        page.close()


def test_uploaded_checkpoint_becomes_an_analysis_run(app_url, browser, tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    state = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 10)).state_dict()
    state["0.weight"] = state["0.weight"] * (torch.rand_like(state["0.weight"]) < 0.3)
    checkpoint = tmp_path / "uploaded_model.pt"
    torch.save(state, checkpoint)
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    try:
        page.goto(app_url)
        _settle(page)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(checkpoint))
        page.get_by_role("button", name="Analyse checkpoint").click()
        page.get_by_text("analysed; pick it in the sidebar").wait_for(timeout=90_000)
        _settle(page)
        assert page.get_by_text("upload_uploaded_model").count() >= 1  # listed like any other run
        page.screenshot(path=str(ARTIFACTS / "runs_upload.png"), full_page=True)
        assert _exceptions(page) == []
    finally:
        page.close()
