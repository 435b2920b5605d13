"""Vision jobs through the real app and its embedded runner, on SQLite and PostgreSQL (the
``settings`` fixture): a ``faces`` job over stored images finds the face in
grace_hopper.jpg and none in a plain picture, writes one JSON line per image and an
overlay PNG of each image's size; an ``ocr`` job renders the pages of an uploaded PDF and
reads the words drawn on its scanned page; a cancelled job stops between images; running
the handler again after a crash rewrites the same files; every bad body is a 4xx at
submit and creates no job."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, register_tiny
from PIL import Image, ImageDraw, ImageFont

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import build_job_env
from aiweb.registry.artifacts import open_artifact_store
from aiweb.vision.builtin import install
from aiweb.vision.jobs import run_vision

pytest.importorskip("cv2")
pytest.importorskip("rapidocr")
pytest.importorskip("pypdfium2")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the words drawn on the scanned page of the OCR test
SCANNED = ("Invoice 2026", "Total due")


@pytest.fixture(scope="module")
def hopper(shared_data: Path) -> bytes:
    return (shared_data / "images" / "grace_hopper.jpg").read_bytes()


@pytest.fixture
def installed(settings: Settings) -> Settings:
    registry, engine = open_registry(settings)
    try:
        install(registry, ["faces", "ocr"], actor="tests")
    finally:
        engine.dispose()
    return settings


@pytest.fixture
def client(installed: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(installed), headers=auth_headers) as c:
        yield c


def png(width: int = 64, height: int = 48) -> bytes:
    """A plain picture without a face: blue, with a red square in its top-left corner."""
    image = Image.new("RGB", (width, height), (20, 40, 220))
    image.paste((220, 20, 30), (0, 0, 16, 16))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload_image(client: TestClient, data: bytes, content_type: str) -> dict[str, Any]:
    r = client.post("/v1/images", content=data, headers={"Content-Type": content_type})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def upload_document(client: TestClient, name: str, data: bytes, ctype: str, **form: str) -> Any:
    return client.post("/v1/documents", files={"file": (name, data, ctype)}, data=form)


def submit(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


def wait_job(
    client: TestClient, job_id: str, *, timeout: float = 180.0, until: Any = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if until is not None and until(job):
            return job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.05)


def jsonl_result(client: TestClient, job_id: str) -> list[dict[str, Any]]:
    """The job's JSON Lines file, downloaded from ``GET /v1/jobs/{id}/result``."""
    import json

    r = client.get(f"/v1/jobs/{job_id}/result")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["content-disposition"].endswith('.jsonl"')
    return [json.loads(line) for line in r.text.splitlines()]


