"""``/v1/images`` through the real app on SQLite and PostgreSQL (the ``settings``
fixture): raw and multipart uploads round-trip as metadata-free PNGs; list, get, content,
delete; every hostile file of issue #25 is a 4xx problem that says what was wrong and
stores nothing, and the server keeps answering; the byte limit is a 413."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import live_server
from PIL import Image
from sqlalchemy import select

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.db.orm import SqlImage
from aiweb.db.session import make_engine, make_session_factory
from image_helpers import (
    RED,
    animated,
    encode,
    jpeg,
    jpeg_oriented,
    jpeg_with_gps,
    picture,
    png,
    png_chunk_types,
    png_header_bomb,
    truncated_jpeg,
    webp,
    zip_of,
)

PROBLEM = "application/problem+json"


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def upload_raw(client: TestClient, data: bytes, ctype: str = "image/jpeg") -> Any:
    return client.post("/v1/images", content=data, headers={"Content-Type": ctype})


def upload_form(client: TestClient, data: bytes, name: str = "photo.jpg") -> Any:
    return client.post("/v1/images", files={"image": (name, data, "application/octet-stream")})


def stored_files(settings: Settings) -> dict[str, bytes]:
    """Every file under ``images/`` in the artifact store, by relative path."""
    root = settings.resolved_artifacts_dir / "images"
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def rows(settings: Settings) -> list[SqlImage]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as s:
            return list(s.scalars(select(SqlImage)).all())
    finally:
        engine.dispose()


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "ctype"),
    [
        (jpeg(64, 48), "jpeg", "image/jpeg"),
        (png(64, 48), "png", "image/png"),
        (webp(64, 48), "webp", "image/webp"),
        (png(64, 48), "png", "image/jpeg"),  # the declared type is ignored
    ],
    ids=["jpeg", "png", "webp", "png-sent-as-jpeg"],
)
def test_raw_upload_round_trips(
    client: TestClient, settings: Settings, data: bytes, fmt: str, ctype: str
) -> None:
    r = upload_raw(client, data, ctype)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "width", "height", "sha256", "format", "bytes", "created_at"}
    assert (body["width"], body["height"], body["format"]) == (64, 48, fmt)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["bytes"] == len(data)
    assert r.headers["location"] == f"/v1/images/{body['id']}"
    assert client.get(f"/v1/images/{body['id']}").json() == body

    content = client.get(f"/v1/images/{body['id']}/content")
    assert content.status_code == 200
    assert content.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(content.content)) as stored:
        assert (stored.format, stored.size, stored.mode) == ("PNG", (64, 48), "RGB")
        pixels = np.asarray(stored)
    assert np.all(np.abs(pixels[4, 4].astype(int) - RED) <= 40)
    assert stored_files(settings) == {f"{body['id']}/image.png": content.content}
    assert [(row.id, row.format, row.size_bytes) for row in rows(settings)] == [
        (body["id"], fmt, len(data))
    ]


def test_multipart_upload_round_trips(client: TestClient) -> None:
    data = png(30, 20)
    r = upload_form(client, data, "holiday.gif")  # the name is ignored too
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["width"], body["height"], body["format"]) == (30, 20, "png")
    content = client.get(f"/v1/images/{body['id']}/content").content
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(content))), np.asarray(picture(30, 20)))


def test_the_orientation_is_applied_and_no_metadata_is_stored(
    client: TestClient, settings: Settings
) -> None:
    r = upload_raw(client, jpeg_oriented(6, 64, 32))
    assert (r.json()["width"], r.json()["height"]) == (32, 64)
    gps = upload_raw(client, jpeg_with_gps())
    assert gps.status_code == 201, gps.text
    content = client.get(f"/v1/images/{gps.json()['id']}/content").content
    with Image.open(io.BytesIO(content)) as stored:
        assert dict(stored.getexif()) == {}
    assert set(png_chunk_types(content)) <= {b"IHDR", b"IDAT", b"IEND"}
    for data in stored_files(settings).values():
        assert b"ACME" not in data
        assert b"Jane" not in data
        assert b"Exif" not in data


# -- refusals ---------------------------------------------------------------------------

HOSTILE = [
    ("pixel-bomb-header", lambda: png_header_bomb(30_000, 30_000), 413, "900,000,000 pixels"),
    ("truncated-jpeg", truncated_jpeg, 422, "JPEG image is truncated"),
    ("png-in-zip", lambda: zip_of("photo.png", png()), 415, "the file is a ZIP archive"),
    ("zip-after-png", lambda: png() + zip_of("x.txt", b"x"), 422, "a polyglot file?"),
    ("animated-webp", lambda: animated("WEBP"), 422, "the WebP image is animated"),
    ("animated-png", lambda: animated("PNG"), 422, "the PNG image is animated"),
    ("gif", lambda: encode(picture(), "GIF"), 415, "the file is a GIF image"),
    ("bmp", lambda: encode(picture(), "BMP"), 415, "the file is a BMP image"),
    ("tiff", lambda: encode(picture(), "TIFF"), 415, "the file is a TIFF image"),
    ("svg", lambda: b"<svg onload='alert(1)'/>", 415, "an SVG"),
    ("text", lambda: b"hello", 415, "text, not an image"),
]


@pytest.mark.parametrize("how", ["raw", "multipart"])
@pytest.mark.parametrize(
    ("make", "status", "needle"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_files_are_problems_that_store_nothing(
    client: TestClient, settings: Settings, how: str, make: Any, status: int, needle: str
) -> None:
    data = make()
    r = upload_raw(client, data, "image/png") if how == "raw" else upload_form(client, data)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["status"] == status
    assert needle in problem["detail"]
    assert client.get("/livez").status_code == 200
    assert client.get("/v1/images").json()["total"] == 0
    assert stored_files(settings) == {}


def test_empty_missing_and_wrongly_typed_bodies(client: TestClient) -> None:
    r = client.post("/v1/images", files={"image": ("a.png", b"", "image/png")})
    assert r.status_code == 422
    assert "the file is empty" in r.json()["detail"]
    r = client.post("/v1/images", files={"other": ("a.png", png(), "image/png")})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["loc"] == ["body", "image"]
    r = client.post("/v1/images", data={"image": "not a file"})
    assert r.status_code in (415, 422)  # a urlencoded form: not multipart
    r = client.post("/v1/images", content=b"GIF89a", headers={"Content-Type": "image/gif"})
    assert r.status_code == 415
    assert "image/jpeg" in r.json()["detail"]
    r = client.post("/v1/images", json={"image": "aGVsbG8="})
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["detail"]
    r = client.post("/v1/images")
    assert r.status_code in (415, 422)


def test_more_bytes_than_the_limit_is_413(settings: Settings, auth_headers: dict[str, str]) -> None:
    data = jpeg(256, 256)
    limited = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_image_bytes": len(data)})}
    )
    with TestClient(create_app(limited), headers=auth_headers) as c:
        assert upload_raw(c, data).status_code == 201
        assert upload_form(c, data).status_code == 201
        bigger = data + b"\x00"  # padding is tolerated, but is one byte too many
        for r in (upload_raw(c, bigger), upload_form(c, bigger)):
            assert r.status_code == 413, r.text
            assert r.headers["content-type"] == PROBLEM
            assert "AIWEB_LIMITS__MAX_IMAGE_BYTES" in r.json()["detail"]
        assert c.get("/v1/images").json()["total"] == 2


def test_the_pixel_limit_is_a_setting(settings: Settings, auth_headers: dict[str, str]) -> None:
    limited = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_image_pixels": 64 * 48})}
    )
    with TestClient(create_app(limited), headers=auth_headers) as c:
        assert upload_raw(c, png(64, 48)).status_code == 201
        r = upload_raw(c, png(65, 48))
        assert r.status_code == 413
        assert r.json()["type"].endswith("/image-too-large")
        assert "AIWEB_LIMITS__MAX_IMAGE_PIXELS" in r.json()["detail"]


def test_a_20_mib_image_passes_the_json_body_limit() -> None:
    """The 4 MiB JSON body limit does not apply to images: up to max_image_bytes pass
    the input limits (a raw body is streamed, bounded by its own setting)."""
    from aiweb.api.limits import InputLimitsMiddleware
    from aiweb.config import LimitSettings

    limits = LimitSettings()
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen.append(size)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guarded = InputLimitsMiddleware(
        app,
        max_body_bytes=limits.max_body_bytes,
        max_json_depth=limits.max_json_depth,
        max_upload_bytes=limits.max_upload_bytes,
        max_image_bytes=limits.max_image_bytes,
        image_body_paths=("/v1/images",),
    )
    size = limits.max_image_bytes
    assert size == 20 * 1024 * 1024 > limits.max_body_bytes
    c = TestClient(guarded)  # no lifespan: the bare app has none
    body = b"\xff\xd8\xff" + b"\x00" * (size - 3)
    r = c.post("/v1/images", content=body, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 204
    assert seen == [size]
    r = c.post("/v1/images", content=body + b"\x00", headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413
    assert "AIWEB_LIMITS__MAX_IMAGE_BYTES" in r.json()["detail"]
    r = c.post("/v1/other", content=body[:100], headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 415  # raw images only where a route takes them


def test_the_upload_needs_the_train_scope(settings: Settings) -> None:
    from conftest import create_key

    key = create_key(settings, ("predict",), "reader")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as c:
        assert upload_raw(c, jpeg()).status_code == 403
        assert c.get("/v1/images").status_code == 403


# -- list, get, delete -------------------------------------------------------------------


def test_list_get_delete_and_404s(client: TestClient, settings: Settings) -> None:
    ids = [upload_raw(client, png(10 + i, 10)).json()["id"] for i in range(3)]
    listed = client.get("/v1/images").json()
    assert [i["id"] for i in listed["images"]] == ids[::-1]  # newest first
    assert (listed["total"], listed["next_offset"]) == (3, None)
    page = client.get("/v1/images?limit=2").json()
    assert [i["id"] for i in page["images"]] == ids[:0:-1]
    assert page["next_offset"] == 2
    rest = client.get("/v1/images?limit=2&offset=2").json()
    assert [i["id"] for i in rest["images"]] == ids[:1]

    for method, path in [
        ("GET", "/v1/images/nope"),
        ("GET", "/v1/images/nope/content"),
        ("DELETE", "/v1/images/nope"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 404, (method, path)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("/image-not-found")

    r = client.delete(f"/v1/images/{ids[0]}")
    assert r.status_code == 204
    assert client.get(f"/v1/images/{ids[0]}").status_code == 404
    assert client.get(f"/v1/images/{ids[0]}/content").status_code == 404
    assert client.get("/v1/images").json()["total"] == 2
    assert not any(path.startswith(ids[0]) for path in stored_files(settings))
    assert {r.id for r in rows(settings)} == set(ids[1:])

    events = client.get("/v1/audit?limit=100").json()["events"]
    actions = [(e["action"], e["target"]) for e in events]
    assert ("image.delete", f"image:{ids[0]}") in actions
    assert sum(a == "image.upload" for a, _ in actions) == 3


# -- a real server ------------------------------------------------------------------------


def test_hostile_uploads_over_http_leave_the_server_answering(
    settings: Settings, admin_key: str, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with live_server(settings) as port:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for _, make, status, needle in HOSTILE:
                r = http.post("/v1/images", content=make(), headers={"Content-Type": "image/png"})
                assert r.status_code == status, r.text
                assert needle in r.json()["detail"]
                assert http.get("/livez").status_code == 200
            r = http.post("/v1/images", files={"image": ("g.jpg", jpeg(), "image/jpeg")})
            assert r.status_code == 201, r.text
            assert http.get(f"/v1/images/{r.json()['id']}/content").status_code == 200
