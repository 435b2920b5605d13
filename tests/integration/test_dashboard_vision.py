"""The dashboard's vision playground over HTTP (no browser; the Chromium check is
``test_dashboard_vision_browser.py``): the page lists the vision models; an image
uploaded through its form is answered by the predict route's service, with the overlay
embedded as a PNG of the image's size, the image's size and sha256, and the table of
detections (grace_hopper.jpg: one face) or of the lines of text read; nothing of the
image is stored; a hostile file is a readable message with its 4xx status, never a 500;
the form needs the session's CSRF token and a session. On SQLite.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, register_tiny
from PIL import Image
from test_vision_api import text_image

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.dashboard import views
from aiweb.vision.builtin import install
from conftest import create_key
from image_helpers import encode, jpeg, png_header_bomb, truncated_jpeg

# rendering; nothing of the image is stored: its PostgreSQL variant would add nothing
# (tests/conftest.py)
pytestmark = pytest.mark.sqlite_only

pytest.importorskip("cv2")
pytest.importorskip("rapidocr")

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
OVERLAY_RE = re.compile(
    r'<img id="vision-overlay" src="data:image/png;base64,([A-Za-z0-9+/=]+)" '
    r'alt="([^"]*)" width="(\d+)" height="(\d+)">'
)
ERROR_RE = re.compile(r'<p class="flash error" role="alert" id="vision-error">(.*?)</p>', re.DOTALL)
ROW_RE = re.compile(r"<tr><td>(.*?)</td></tr>", re.DOTALL)


def _hostile() -> list[tuple[str, Any, int, str]]:
    from test_images_api import HOSTILE

    return HOSTILE


@pytest.fixture(scope="module")
def hopper(shared_data: Path) -> bytes:
    return (shared_data / "images" / "grace_hopper.jpg").read_bytes()


@pytest.fixture
def installed(settings: Settings) -> Settings:
    registry, engine = open_registry(settings)
    try:
        install(registry, ["faces", "people", "ocr"], actor="tests")
    finally:
        engine.dispose()
    return settings


@pytest.fixture
def key(installed: Settings) -> str:
    """An admin key (the dashboard's login, and the API calls that check its work)."""
    return create_key(installed, ("admin",), name="boss")


def logged_in(settings: Settings, key: str) -> TestClient:
    """A dashboard client (entered: use it as a context manager) logged in with ``key``."""
    client = TestClient(create_app(settings), base_url="http://testserver")
    client.__enter__()
    token = CSRF_RE.search(client.get("/login").text)
    assert token
    r = client.post(
        "/login",
        data={"csrf_token": token.group(1), "next": "/", "token": key},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


@pytest.fixture
def dash(installed: Settings, key: str) -> Iterator[TestClient]:
    """A logged-in dashboard client on an app serving faces, people and ocr."""
    client = logged_in(installed, key)
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


def csrf(client: TestClient) -> str:
    match = CSRF_RE.search(client.get("/vision").text)
    assert match
    return match.group(1)


def analyse(
    client: TestClient, model: str, data: bytes, name: str = "photo.jpg", **extra: str
) -> Any:
    fields = {"csrf_token": csrf(client), "model": model, **extra}
    return client.post(
        "/vision",
        data=fields,
        files={"image": (name, data, "image/jpeg")},
        follow_redirects=False,
    )


def overlay(page: str) -> tuple[Image.Image, str, tuple[int, int]]:
    """The overlay of a result page: the decoded PNG, its alt text and the size its
    ``<img>`` declares."""
    match = OVERLAY_RE.search(page)
    assert match, page[:2000]
    data = base64.b64decode(match.group(1))
    Image.open(io.BytesIO(data)).verify()  # a whole, valid PNG
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image, html.unescape(match.group(2)), (int(match.group(3)), int(match.group(4)))


def table_rows(page: str, table_id: str) -> list[list[str]]:
    """The cells of each body row of the table ``table_id``, unescaped."""
    match = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.DOTALL)
    assert match, table_id
    return [
        [html.unescape(cell) for cell in row.split("</td><td>")]
        for row in ROW_RE.findall(match.group(1))
    ]


def error_of(page: str) -> str:
    match = ERROR_RE.search(page)
    assert match, page[:2000]
    return html.unescape(match.group(1))


def api(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_page_lists_the_vision_models_and_the_form(
    dash: TestClient, installed: Settings, tiny_model_bytes: bytes
) -> None:
    registry, engine = open_registry(installed)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes)  # a text model: not listed
    finally:
        engine.dispose()
    page = dash.get("/vision")
    assert page.status_code == 200
    text = page.text
    assert "<title>Vision playground · aiweb</title>" in text
    assert "<h1>Vision playground</h1>" in text
    assert '<a href="/vision" aria-current="page">Vision</a>' in text
    options = re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', text)
    assert options == [
        ("faces", "faces (v1, object-detection)"),
        ("ocr", "ocr (v1, ocr)"),
        ("people", "people (v1, object-detection)"),
    ]
    assert '<form method="post" action="/vision" enctype="multipart/form-data"' in text
    assert re.search(r'name="csrf_token" value="[^"]+"', text)
    assert 'accept="image/jpeg,image/png,image/webp"' in text
    assert '<input type="file" name="image" id="vision-image"' in text
    assert '<label>Model\n    <select name="model" id="vision-model">' in text
    assert 'id="vision-drop"' in text
    assert '<script src="/static/vision.js" defer></script>' in text
    assert "The image is not kept" in text
    assert "at most 20 MiB and 40 megapixels" in text
    assert 'id="vision-result"' not in text
    # no inline script or style (the CSP forbids them), and the CSP allows the data: overlay
    assert not re.search(r"<script(?![^>]*\bsrc=)", text)
    assert " style=" not in text
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' data:" in csp
    assert "script-src 'self';" in csp
    assert dash.get("/static/vision.js").status_code == 200

    # preselected from a model's page, which links to it
    chosen = dash.get("/vision?model=ocr").text
    assert '<option value="ocr" selected>' in chosen
    model_page = dash.get("/models/faces").text
    assert '<a href="/vision?model=faces" id="vision-link">' in model_page
    assert 'id="vision-link"' not in dash.get("/models/sentiment").text


def test_faces_in_grace_hopper_one_box_drawn_and_tabled(
    dash: TestClient, key: str, hopper: bytes
) -> None:
    r = analyse(dash, "faces", hopper, name="grace_hopper.jpg")
    assert r.status_code == 200, r.text
    page = r.text
    size = Image.open(io.BytesIO(hopper)).size
    drawn, alt, declared = overlay(page)
    assert drawn.size == size == declared
    assert alt == "faces found: 1"
    rows = table_rows(page, "vision-detections")
    assert len(rows) == 1
    label, score, x, y, width, height = rows[0]
    assert label == "face"
    assert 0 < float(score) < 1
    # the box the API gives for the same image
    api_box = dash.post(
        "/v1/models/faces/predict",
        content=hopper,
        headers={"Content-Type": "image/jpeg", **api(key)},
    ).json()["detections"][0]["box"]
    assert [int(v) for v in (x, y, width, height)] == [
        api_box[k] for k in ("x", "y", "width", "height")
    ]
    assert f"{size[0]} \u00d7 {size[1]} pixels (JPEG)" in page
    assert f'<code id="vision-sha256">{hashlib.sha256(hopper).hexdigest()}</code>' in page
    assert "faces v1" in page
    assert "on grace_hopper.jpg" in page
    assert '<option value="faces" selected>' in page  # the form keeps the model
    assert 'id="vision-error"' not in page
    # the box is drawn: its left edge changed pixels; far from it nothing did
    original = np.asarray(Image.open(io.BytesIO(hopper)).convert("RGB"), dtype=np.int16)
    diff = np.abs(np.asarray(drawn.convert("RGB"), dtype=np.int16) - original).sum(axis=2) > 60
    bx, by, bh = int(x), int(y), int(height)
    assert diff[by + bh // 2, bx - 2 : bx + 3].any()
    assert not diff[size[1] - 16 :, :100].any()
    # nothing is stored: no image, no job
    assert dash.get("/v1/images", headers=api(key)).json()["total"] == 0
    assert dash.get("/v1/jobs", headers=api(key)).json()["total"] == 0


def test_ocr_shows_the_lines_and_the_text(dash: TestClient) -> None:
    r = analyse(dash, "ocr", text_image("Invoice 2026", "Total due"), name="invoice.png")
    assert r.status_code == 200, r.text
    page = r.text
    _, alt, _ = overlay(page)
    assert alt == "lines of text found: 2"
    rows = table_rows(page, "vision-lines")
    assert [(n, text) for n, text, _ in rows] == [("1", "Invoice 2026"), ("2", "Total due")]
    assert all(0 < float(score) <= 1 for _, _, score in rows)
    assert '<pre class="ocr-text" id="vision-text">Invoice 2026\nTotal due</pre>' in page
    assert "(PNG)" in page
    assert 'id="vision-detections"' not in page

    # a picture without text, and a photo without faces: said so, no table
    blank = analyse(dash, "ocr", encode(Image.new("RGB", (200, 80), "white"), "PNG"))
    assert blank.status_code == 200
    assert 'id="vision-none">No text found in this image.' in blank.text
    assert overlay(blank.text)[1] == "lines of text found: 0"
    nobody = analyse(dash, "faces", jpeg())
    assert nobody.status_code == 200
    assert 'id="vision-none">The model found nothing in this image.' in nobody.text
    assert overlay(nobody.text)[1] == "faces found: 0"


def test_text_read_and_file_names_are_escaped(dash: TestClient) -> None:
    r = analyse(dash, "ocr", text_image("<b>bold</b>"), name="<img src=x onerror=alert(1)>.png")
    assert r.status_code == 200, r.text
    assert "<b>" not in r.text
    assert "<img src=x" not in r.text
    assert "on &lt;img src=x onerror=alert(1)&gt;.png" in r.text
    read = [text for _, text, _ in table_rows(r.text, "vision-lines")]
    assert "bold" in " ".join(read)


@pytest.mark.parametrize(
    ("make", "status", "needle"),
    [
        (truncated_jpeg, 422, "JPEG image is truncated"),
        (lambda: b"GIF89a" + b"\x00" * 64, 415, "the file is a GIF image"),
        (png_header_bomb, 413, "900,000,000 pixels"),
    ],
    ids=["truncated-jpeg", "gif", "pixel-bomb-header"],
)
def test_hostile_files_are_pages_with_their_message(
    dash: TestClient, key: str, make: Any, status: int, needle: str
) -> None:
    r = analyse(dash, "faces", make(), name="evil.jpg")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    message = error_of(r.text)
    assert message.startswith("evil.jpg: ")
    assert needle in message
    assert "<h1>Vision playground</h1>" in r.text  # the page, with its form
    assert '<option value="faces" selected>' in r.text
    assert 'id="vision-result"' not in r.text
    assert dash.get("/v1/images", headers=api(key)).json()["total"] == 0
    assert dash.get("/livez").status_code == 200


def test_every_hostile_file_is_a_4xx_page(dash: TestClient) -> None:
    for name, make, status, needle in _hostile():
        r = analyse(dash, "faces", make(), name=f"{name}.png")
        assert r.status_code == status, (name, r.text[:500])
        assert needle in error_of(r.text), name
    assert analyse(dash, "faces", jpeg()).status_code == 200


def test_forms_the_page_refuses(
    dash: TestClient, installed: Settings, tiny_model_bytes: bytes
) -> None:
    token = csrf(dash)
    empty = analyse(dash, "faces", b"", name="empty.jpg")
    assert empty.status_code == 422
    assert "the file is empty" in error_of(empty.text)
    # a browser's file input left empty sends a part without a name or bytes
    none = dash.post(
        "/vision",
        data={"csrf_token": token, "model": "faces"},
        files={"image": ("", b"", "application/octet-stream")},
    )
    assert none.status_code == 422
    assert "Choose an image to upload" in error_of(none.text)
    no_file = dash.post("/vision", data={"csrf_token": token, "model": "faces"})
    assert no_file.status_code == 422
    assert "Choose an image to upload" in error_of(no_file.text)
    no_model = analyse(dash, "", jpeg())
    assert no_model.status_code == 422
    assert error_of(no_model.text).endswith("Choose a model.")
    unknown = analyse(dash, "nobody", jpeg())
    assert unknown.status_code == 404
    assert "nobody" in error_of(unknown.text)

    registry, engine = open_registry(installed)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes)
    finally:
        engine.dispose()
    text_model = analyse(dash, "sentiment", jpeg())
    assert text_model.status_code == 422
    assert "serves object-detection and ocr models only" in error_of(text_model.text)


def test_more_bytes_than_the_image_limit_is_413(installed: Settings, key: str) -> None:
    data = jpeg(256, 256)
    limited = installed.model_copy(
        update={"limits": installed.limits.model_copy(update={"max_image_bytes": len(data) - 1})}
    )
    client = logged_in(limited, key)
    try:
        r = analyse(client, "faces", data)
        assert r.status_code == 413
        assert f"larger than {len(data) - 1:,} bytes" in error_of(r.text)
        assert "AIWEB_LIMITS__MAX_IMAGE_BYTES" in error_of(r.text)
        assert analyse(client, "faces", jpeg()).status_code == 200
    finally:
        client.__exit__(None, None, None)


def test_csrf_and_login_are_required(installed: Settings, key: str, hopper: bytes) -> None:
    with TestClient(create_app(installed), base_url="http://testserver") as anonymous:
        r = anonymous.get("/vision", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=/vision"
        r = anonymous.post(
            "/vision",
            data={"model": "faces"},
            files={"image": ("g.jpg", hopper, "image/jpeg")},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")

    client = logged_in(installed, key)
    try:
        files = {"image": ("g.jpg", hopper, "image/jpeg")}
        missing = client.post("/vision", data={"model": "faces"}, files=files)
        assert missing.status_code == 403
        assert "Form expired" in missing.text
        wrong = client.post("/vision", data={"model": "faces", "csrf_token": "nope"}, files=files)
        assert wrong.status_code == 403
        foreign = client.post(
            "/vision",
            data={"model": "faces", "csrf_token": csrf(client)},
            files=files,
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert 'id="vision-result"' not in missing.text + wrong.text + foreign.text
    finally:
        client.__exit__(None, None, None)


def test_vision_view_rows_and_alt() -> None:
    detections = {
        "model": "people",
        "version": 2,
        "id": "p",
        "width": 10,
        "height": 20,
        "sha256": "s",
        "detections": [
            {"label": "person", "score": 0.9, "box": {"x": 1, "y": 2, "width": 3, "height": 4}},
            {"label": "person", "score": 0.6, "box": {"x": 5, "y": 6, "width": 7, "height": 8}},
        ],
    }
    view = views.vision_view(detections, b"\x89PNG", "webp")
    assert view["kind"] == "detections"
    assert view["alt"] == "people found: 2"
    assert view["overlay"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    assert view["rows"][1] == {
        "label": "person",
        "score": 0.6,
        "x": 5,
        "y": 6,
        "width": 7,
        "height": 8,
    }
    assert view["text"] is None
    ocr = {**detections, "model": "ocr", "text": "a b\nc"}
    del ocr["detections"]
    ocr["lines"] = [{"text": "a b", "score": 0.99}, {"text": "c", "score": 0.7}]
    view = views.vision_view(ocr, b"")
    assert (view["kind"], view["alt"], view["text"]) == ("ocr", "lines of text found: 2", "a b\nc")
    assert view["rows"] == [
        {"n": 1, "text": "a b", "score": 0.99},
        {"n": 2, "text": "c", "score": 0.7},
    ]
