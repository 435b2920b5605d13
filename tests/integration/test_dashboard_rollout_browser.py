"""The rollout page in a real browser (Debian's Chromium driven by Playwright, as
``test_dashboard_browser.py``): on a real canary rollout with traffic and feedback, the
page loads without a console error or CSP violation, Chart.js draws the traffic step
chart and the accuracy intervals, the htmx refresh swaps the numbers in (charts redrawn,
none leaked), and Promote asks for confirmation: dismissed, nothing changes; accepted,
the candidate is production and the buttons are gone. Screenshots go to
``test-artifacts/dashboard/``.

Chromium comes from Debian (``apt-get install -y chromium``); ``playwright install`` is
never used.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser import TEST_ARTIFACTS, admin_settings, browser_fixture, logged_in, register_sentiment
from helpers import NEGATIVE_TEXT, POSITIVE_TEXT, live_server
from playwright.sync_api import Browser, expect

ARTIFACTS = TEST_ARTIFACTS / "dashboard"

pytestmark = pytest.mark.e2e

DRAWN = "id => window.Chart && Chart.getChart(document.getElementById(id)) !== undefined"
PAGE = "/models/sentiment/rollout"
TRUTH = {POSITIVE_TEXT: "positive", NEGATIVE_TEXT: "negative"}
USERS = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings, key = admin_settings(tmp_path_factory, "dashboard-rollout")
    register_sentiment(settings, ("first", "second"))
    with live_server(settings, name="dashboard-rollout-e2e") as port:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
            started = api.put(
                "/v1/models/sentiment/rollout",
                json={
                    "candidate": 2,
                    "traffic": 0.5,
                    "steps": [0.5, 1.0],
                    "step_every": "1d",
                    "gates": {"min_samples": 10_000},
                },
            )
            assert started.status_code == 200, started.text
            for i in range(USERS):  # real traffic with feedback on both versions
                text = POSITIVE_TEXT if i % 2 else NEGATIVE_TEXT
                answer = api.post(
                    "/v1/models/sentiment/predict", json={"inputs": [text], "user_id": f"u{i}"}
                )
                assert answer.status_code == 200, answer.text
                pid = answer.json()["predictions"][0]["id"]
                feedback = api.post(f"/v1/predictions/{pid}/feedback", json={"label": TRUTH[text]})
                assert feedback.status_code == 201, feedback.text
            deadline = time.monotonic() + 30
            while True:  # the counts reach the rollout's row at the next refresh
                report = api.get("/v1/models/sentiment/rollout").json()
                variants = report["variants"].values()
                if sum(v["requests"] for v in variants) >= USERS and all(
                    v["feedback_n"] for v in variants
                ):
                    break
                assert time.monotonic() < deadline, report
                time.sleep(0.1)
            yield {"url": url, "key": key, "api": api}


browser = browser_fixture(ARTIFACTS)


def test_rollout_page_charts_refresh_and_promote_with_confirmation(
    browser: Browser, server: dict[str, Any]
) -> None:
    url = server["url"]
    page, problems = logged_in(browser, server, "/models/sentiment")

    # the model's page: a badge of the running rollout, linking to its page
    badge = page.locator("#rollout-badge")
    expect(badge).to_have_text("rollout running: 50% to v2")
    badge.click()
    expect(page).to_have_url(url + PAGE)

    expect(page.locator("#rollout-state")).to_have_text("running")
    page.wait_for_function(DRAWN, arg="rollout-traffic-chart")
    page.wait_for_function(DRAWN, arg="rollout-accuracy-chart")
    # the step chart: the line (its last point now) and the start's marker
    traffic = page.evaluate(
        """() => Chart.getChart(document.getElementById('rollout-traffic-chart')).data.datasets
              .map(d => [d.label, d.stepped, d.data.map(p => p.y)])"""
    )
    assert traffic[0][0] == "candidate share"
    assert traffic[0][1] is True
    assert traffic[0][2] == [0.5, 0.5]
    assert traffic[1][0] == "started"
    accuracy = page.evaluate(
        """() => Chart.getChart(document.getElementById('rollout-accuracy-chart')).data.datasets
              .map(d => d.data)"""
    )
    assert accuracy[1] == [1, 1]  # both versions right on every clear text
    assert all(low < 1 for low, _ in accuracy[0])  # with an interval below it
    expect(page.locator("#rollout-gates")).to_contain_text("needed")
    expect(page.locator("#rollout-variants")).to_contain_text("100.0%")
    page.screenshot(path=str(ARTIFACTS / "rollout.png"), full_page=True)

    # htmx swaps fresh numbers in every 5 s: the charts are drawn again, none is leaked
    page.evaluate("document.getElementById('rollout').dataset.old = '1'")
    swapped = "() => !(document.getElementById('rollout') || {dataset: {old: 1}}).dataset.old"
    page.wait_for_function(swapped, timeout=15_000)
    page.wait_for_function(DRAWN, arg="rollout-traffic-chart")
    assert page.evaluate("Object.keys(Chart.instances).length") == 2
    assert page.evaluate("window.performance.getEntriesByType('navigation').length") == 1

    # Promote asks first: dismissed, nothing happens
    page.once("dialog", lambda d: d.dismiss())
    page.click("[data-testid=rollout-promote]")
    page.wait_for_timeout(500)
    expect(page.locator("#rollout-state")).to_have_text("running")
    assert server["api"].get("/v1/models/sentiment").json()["aliases"]["production"] == 1

    # accepted: the candidate is production, the rollout ended, the buttons are gone
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("[data-testid=rollout-promote]")
    expect(page.locator(".flash.ok")).to_contain_text("Promoted sentiment v2 to production")
    assert "whatever its gates say" in messages[0]
    expect(page.locator("#rollout-state")).to_have_text("promoted")
    expect(page.locator("[data-testid=rollout-promote]")).to_have_count(0)
    expect(page.locator("[data-testid=rollout-abort]")).to_have_count(0)
    expect(page.locator("#rollout-timeline tbody tr").first).to_contain_text("dashboard:admin")
    page.wait_for_function(DRAWN, arg="rollout-traffic-chart")
    assert server["api"].get("/v1/models/sentiment").json()["aliases"]["production"] == 2
    page.screenshot(path=str(ARTIFACTS / "rollout-promoted.png"), full_page=True)

    # a phone: wide tables scroll in their box, the page itself never sideways
    phone, phone_problems = logged_in(browser, server, PAGE, width=390, height=844)
    phone.wait_for_function(DRAWN, arg="rollout-traffic-chart")
    overflow = phone.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, overflow
    phone.screenshot(path=str(ARTIFACTS / "phone-rollout.png"), full_page=True)
    phone.wait_for_timeout(300)  # late console messages
    assert phone_problems == [], phone_problems
    phone.context.close()

    page.wait_for_timeout(300)
    assert problems == [], problems
    page.context.close()
