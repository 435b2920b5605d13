"""The tabular report and the playground's waterfall in a real browser (Debian's Chromium
driven by Playwright, as ``test_dashboard_browser.py``): every chart of the three kinds
of version page is drawn by Chart.js, the playground draws a row's waterfall, and no
console error or CSP violation happens. Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import live_server, standalone_settings
from test_dashboard_tabular import LOAN, train_all

from aiweb.app import create_app
from aiweb.config import Settings
from conftest import create_key

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium: apt-get install -y chromium")
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

DRAWN = "id => window.Chart && Chart.getChart(document.getElementById(id)) !== undefined"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("dashboard-tabular")
    settings: Settings = standalone_settings(home)
    key = create_key(settings, ("admin",), name="admin")
    train_all(settings)
    app = create_app(settings)
    with live_server(settings, name="dashboard-tabular-e2e", app=app) as port:
        yield {"url": f"http://127.0.0.1:{port}", "key": key}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def open_page(browser: Browser) -> tuple[Page, list[str]]:
    """A fresh browser context and page; the list collects console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" or "Content Security Policy" in m.text
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_default_timeout(20_000)
    return page, problems


def test_tabular_charts_render_without_console_errors(
    browser: Browser, server: dict[str, Any]
) -> None:
    url = server["url"]
    page, problems = open_page(browser)
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.fill("#token", server["key"])
    page.click("button[type=submit]")
    expect(page).to_have_url(url + "/")

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
