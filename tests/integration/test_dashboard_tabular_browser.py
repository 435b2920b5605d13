"""The tabular report and the playground's waterfall in a real browser (Debian's Chromium
driven by Playwright, as ``test_dashboard_browser.py``): every chart of the three kinds
of version page is drawn by Chart.js, the playground draws a row's waterfall, and no
console error or CSP violation happens. Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from browser import TEST_ARTIFACTS, admin_settings, browser_fixture, logged_in
from helpers import live_server
from playwright.sync_api import Browser, expect
from test_dashboard_tabular import LOAN, train_all

from aiweb.app import create_app

ARTIFACTS = TEST_ARTIFACTS / "dashboard"

pytestmark = pytest.mark.e2e

DRAWN = "id => window.Chart && Chart.getChart(document.getElementById(id)) !== undefined"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings, key = admin_settings(tmp_path_factory, "dashboard-tabular")
    train_all(settings)
    app = create_app(settings)
    with live_server(settings, name="dashboard-tabular-e2e", app=app) as port:
        yield {"url": f"http://127.0.0.1:{port}", "key": key}


browser = browser_fixture(ARTIFACTS)


def test_tabular_charts_render_without_console_errors(
    browser: Browser, server: dict[str, Any]
) -> None:
    url = server["url"]
    page, problems = logged_in(browser, server)

    for name, charts in (
        ("loans", ["chart-calibration", "chart-cost"]),
        ("prices", ["chart-residuals"]),
        ("sensors", ["chart-scores"]),
    ):
        page.goto(f"{url}/models/{name}/versions/1")
        for chart in charts:
            page.wait_for_function(DRAWN, arg=chart)
        page.screenshot(path=str(ARTIFACTS / f"tabular-{name}.png"), full_page=True)
    expect(page.locator("#tabular-metrics")).to_contain_text("Flagged")

    page.goto(url + "/playground?model=loans")
    page.fill("#tabular-row", json.dumps(LOAN))
    page.click("#tabular-form button[type=submit]")
    page.wait_for_function(DRAWN, arg="waterfall")
    expect(page.locator("#waterfall-steps tbody tr")).to_have_count(len(LOAN) + 2)
    page.screenshot(path=str(ARTIFACTS / "tabular-waterfall.png"), full_page=True)
    assert problems == []
