"""The playground's explanation in Debian's Chromium (Playwright), under the dashboard's
strict CSP: a classified text comes back with its words tinted by weight and the top
contributions as bars, loaded by htmx after the prediction; another class can be
explained; no console error, no CSP violation, no inline style, and the page fits a
phone screen. Screenshots go to ``test-artifacts/dashboard/``.

Chromium comes from Debian (``apt-get install -y chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser import TEST_ARTIFACTS, admin_settings, browser_fixture, open_page, register_sentiment
from helpers import live_server
from playwright.sync_api import Browser, Page, expect

ARTIFACTS = TEST_ARTIFACTS / "dashboard"
EXAMPLE = "not a good movie, but the acting was superb"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings, key = admin_settings(tmp_path_factory, "dashboard-explain")
    register_sentiment(settings)
    with live_server(settings, name="dashboard-explain-e2e") as port:
        yield {"url": f"http://127.0.0.1:{port}", "key": key}


browser = browser_fixture(ARTIFACTS)


def classify(page: Page, server: dict[str, Any]) -> None:
    page.goto(server["url"] + "/login?next=/playground")
    page.fill("#token", server["key"])
    page.click("button[type=submit]")
    expect(page).to_have_url(server["url"] + "/playground")
    page.evaluate(
        "document.addEventListener('securitypolicyviolation',"
        " (e) => console.error('CSP violation: ' + e.violatedDirective))"
    )
    page.select_option("#model", "sentiment")
    page.fill("#text", EXAMPLE)
    page.click("#playground-form button[type=submit]")
    expect(page.locator("#predicted-label")).to_have_text(re.compile("positive|negative"))


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_playground_explains_the_answer(
    browser: Browser, server: dict[str, Any], width: int, height: int
) -> None:
    page, problems = open_page(browser, width, height)
    classify(page, server)
    # htmx asks for the explanation once the prediction is shown (no click)
    section = page.locator("section#explanation")
    expect(section).to_have_attribute("data-method", "linear")
    expect(page.locator("#explain-method")).to_contain_text("exact")
    label = page.locator("#predicted-label").inner_text()
    expect(section.locator("h3").first).to_have_text(f"Why “{label}”?")
    assert page.locator("#explained-text").inner_text() == EXAMPLE
    marks = page.locator("#explained-text mark.word")
    assert marks.count() >= 3
    # tints come from the stylesheet: a word towards the target is green, against red
    colours = page.evaluate(
        """() => [...document.querySelectorAll('#explained-text mark.word')].map((m) => [
            Number(m.dataset.weight), getComputedStyle(m).backgroundColor])"""
    )
    for weight, colour in colours:
        r, g, _b = (int(v) for v in re.findall(r"\d+", colour)[:3])
        assert (g > r) if weight > 0 else (r > g), (weight, colour)
    bars = page.locator("#explain-bars .bar")
    assert 1 <= bars.count() <= 10
    widths = page.evaluate(
        """() => [...document.querySelectorAll('#explain-bars .bar')].map((b) =>
            b.getBoundingClientRect().width
            / b.parentElement.getBoundingClientRect().width)"""
    )
    assert widths[0] == pytest.approx(1.0, abs=0.01)  # the largest fills its track
    assert all(0 < w <= 1.0 + 1e-6 for w in widths)
    # no style attribute in the explanation (Chart.js sizes its canvas through the CSSOM)
    assert page.locator("#explanation [style], #explanation[style]").count() == 0
    name = "playground-explain" + ("-phone" if width < 500 else "")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, overflow
    # explain the other class: the weights flip sign
    before = sorted(w for w, _ in colours)
    other = "positive" if label == "negative" else "negative"
    page.select_option("#explain-target", other)
    page.click("form.explain-target button[type=submit]")
    expect(section.locator("h3").first).to_have_text(f"Why “{other}”?")
    after = page.evaluate(
        """() => [...document.querySelectorAll('#explained-text mark.word')].map(
            (m) => Number(m.dataset.weight))"""
    )
    assert sorted(-w for w in after) == pytest.approx(before, abs=1e-9)
    page.wait_for_timeout(300)  # late console messages
    assert problems == [], problems
    page.context.close()
