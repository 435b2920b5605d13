"""The screening page and the entities playground in a real browser (Debian's Chromium
driven by Playwright, as ``test_dashboard_tabular_browser.py``): two CVs (a DOCX and a
PDF) are uploaded through the page's file input, a screening started, the page polls
the job until the ranking shows the matching CV first, and clicking it shows its
evidence highlighted; the playground highlights a text's entities, its markup inert.
No console error or CSP violation happens. Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser import TEST_ARTIFACTS, admin_settings, browser_fixture, logged_in
from helpers import live_server
from playwright.sync_api import Browser, FilePayload, expect
from test_screening import EMAIL, JOB, MATCHING, OTHER, register, skills_model

from aiweb.app import create_app
from aiweb.entities.model import EntityModel
from document_helpers import DOCX_TYPE, make_docx, make_pdf

__all__ = ["skills_model"]  # the fixture, imported for this module's server

ARTIFACTS = TEST_ARTIFACTS / "dashboard"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, skills_model: EntityModel
) -> Iterator[dict[str, Any]]:
    settings, key = admin_settings(tmp_path_factory, "dashboard-screening")
    register(settings, "skills", skills_model)
    app = create_app(settings)
    with live_server(settings, name="dashboard-screening-e2e", app=app) as port:
        yield {"url": f"http://127.0.0.1:{port}", "key": key}


browser = browser_fixture(ARTIFACTS)


def test_upload_two_cvs_screen_them_and_see_the_evidence(
    browser: Browser, server: dict[str, Any]
) -> None:
    url = server["url"]
    page, problems = logged_in(browser, server, "/screening")
    cvs: list[FilePayload] = [
        {"name": "jane.docx", "mimeType": DOCX_TYPE, "buffer": make_docx([MATCHING])},
        {"name": "john.pdf", "mimeType": "application/pdf", "buffer": make_pdf(OTHER)},
    ]
    page.set_input_files("#upload-file", cvs)
    page.click("#upload-form button[type=submit]")
    expect(page).to_have_url(url + "/screening")
    expect(page.locator(".flash.ok")).to_contain_text("Uploaded 2 document(s)")
    expect(page.locator("#documents tbody tr")).to_have_count(2)
    expect(page.locator("#redact-pii")).to_be_checked()

    page.fill("#job-description", JOB)
    page.select_option("#skills-model", "skills")
    page.click("#screen-button")
    expect(page).to_have_url(re.compile(re.escape(url) + r"/screening/jobs/[0-9a-f-]{36}$"))
    ranking = page.locator("#ranking tbody tr")
    expect(ranking).to_have_count(2)  # the polled fragment, once the job has finished
    expect(ranking.nth(0).locator("a.candidate")).to_have_text("jane.docx")
    expect(ranking.nth(1).locator("a.candidate")).to_have_text("john.pdf")
    expect(ranking.nth(0).locator(".chip.matched")).to_contain_text(["Python", "SQL", "Docker"])
    expect(ranking.nth(1).locator(".chip.missing").first).to_be_visible()
    assert ranking.nth(1).locator(".chip.matched").count() == 0
    # matched and missing skills look different
    matched = ranking.nth(0).locator(".chip.matched").first
    missing = ranking.nth(1).locator(".chip.missing").first
    colour = "e => getComputedStyle(e).color"
    assert matched.evaluate(colour) != missing.evaluate(colour)
    assert missing.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"

    ranking.nth(0).locator("a.candidate").click()
    view = page.locator("#cv-view")
    expect(view).to_be_visible()
    expect(view.locator("h2")).to_contain_text("jane.docx")
    marks = view.locator("mark.evidence")
    expect(marks.first).to_be_visible()
    shown = {text.casefold() for text in marks.all_inner_texts()}
    assert {"python", "sql", "docker"} <= shown
    background = marks.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    expect(view.locator("span.pii").first).to_have_text("[EMAIL]")
    expect(view).not_to_contain_text(EMAIL)
    page.screenshot(path=str(ARTIFACTS / "screening.png"), full_page=True)

    # delete john.pdf from the list: dismissing the confirmation keeps it, accepting
    # removes it (the row's button submits the screening form to its own action)
    page.goto(url + "/screening")
    rows = page.locator("#documents tbody tr")
    delete = rows.filter(has_text="john.pdf").locator("button", has_text="Delete")
    questions: list[str] = []

    def answer(accept: bool) -> None:
        def handle(dialog: Any) -> None:
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", handle)

    answer(False)
    delete.click()
    expect(rows).to_have_count(2)
    answer(True)
    delete.click()
    expect(page.locator(".flash.ok")).to_contain_text("Deleted john.pdf.")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("jane.docx")
    assert questions == ["Delete john.pdf? Its file and its text are removed."] * 2
    assert problems == []


def test_playground_highlights_entities_by_type(browser: Browser, server: dict[str, Any]) -> None:
    page, problems = logged_in(browser, server, "/playground")
    text = 'We need Python , SQL and Docker <img src=x id="injected"> .'
    page.select_option("#entities-model", "skills")
    page.fill("#entities-text", text)
    page.click("#entities-form button[type=submit]")
    marks = page.locator("#entities-highlighted mark.ent")
    expect(marks.first).to_be_visible()
    assert {"Python", "SQL", "Docker"} <= set(marks.all_inner_texts())
    # the whole text is there, as typed, and its markup is text
    expect(page.locator("#entities-highlighted")).to_contain_text('<img src=x id="injected">')
    assert page.locator("#injected").count() == 0
    label = marks.first.evaluate("e => getComputedStyle(e, '::after').content")
    assert label == '"Skill"'
    background = marks.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    expect(page.locator("#entities-legend mark.ent")).to_have_text(["Skill"])
    expect(page.locator("#entities-table tbody tr")).to_have_count(marks.count())
    page.screenshot(path=str(ARTIFACTS / "entities-playground.png"), full_page=True)
    assert problems == []
