"""The recommendation playground's "because you liked …" in a real browser (Debian's
Chromium driven by Playwright, as tests/integration/test_dashboard_browser.py does): the
explain box, the titles of the user's liked items, no console error and no CSP violation
(``style-src 'self'``). The page is screenshotted into ``test-artifacts/dashboard/``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import live_server, open_registry, standalone_settings
from test_recommend_api import catalogue, history

from aiweb.config import Settings
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import RecommendationData, train_recommendation
from conftest import create_key

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"

pytestmark = pytest.mark.e2e

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium: apt-get install -y chromium")
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server with the synthetic catalogue and ``shows`` (EASE) trained on it."""
    home = tmp_path_factory.mktemp("recommend-explain")
    settings: Settings = standalone_settings(home)
    key = create_key(settings, ("admin",), name="admin")
    with live_server(settings, name="recommend-explain-e2e") as port:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            assert c.post("/v1/items", json={"items": catalogue()}).status_code == 200
            events = {"interactions": history()}
            assert c.post("/v1/interactions", json=events).status_code == 200
        registry, engine = open_registry(settings)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            train_recommendation(registry, "shows", data, algorithm="ease", actor="tests")
        finally:
            engine.dispose()
        yield {"url": url, "key": key}


def test_the_playground_explains_recommendations_in_chromium(server: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
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
        page.goto(server["url"] + "/")
        expect(page).to_have_url(re.compile(r"/login\?next=/$"))
        page.fill("#token", server["key"])
        page.click("button[type=submit]")
        expect(page).to_have_url(server["url"] + "/")
        page.goto(server["url"] + "/playground")
        page.select_option("#rec-model", "shows")
        page.fill("#user-id", "u0")
        page.check("#rec-explain")
        page.click("#recommend-form button[type=submit]")
        first = page.locator("#rec-items td.because").first
        expect(first).to_contain_text("because you liked space robots story")
        page.wait_for_timeout(300)  # late console messages
        page.screenshot(path=str(ARTIFACTS / "playground-recommend-explain.png"), full_page=True)
        assert problems == [], problems
        browser.close()
