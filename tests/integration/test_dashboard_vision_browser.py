"""The vision playground in a real browser (Debian's Chromium driven by Playwright, as
``test_dashboard_screening_browser.py``): grace_hopper.jpg chosen through the file input
and sent with the form shows the overlay (an image the browser decoded, of the photo's
size) and one face in the table; an image dropped on the drop zone becomes the form's
file. No console error or CSP violation happens. Screenshots go to
``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import TEST_ARTIFACTS, admin_settings, browser_fixture, logged_in
from helpers import live_server, open_registry
from PIL import Image
from playwright.sync_api import Browser, expect

from aiweb.app import create_app
from aiweb.vision.builtin import install
from image_helpers import truncated_jpeg

pytest.importorskip("cv2")

ARTIFACTS = TEST_ARTIFACTS / "dashboard"

pytestmark = pytest.mark.e2e

DROP = """(zone, data) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const dropped = new DataTransfer();
  dropped.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
  for (const type of ["dragenter", "dragover", "drop"]) {
    const init = { bubbles: true, cancelable: true, dataTransfer: dropped };
    zone.dispatchEvent(new DragEvent(type, init));
  }
}"""


@pytest.fixture(scope="module")
def hopper(shared_data: Path) -> Path:
    return shared_data / "images" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings, key = admin_settings(tmp_path_factory, "dashboard-vision")
    registry, engine = open_registry(settings)
    try:
        install(registry, ["faces"], actor="tests")
    finally:
        engine.dispose()
    app = create_app(settings)
    with live_server(settings, name="dashboard-vision-e2e", app=app) as port:
        yield {"url": f"http://127.0.0.1:{port}", "key": key}


browser = browser_fixture(ARTIFACTS)


def test_upload_grace_hopper_and_see_her_face_boxed(
    browser: Browser, server: dict[str, Any], hopper: Path
) -> None:
    page, problems = logged_in(browser, server, "/vision")
    expect(page).to_have_title("Vision playground · aiweb")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Vision")
    expect(page.locator("#vision-drop-hint")).to_be_visible()  # shown by vision.js
    page.select_option("#vision-model", "faces")
    page.set_input_files("#vision-image", str(hopper))
    expect(page.locator("#vision-chosen")).to_contain_text("Chosen: grace_hopper.jpg")
    page.click("#vision-submit")

    expect(page).to_have_url(server["url"] + "/vision")
    image = page.locator("#vision-overlay")
    expect(image).to_be_visible()
    expect(image).to_have_attribute("alt", "faces found: 1")
    page.wait_for_function("() => document.getElementById('vision-overlay').complete")
    width, height = Image.open(hopper).size
    natural = image.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    assert natural == [width, height]
    # scaled to the page, its shape kept
    shown = image.bounding_box()
    assert shown is not None
    assert shown["width"] > 0
    assert abs(shown["height"] / shown["width"] - height / width) < 0.02
    rows = page.locator("#vision-detections tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").first).to_have_text("face")
    expect(page.locator("#vision-meta")).to_contain_text(f"{width} \u00d7 {height} pixels (JPEG)")
    expect(page.locator("#vision-result-title")).to_contain_text("grace_hopper.jpg")
    page.screenshot(path=str(ARTIFACTS / "vision-faces.png"), full_page=True)
    assert problems == []


def test_a_dropped_image_is_the_one_sent(
    browser: Browser, server: dict[str, Any], hopper: Path
) -> None:
    page, problems = logged_in(browser, server, "/vision")
    zone = page.locator("#vision-drop")
    data = base64.b64encode(hopper.read_bytes()).decode()
    zone.evaluate(DROP, data)
    expect(page.locator("#vision-chosen")).to_contain_text("Chosen: dropped.jpg")
    assert page.evaluate("() => document.getElementById('vision-image').files.length") == 1
    page.click("#vision-submit")
    expect(page.locator("#vision-result-title")).to_contain_text("dropped.jpg")
    expect(page.locator("#vision-detections tbody tr")).to_have_count(1)

    # a refused file is a message on the page, not a browser error
    bad = base64.b64encode(truncated_jpeg()).decode()
    zone.evaluate(DROP, bad)
    page.click("#vision-submit")
    expect(page.locator("#vision-error")).to_contain_text("JPEG image is truncated")
    expect(page.locator("#vision-overlay")).to_have_count(0)
    # Chromium logs the page's 422 status as a failed resource; nothing else went wrong
    assert problems == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