def scanned_words(*lines: str, size: int = 40) -> Image.Image:
    """``lines`` in black on white, one under the other, in Pillow's default font (what a
    scanner would give of a printed page)."""
    font = ImageFont.load_default(size=size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = int(max(measure.textlength(t, font=font) for t in lines)) + 2 * size
    image = Image.new("RGB", (width, size * (2 * len(lines) + 1)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size, size + 2 * size * i), line, fill="black", font=font)
    return image


def pillow_pdf(image: Image.Image) -> bytes:
    """``image`` saved as a one-page PDF by Pillow: an image-only PDF, as a scanner makes."""
    out = io.BytesIO()
    image.save(out, "PDF", resolution=100.0)
    return out.getvalue()


def scan_with_cover_page(image: Image.Image) -> bytes:
    """A two-page PDF (fpdf2): a page with a text layer, then ``image`` as a page without
    any text, the scanned page."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=24)
    pdf.add_page()
    pdf.cell(0, 20, "Cover letter", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.image(image, x=15, y=20, w=180)
    return bytes(pdf.output())


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def test_faces_job_over_stored_images_writes_lines_and_overlays(
    client: TestClient, installed: Settings, hopper: bytes
) -> None:
    grace = upload_image(client, hopper, "image/jpeg")
    plain = upload_image(client, png(96, 64), "image/png")
    job = submit(
        client, {"type": "vision", "model": "faces", "image_ids": [grace["id"], plain["id"]]}
    )
    assert job["params"]["model_name"] == "faces"
    assert job["params"]["model_version"] == 1  # pinned at submit
    done = wait_job(client, job["id"])
    assert done["status"] == "succeeded", (done["error"], done["message"])
    assert done["progress"] == 1.0
    result = done["result"]
    assert (result["model"], result["version"], result["task"]) == ("faces", 1, "object-detection")
    assert (result["images"], result["found"], result["format"]) == (2, 1, "jsonl")
    assert result["results"] == f"/v1/jobs/{job['id']}/result"
    assert result["artifact_uri"] == f"jobs/{job['id']}/results.jsonl"

    lines = jsonl_result(client, job["id"])
    assert [line["image_id"] for line in lines] == [grace["id"], plain["id"]]
    first, second = lines
    assert set(first) == {
        "image_id",
        "model",
        "version",
        "width",
        "height",
        "sha256",
        "detections",
    }
    assert (first["model"], first["version"]) == ("faces", 1)
    assert (first["width"], first["height"]) == (grace["width"], grace["height"])
    assert first["sha256"] == grace["sha256"]
    assert len(first["detections"]) == 1
    face = first["detections"][0]
    assert face["label"] == "face"
    assert 120 < face["box"]["x"] < 260
    assert (second["width"], second["height"], second["detections"]) == (96, 64, [])
    # the same answer as the predict route's, but for its id
    predicted = client.post("/v1/models/faces/predict", json={"image_id": grace["id"]}).json()
    assert {k: v for k, v in predicted.items() if k != "id"} == {
        k: v for k, v in first.items() if k != "image_id"
    }

    artifacts = open_artifact_store(installed)
    assert len(result["overlays"]) == 2
    for uri, image in zip(result["overlays"], (grace, plain), strict=True):
        assert uri.startswith(f"jobs/{job['id']}/overlays/")
        assert image["id"] in uri
        data = artifacts.read_bytes(uri)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as overlay:
            overlay.verify()
        with Image.open(io.BytesIO(data)) as overlay:
            assert overlay.format == "PNG"
            assert overlay.size == (image["width"], image["height"])
        # and over HTTP, under the job's files
        name = uri.removeprefix(f"jobs/{job['id']}/")
        served = client.get(f"/v1/jobs/{job['id']}/files/{name}")
        assert served.status_code == 200, served.text
        assert served.headers["content-type"] == "image/png"
        assert served.content == data
    jsonl = client.get(f"/v1/jobs/{job['id']}/files/results.jsonl")
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    for missing in ("overlays/nope.png", "..%2F..%2Fsecret", "overlays/../../x.png"):
        r = client.get(f"/v1/jobs/{job['id']}/files/{missing}")
        assert r.status_code in (404, 422), (missing, r.text)
    assert client.get("/v1/jobs/nojob/files/results.jsonl").status_code == 404


def test_without_overlays_only_the_lines_are_written(
    client: TestClient, installed: Settings
) -> None:
    plain = upload_image(client, png(), "image/png")
    job = submit(
        client,
        {
            "type": "vision",
            "model": "faces@production",
            "image_ids": [plain["id"]],
            "overlays": False,
        },
    )
    done = wait_job(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["overlays"] == []
    assert len(jsonl_result(client, job["id"])) == 1
    root = installed.resolved_artifacts_dir / "jobs" / job["id"]
    assert sorted(p.name for p in root.iterdir()) == ["results.jsonl"]


def test_an_image_only_pdf_is_kept_for_ocr_with_scanned(client: TestClient) -> None:
    """A scan made by Pillow (no text layer at all) is refused by the documents route
    unless it is uploaded with ``scanned=true``: then it is kept, with an empty text, and
    an OCR job reads its page."""
    scan = pillow_pdf(scanned_words(*SCANNED))
    r = upload_document(client, "scan.pdf", scan, "application/pdf")
    assert r.status_code == 422, r.text
    assert "image-only" in r.json()["detail"]
    assert "scanned=true" in r.json()["detail"]
    both = upload_document(
        client, "scan.pdf", scan, "application/pdf", scanned="true", redact_pii="true"
    )
    assert both.status_code == 422, both.text
    kept = upload_document(client, "scan.pdf", scan, "application/pdf", scanned="true")
    assert kept.status_code == 201, kept.text
    document = kept.json()
    assert document["pages"] == 1
    job = submit(client, {"type": "vision", "model": "ocr", "document_id": document["id"]})
    done = wait_job(client, job["id"], timeout=300)
    assert done["status"] == "succeeded", (done["error"], done["message"])
    (line,) = jsonl_result(client, job["id"])
    assert line["page"] == 1
    assert words(line["text"]) == words(" ".join(SCANNED))


def test_ocr_job_renders_the_pages_of_a_pdf_and_reads_the_scan(
    client: TestClient, installed: Settings
) -> None:
    uploaded = upload_document(
        client, "scan.pdf", scan_with_cover_page(scanned_words(*SCANNED)), "application/pdf"
    )
    assert uploaded.status_code == 201, uploaded.text
    document = uploaded.json()
    assert document["pages"] == 2
    job = submit(client, {"type": "vision", "model": "ocr", "document_id": document["id"]})
    done = wait_job(client, job["id"], timeout=300)
    assert done["status"] == "succeeded", (done["error"], done["message"])
    result = done["result"]
    assert (result["model"], result["task"], result["images"]) == ("ocr", "ocr", 2)
    lines = jsonl_result(client, job["id"])
    assert [line["page"] for line in lines] == [1, 2]
    for line in lines:
        assert set(line) == {
            "page",
            "model",
            "version",
            "width",
            "height",
            "sha256",
            "lines",
            "text",
        }
        assert line["sha256"] == document["sha256"]
        # an A4 page at 200 dpi
        assert (line["width"], line["height"]) == (1654, 2339)
    cover, scan = lines
    assert "cover" in words(cover["text"])
    assert words(scan["text"]) == words(" ".join(SCANNED))
    assert result["found"] == len(cover["lines"]) + len(scan["lines"])
    artifacts = open_artifact_store(installed)
    assert [uri.rsplit("/", 1)[1] for uri in result["overlays"]] == [
        "page-0001.png",
        "page-0002.png",
    ]
    with Image.open(io.BytesIO(artifacts.read_bytes(result["overlays"][1]))) as overlay:
        assert (overlay.format, overlay.size) == ("PNG", (1654, 2339))


def test_a_cancelled_job_stops_between_images(client: TestClient, hopper: bytes) -> None:
    grace = upload_image(client, hopper, "image/jpeg")
    many = [grace["id"]] * 60
    job = submit(client, {"type": "vision", "model": "faces", "image_ids": many})
    running = wait_job(client, job["id"], until=lambda j: j["progress"] > 0.02)
    assert running["status"] == "running", running
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200, r.text
    done = wait_job(client, job["id"])
    assert done["status"] == "cancelled", done
    assert 0 < done["progress"] < 0.99
    assert done["result"] is None


def test_running_the_handler_again_rewrites_the_same_files(
    client: TestClient, installed: Settings, hopper: bytes
) -> None:
    """A retried attempt (the first one's process died) writes the same files again."""
    grace = upload_image(client, hopper, "image/jpeg")
    job = submit(client, {"type": "vision", "model": "faces", "image_ids": [grace["id"]]})
    first = wait_job(client, job["id"])
    assert first["status"] == "succeeded", first["error"]
    env = build_job_env(installed)
    try:
        claimed = env.jobs.get(job["id"])
        workdir = installed.home / "retry"
        workdir.mkdir()
        again = run_vision(env, JobContext(claimed, workdir, threading.Event()))
    finally:
        env.close()
    assert again == first["result"]  # the same paths, the same bytes (sha256)
    artifacts = open_artifact_store(installed)
    assert artifacts.read_bytes(again["overlays"][0]).startswith(PNG_SIGNATURE)


def test_bad_bodies_are_refused_at_submit(
    client: TestClient, installed: Settings, tiny_model_bytes: bytes
) -> None:
    registry, engine = open_registry(installed)
    try:
        register_tiny(registry, "reviews", tiny_model_bytes)
    finally:
        engine.dispose()
    image = upload_image(client, png(), "image/png")
    text = upload_document(client, "notes.txt", b"just some text\n", "text/plain")
    assert text.status_code == 201, text.text
    before = client.get("/v1/jobs").json()["total"]

    def refused(body: dict[str, Any], status: int, *needles: str) -> None:
        r = client.post("/v1/jobs", json={"type": "vision", **body})
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        detail = str(r.json().get("detail", "")) + str(r.json().get("errors", ""))
        for needle in needles:
            assert needle in detail, (needle, r.json())

    ids = [image["id"]]
    refused({"model": "nope", "image_ids": ids}, 404, "nope")
    refused({"model": "faces@staging", "image_ids": ids}, 404)
    refused({"model": "faces:7", "image_ids": ids}, 404)
    refused({"model": "reviews", "image_ids": ids}, 422, "text-classification")
    refused({"model": "Faces!", "image_ids": ids}, 422)
    refused(
        {"model": "faces", "image_ids": [image["id"], "missing-1", "missing-2"]}, 404, "missing-1"
    )
    refused({"model": "faces"}, 422, "exactly one of image_ids and document_id")
    refused(
        {"model": "faces", "image_ids": ids, "document_id": text.json()["id"]},
        422,
        "exactly one of image_ids and document_id",
    )
    refused({"model": "faces", "image_ids": []}, 422)
    refused({"model": "faces", "image_ids": ["../etc"]}, 422)
    refused({"model": "faces", "image_ids": ids * 1001}, 422)
    refused({"model": "faces", "image_ids": ids, "colour": "red"}, 422)
    refused({"model": "ocr", "document_id": "no-such-document"}, 404, "no-such-document")
    refused({"model": "ocr", "document_id": text.json()["id"]}, 422, "text/plain", "PDF")
    assert client.get("/v1/jobs").json()["total"] == before  # nothing half-created
