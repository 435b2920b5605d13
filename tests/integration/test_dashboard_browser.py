"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

A real uvicorn serves the app; the browser logs in with the admin key, classifies a
sentence in the playground, promotes and rolls back a version, watches a training job's
progress reach 100% without reloading, creates and revokes an API key, and reads the
audit log. Every page is screenshotted into ``test-artifacts/dashboard/`` (desktop and
phone width), and any console error or CSP violation fails the test.

Chromium comes from Debian (``apt-get install -y chromium``; ``.ci/run`` installs it);
``playwright install`` is never used.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browser import (
    TEST_ARTIFACTS,
    admin_settings,
    browser_fixture,
    logged_in,
    login,
    open_page,
    register_sentiment,
)
from helpers import live_server
from playwright.sync_api import Browser, Page, expect

ARTIFACTS = TEST_ARTIFACTS / "dashboard"

pytestmark = pytest.mark.e2e

POS = ["a wonderful, moving film", "great acting and a clever story", "brilliant and warm"]
NEG = ["terrible and boring", "a dull, lifeless mess", "awful acting and a stupid plot"]


def labeled_csv() -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["text", "label"])
    for r in range(20):
        for text in POS:
            writer.writerow([f"{text} ({r})", "positive"])
        for text in NEG:
            writer.writerow([f"{text} ({r})", "negative"])
    return buf.getvalue().encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings, key = admin_settings(tmp_path_factory, "dashboard")
    register_sentiment(settings, ("first", "second"))
    with live_server(settings, name="dashboard-e2e") as port:
        yield {"url": f"http://127.0.0.1:{port}", "key": key}


