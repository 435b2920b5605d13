"""The recommendation playground's "because you liked …" in a real browser (Debian's
Chromium driven by Playwright, as tests/integration/test_dashboard_browser.py does): the
explain box, the titles of the user's liked items, no console error and no CSP violation
(``style-src 'self'``). The page is screenshotted into ``test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser import TEST_ARTIFACTS, admin_settings, chromium, logged_in
from helpers import live_server, open_registry
from playwright.sync_api import expect
from test_recommend_api import catalogue, history

from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import RecommendationData, train_recommendation

ARTIFACTS = TEST_ARTIFACTS / "dashboard"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server with the synthetic catalogue and ``shows`` (EASE) trained on it."""
    settings, key = admin_settings(tmp_path_factory, "recommend-explain")
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
    with chromium(ARTIFACTS) as browser:
        page, problems = logged_in(browser, server)
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
