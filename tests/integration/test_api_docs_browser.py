"""The API docs in a real browser with no internet: Debian's Chromium driven by Playwright.

A real uvicorn serves the app; every request that leaves 127.0.0.1 is aborted (and
recorded). ``/docs`` (Swagger UI) must render every operation and run one ("Try it out"),
``/redoc`` must render every operation with ReDoc's styles and search, and neither may
log a console error, a CSP violation or a failed request. Screenshots go to
``test-artifacts/apidocs/``.

Chromium comes from Debian (``apt-get install -y chromium``); ``playwright install`` is
never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browser import TEST_ARTIFACTS, browser_fixture
from helpers import live_server, standalone_settings
from playwright.sync_api import Browser, Page, Route, expect

ARTIFACTS = TEST_ARTIFACTS / "apidocs"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = standalone_settings(tmp_path_factory.mktemp("apidocs"))
    with live_server(settings, name="apidocs-e2e") as port:
        url = f"http://127.0.0.1:{port}"
        schema = httpx.get(url + "/openapi.json", timeout=30).json()
        yield {"url": url, "schema": schema}


browser = browser_fixture(ARTIFACTS)


class Offline:
    """A page whose requests beyond 127.0.0.1 are aborted, and what went wrong on it."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.blocked: list[str] = []
        self.problems: list[str] = []
        self.context.route("**/*", self._only_local)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "requestfailed",
            lambda r: self.problems.append(f"failed: {r.url} {r.failure}"),
        )
        self.page.on(
            "response",
            lambda r: (
                self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None
            ),
        )

    def _only_local(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")

    def _console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def check(self) -> None:
        assert self.blocked == [], self.blocked
        assert self.problems == [], self.problems

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser: Browser) -> Iterator[Offline]:
    tab = Offline(browser)
    yield tab
    tab.close()


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for item in schema["paths"].values()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def shown(schema: dict[str, Any]) -> int:
    """How many operation blocks the viewers show: one under each of an operation's tags."""
    return sum(len(set(operation.get("tags") or ["default"])) for operation in operations(schema))


def test_swagger_ui_renders_and_runs_offline(offline: Offline, server: dict[str, Any]) -> None:
    page = offline.page
    page.goto(server["url"] + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("aiweb")
    assert len(operations(server["schema"])) > 10
    expect(page.locator(".opblock")).to_have_count(shown(server["schema"]))
    # the stylesheet applied: GET blocks get Swagger UI's blue background
    get_block = page.locator(".opblock.opblock-get").first
    assert get_block.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
    # run one operation from the page: GET /livez
    livez = page.locator(".opblock.opblock-get", has=page.locator("[data-path='/livez']"))
    livez.locator(".opblock-summary").click()
    livez.locator("button.try-out__btn").click()
    livez.locator("button.execute").click()
    expect(
        livez.locator(".live-responses-table tr.response .response-col_status").first
    ).to_have_text("200")
    page.screenshot(path=str(ARTIFACTS / "swagger-ui.png"), full_page=False)
    offline.check()


def test_redoc_renders_offline_with_system_fonts(offline: Offline, server: dict[str, Any]) -> None:
    page = offline.page
    page.goto(server["url"] + "/redoc")
    # every operation has its section, "operation/<operationId>" (under each of its tags)
    sections = page.locator("[data-section-id^='operation/']")
    # ReDoc parses the whole schema before it draws anything: ~4 s on a quiet machine,
    # longer beside the rest of a 2-core CI stage, so the first section gets a minute
    expect(sections.first).to_be_visible(timeout=60_000)
    expected = {f"operation/{op['operationId']}" for op in operations(server["schema"])}
    shown_ids = "els => els.map(e => e.getAttribute('data-section-id'))"
    assert set(sections.evaluate_all(shown_ids)) == expected
    summary = next(op["summary"] for op in operations(server["schema"]) if op.get("summary"))
    expect(sections.locator("h2", has_text=summary).first).to_be_visible()
    # ReDoc's styles (styled-components) were let in by the page's nonce
    rules = "() => [...document.querySelectorAll('style')].map(s => s.sheet?.cssRules.length ?? 0)"
    assert sum(page.evaluate(rules)) > 0
    # no web font was asked for; the Redocly logo (a CDN image) was never requested
    assert page.evaluate("() => document.fonts.size") == 0
    assert page.evaluate(
        "() => [...document.images].every(i => !i.src || i.src.startsWith(location.origin))"
    )
    # the search index runs in a blob: worker
    page.fill("input[placeholder='Search...']", "models")
    expect(page.locator("[data-role='search:results'] li").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "redoc.png"), full_page=False)
    offline.check()