browser = browser_fixture(ARTIFACTS)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_dashboard_end_to_end_in_chromium(browser: Browser, server: dict[str, Any]) -> None:
    url = server["url"]
    # accepts the confirmations of promote/rollback/revoke
    page, problems = open_page(browser, accept_dialogs=True)
    page.goto(url + "/")
    shot(page, "login")
    login(page, server)
    expect(page.locator("h1")).to_have_text("Overview")
    shot(page, "overview")

    # playground: a sentence in, a label and a scores chart out (htmx, no reload)
    page.click("nav >> text=Playground")
    page.select_option("#model", "sentiment")
    page.fill("#text", "terrible and boring, a dull lifeless mess")
    page.click("#playground-form button[type=submit]")
    expect(page.locator("#predicted-label")).to_have_text("negative")
    page.wait_for_function(
        "() => Chart.getChart(document.querySelector('#result canvas')) !== undefined"
    )
    shot(page, "playground")

    # promote version 2, then roll back to 1 (each behind a confirmation dialog)
    page.goto(url + "/models/sentiment")
    page.click("[data-testid=promote-2]")
    expect(page.locator(".flash.ok")).to_contain_text("now serves version 2")
    expect(page.locator("#aliases")).to_contain_text("v2")
    shot(page, "model-promoted")
    page.click("[data-testid=rollback-production]")
    expect(page.locator(".flash.ok")).to_contain_text("back to version 1")
    expect(page.locator("#aliases")).to_contain_text("v1")

    # a training job submitted over the API; the open jobs page follows it to 100%
    page.goto(url + "/jobs")
    page.evaluate("window.__notReloaded = true")
    headers = {"Authorization": f"Bearer {server['key']}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        upload = api.post("/v1/datasets", files={"file": ("r.csv", labeled_csv(), "text/csv")})
        assert upload.status_code == 201, upload.text
        job = api.post(
            "/v1/jobs",
            json={"type": "train", "model": "reviews", "dataset_id": upload.json()["id"]},
        )
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row).to_be_visible(timeout=15_000)
    expect(row.locator(".pct")).to_have_text("100%", timeout=60_000)
    expect(row).to_contain_text("succeeded")
    assert page.evaluate("window.__notReloaded === true")  # htmx polling, not a reload
    shot(page, "jobs")

    # the trained version's report: metrics, confusion matrix heatmap, lineage
    page.goto(url + "/models/reviews/versions/1")
    expect(page.locator("#confusion")).to_be_visible()
    expect(page.locator("#lineage")).to_contain_text("dataset_sha256")
    shot(page, "version-report")
    page.goto(url + "/models")
    shot(page, "models")

    # API keys: create (the secret shows once), then revoke
    page.goto(url + "/keys")
    page.fill("#key-name", "webshop")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("aiw_")
    shot(page, "keys-created")
    with httpx.Client(base_url=url, timeout=30) as api:
        ok = api.post(
            "/v1/models/sentiment/predict",
            json={"inputs": ["lovely"]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert ok.status_code == 200
    page.goto(url + "/keys")
    assert secret not in page.content()
    page.click("[data-testid=revoke-webshop]")
    expect(page.locator(".flash.ok")).to_contain_text("webshop revoked")
    expect(page.locator("tr[data-key='webshop']")).to_contain_text("revoked")
    deadline = time.monotonic() + 10  # servers drop revoked keys from their cache quickly
    with httpx.Client(base_url=url, timeout=30) as api:
        while True:
            status = api.post(
                "/v1/models/sentiment/predict",
                json={"inputs": ["lovely"]},
                headers={"Authorization": f"Bearer {secret}"},
            ).status_code
            if status == 401 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert status == 401

    # the audit log shows what the dashboard did, and who
    page.goto(url + "/audit")
    expect(page.locator("#audit")).to_contain_text("dashboard:admin")
    expect(page.locator("#audit")).to_contain_text("key.revoke")
    shot(page, "audit")

    assert problems == [], problems
    page.context.close()


def test_dashboard_fits_a_phone_screen(browser: Browser, server: dict[str, Any]) -> None:
    page, problems = logged_in(browser, server, width=390, height=844, accept_dialogs=True)
    for path, name in [
        ("/", "phone-overview"),
        ("/models/sentiment", "phone-model"),
        ("/playground", "phone-playground"),
        ("/jobs", "phone-jobs"),
        ("/keys", "phone-keys"),
    ]:
        page.goto(server["url"] + path)
        # wide tables scroll inside their box; the page itself never scrolls sideways
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (path, overflow)
        shot(page, name)
    assert problems == [], problems
    page.context.close()


def test_playground_has_no_csp_or_console_errors(browser: Browser, server: dict[str, Any]) -> None:
    """The playground under the strict CSP (``style-src 'self'``): htmx adds no inline
    indicator style (``includeIndicatorStyles: false``), our stylesheet carries the
    indicator rules instead, and a classification round trip logs no console error."""
    page, problems = logged_in(browser, server, accept_dialogs=True)
    page.goto(server["url"] + "/playground")
    page.wait_for_function("() => window.htmx !== undefined")
    page.wait_for_timeout(300)
    assert problems == [], problems  # htmx's inline indicator <style> is a CSP violation
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    # the indicator rules come from /static/app.css: hidden at rest, shown in flight
    opacity = page.evaluate(
        """async () => {
            const probe = document.createElement('span');
            probe.className = 'htmx-indicator';
            document.body.appendChild(probe);
            const idle = getComputedStyle(probe).opacity;
            probe.classList.add('htmx-request');
            await new Promise((done) => setTimeout(done, 500));  // its 200 ms fade-in
            const busy = getComputedStyle(probe).opacity;
            probe.remove();
            return [idle, busy];
        }"""
    )
    assert opacity == ["0", "1"], opacity
    page.select_option("#model", "sentiment")
    page.fill("#text", "a wonderful, moving film")
    page.click("#playground-form button[type=submit]")
    expect(page.locator("#predicted-label")).to_have_text("positive")
    page.wait_for_function(
        "() => Chart.getChart(document.querySelector('#result canvas')) !== undefined"
    )
    page.wait_for_timeout(300)  # late console messages
    assert problems == [], problems
    page.context.close()
