"""Debian's Chromium driven by Playwright, for the browser tests (``test_*_browser.py``):
the browser, a page that collects console errors and CSP violations, the dashboard's
log-in, and the set-up of the servers they drive.

Importing this module skips the importing test module when ``/usr/bin/chromium`` is
missing, and fails it under CI, which must have it (``apt-get install -y chromium``;
``.ci/run`` installs it). ``playwright install`` is never used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import open_registry, register_tiny, standalone_settings

from aiweb.config import Settings
from conftest import create_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TEST_ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium: apt-get install -y chromium")
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@contextmanager
def chromium(artifacts: Path) -> Iterator[Browser]:
    """Headless Chromium, closed on exit; ``artifacts`` (the screenshots' folder) is
    created first."""
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def browser_fixture(artifacts: Path) -> Any:
    """A module-scoped fixture ``browser``, :func:`chromium` for a test module's tests;
    a module assigns it to a name of its own (``browser = browser_fixture(ARTIFACTS)``)."""

    @pytest.fixture(scope="module", name="browser")
    def browser() -> Iterator[Browser]:
        with chromium(artifacts) as launched:
            yield launched

    return browser


def open_page(
    browser: Browser, width: int = 1280, height: int = 900, *, accept_dialogs: bool = False
) -> tuple[Page, list[str]]:
    """A fresh browser context and page; the list collects console errors and CSP
    violations. Dialogs are accepted with ``accept_dialogs``, else answered by each test
    (``page.once("dialog", ...)``)."""
    context = browser.new_context(viewport={"width": width, "height": height})
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
    if accept_dialogs:
        page.on("dialog", lambda d: d.accept())
    page.set_default_timeout(20_000)
    return page, problems


def login(page: Page, server: dict[str, Any], next_path: str = "/") -> None:
    """Log in to the dashboard of ``server`` (its ``url``) with its ``key``: ``next_path``
    redirects to the log-in form, which leads back to it."""
    page.goto(server["url"] + next_path)
    expect(page).to_have_url(re.compile(r"/login\?next=" + re.escape(next_path) + "$"))
    page.fill("#token", server["key"])
    page.click("button[type=submit]")
    expect(page).to_have_url(server["url"] + next_path)


def logged_in(
    browser: Browser,
    server: dict[str, Any],
    next_path: str = "/",
    *,
    width: int = 1280,
    height: int = 900,
    accept_dialogs: bool = False,
) -> tuple[Page, list[str]]:
    """:func:`open_page`, then :func:`login` to ``next_path``."""
    page, problems = open_page(browser, width, height, accept_dialogs=accept_dialogs)
    login(page, server, next_path)
    return page, problems


def admin_settings(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Settings, str]:
    """Settings for a server of its own on a fresh home ``name``, and an admin key there."""
    settings = standalone_settings(tmp_path_factory.mktemp(name))
    return settings, create_key(settings, ("admin",), name="admin")


def register_sentiment(settings: Settings, tags: Sequence[str] = ("",)) -> None:
    """``sentiment`` from the tiny fixture pipeline: a version per tag, the first in
    ``production``."""
    from aiweb.classification.trainer import TrainParams, fit_text_classifier
    from conftest import TINY_LABELS, TINY_TEXTS

    artifact = fit_text_classifier(TINY_TEXTS * 3, TINY_LABELS * 3, TrainParams(C=10.0)).to_bytes()
    registry, engine = open_registry(settings)
    for i, tag in enumerate(tags):
        register_tiny(registry, "sentiment", artifact, alias=None if i else "production", tag=tag)
    engine.dispose()
