"""The vision task through the real app on SQLite and PostgreSQL (the ``settings``
fixture): ``aiweb models install`` registers the built-in models with their lineage; the
predict route takes an image raw, as a multipart field or as a stored image's id, finds
the face in grace_hopper.jpg (also rotated by an EXIF tag), reads rendered text, draws
overlays with ``Accept: image/png``; every hostile file is a 4xx problem and the server
keeps answering; a JSON-only model refuses image bodies."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import live_server, open_registry, register_tiny
from PIL import Image, ImageDraw, ImageFont

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.errors import InvalidInputError
from aiweb.monitoring.feedback import Box, box_iou
from aiweb.vision.builtin import builtin_model, install
from aiweb.vision.model import ARTIFACT_FORMAT, Manifest
from image_helpers import encode, jpeg, png

pytest.importorskip("cv2")
pytest.importorskip("rapidocr")

PROBLEM = "application/problem+json"


def iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    keys = ("x", "y", "width", "height")
    return box_iou(Box("", *(a[k] for k in keys)), Box("", *(b[k] for k in keys)))


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
def client(installed: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(installed), headers=auth_headers) as c:
        yield c


def predict_raw(client: TestClient, model: str, data: bytes, **headers: str) -> Any:
    return client.post(
        f"/v1/models/{model}/predict",
        content=data,
        headers={"Content-Type": "image/jpeg", **headers},
    )


def text_image(*lines: str, size: int = 40) -> bytes:
    """``lines`` in black on white, one under the other, in Pillow's default font."""
    font = ImageFont.load_default(size=size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = int(max(measure.textlength(t, font=font) for t in lines)) + 2 * size
    image = Image.new("RGB", (width, size * (2 * len(lines) + 1)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size, size + 2 * size * i), line, fill="black", font=font)
    return encode(image, "PNG")


# -- install -------------------------------------------------------------------------------


def test_install_registers_versions_with_lineage_once(settings: Settings) -> None:
    registry, engine = open_registry(settings)
    try:
        first = install(registry, ["faces", "people", "ocr"], actor="tests")
        assert [d.already_installed for d in first] == [False, False, False]
        faces, people, ocr = (d.version for d in first)
        assert (faces.task, people.task, ocr.task) == ("object-detection",) * 2 + ("ocr",)
        assert faces.lineage["library"] == "opencv-python-headless"
        assert faces.lineage["model_file"] == "haarcascade_frontalface_default.xml"
        assert len(faces.lineage["model_sha256"]) == 64
        assert ocr.lineage["library"] == "rapidocr"
        assert all(name.endswith(".onnx") for name in ocr.lineage["model_files"])
        assert all("production" in v.aliases for v in (faces, people, ocr))
        again = install(registry, ["ocr", "faces"], actor="tests")
        assert [d.already_installed for d in again] == [True, True]
        assert [d.version.version for d in again] == [1, 1]
        with pytest.raises(InvalidInputError, match="no built-in model 'cats'"):
            install(registry, ["faces", "cats"])
        assert registry.latest_version("faces").version == 1  # type: ignore[union-attr]
    finally:
        engine.dispose()


# -- predict ---------------------------------------------------------------------------------


def test_faces_in_grace_hopper_raw_multipart_and_stored(client: TestClient, hopper: bytes) -> None:
    raw = predict_raw(client, "faces", hopper)
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert raw.headers["x-model-version"] == "1"
    size = Image.open(io.BytesIO(hopper)).size
    assert (body["model"], body["version"], (body["width"], body["height"])) == ("faces", 1, size)
    assert len(body["detections"]) == 1
    face = body["detections"][0]
    assert face["label"] == "face"
    assert 0 < face["score"] < 1
    box = face["box"]
    # the face is in the upper middle of the portrait
    assert 120 < box["x"] < 260
    assert 100 < box["y"] < 260
    assert 120 < box["width"] < 320

    form = client.post(
        "/v1/models/faces/predict", files={"image": ("g.jpg", hopper, "application/octet-stream")}
    )
    assert form.status_code == 200, form.text
    assert form.json()["detections"] == body["detections"]
    assert form.json()["id"] != body["id"]

    stored = client.post("/v1/images", content=hopper, headers={"Content-Type": "image/jpeg"})
    assert stored.status_code == 201, stored.text
    by_id = client.post("/v1/models/faces/predict", json={"image_id": stored.json()["id"]})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["sha256"] == body["sha256"] == stored.json()["sha256"]
    # the stored PNG is the decoded image: the same pixels, the same face
    assert iou(by_id.json()["detections"][0]["box"], box) > 0.9

    assert client.post("/v1/models/faces/predict", json={"image_id": "nope"}).status_code == 404
    bad = client.post("/v1/models/faces/predict", json={"image_id": "../x"})
    assert bad.status_code == 422


def test_exif_orientation_puts_the_box_on_the_face(client: TestClient, hopper: bytes) -> None:
    upright = predict_raw(client, "faces", hopper).json()["detections"][0]["box"]
    image = Image.open(io.BytesIO(hopper)).convert("RGB")
    stored = image.transpose(Image.Transpose.ROTATE_90)  # stored turned left …
    exif = stored.getexif()
    exif[0x0112] = 6  # … and tagged: rotate 90° clockwise to display
    r = predict_raw(client, "faces", encode(stored, "JPEG", quality=95, exif=exif))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == image.size  # as displayed
    assert len(body["detections"]) == 1
    assert iou(body["detections"][0]["box"], upright) > 0.6


def test_ocr_reads_rendered_text_in_reading_order(client: TestClient) -> None:
    r = client.post(
        "/v1/models/ocr/predict",
        content=text_image("Invoice 2026", "Total due"),
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "Invoice 2026\nTotal due"
    assert [line["text"] for line in body["lines"]] == ["Invoice 2026", "Total due"]
    assert all(len(line["polygon"]) == 4 for line in body["lines"])
    first, second = (line["polygon"] for line in body["lines"])
    assert max(y for _, y in first) < min(y for _, y in second)  # the first line is above
    assert "detections" not in body


def test_overlays_are_pngs_of_the_image_with_the_answer_drawn(
    client: TestClient, hopper: bytes
) -> None:
    plain = predict_raw(client, "faces", hopper).json()
    r = predict_raw(client, "faces", hopper, Accept="image/png")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-model-version"] == "1"
    drawn = Image.open(io.BytesIO(r.content))
    drawn.verify()
    drawn = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert drawn.size == Image.open(io.BytesIO(hopper)).size
    original = np.asarray(Image.open(io.BytesIO(hopper)).convert("RGB"), dtype=np.int16)
    diff = np.abs(np.asarray(drawn, dtype=np.int16) - original).sum(axis=2) > 60
    box = plain["detections"][0]["box"]
    # the box's outline changed pixels; far from it nothing did
    assert diff[box["y"] + box["height"] // 2, box["x"] - 2 : box["x"] + 3].any()
    assert not diff[590:, :100].any()

    ocr = client.post(
        "/v1/models/ocr/predict",
        content=text_image("Hello"),
        headers={"Content-Type": "image/png", "Accept": "image/png"},
    )
    assert ocr.status_code == 200
    assert ocr.headers["content-type"] == "image/png"
    Image.open(io.BytesIO(ocr.content)).verify()
    # JSON is preferred unless the drawing is asked for by name
    for accept in ("*/*", "image/*", "application/json", "image/png;q=0.5, application/json"):
        r = predict_raw(client, "faces", hopper, Accept=accept)
        assert r.headers["content-type"] == "application/json", accept


def test_people_detector_answers(client: TestClient, shared_data: Path) -> None:
    photo = (shared_data / "images" / "pexels_women_on_phones.jpg").read_bytes()
    r = predict_raw(client, "people", photo)
    assert r.status_code == 200, r.text
    assert all(d["label"] == "person" for d in r.json()["detections"])


@pytest.mark.parametrize("how", ["raw", "multipart"])
def test_hostile_files_are_problems(client: TestClient, how: str) -> None:
    for name, make, status, needle in _hostile():
        data = make()
        if how == "raw":
            r = client.post(
                "/v1/models/faces/predict", content=data, headers={"Content-Type": "image/png"}
            )
        else:
            r = client.post(
                "/v1/models/faces/predict", files={"image": ("x.png", data, "image/png")}
            )
        assert r.status_code == status, (name, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert needle in r.json()["detail"], name
    assert predict_raw(client, "faces", jpeg()).status_code == 200


def test_bodies_the_route_refuses(
    client: TestClient, installed: Settings, tiny_model_bytes: bytes
) -> None:
    empty = client.post(
        "/v1/models/faces/predict", content=b"", headers={"Content-Type": "image/jpeg"}
    )
    assert empty.status_code == 422
    assert "required" in empty.json()["detail"]
    no_field = client.post("/v1/models/faces/predict", files={"photo": ("x.png", png(), "x")})
    assert no_field.status_code == 422
    assert "'image'" in no_field.json()["detail"]
    gif = client.post(
        "/v1/models/faces/predict", content=b"GIF89a", headers={"Content-Type": "image/gif"}
    )
    assert gif.status_code == 415
    assert predict_raw(client, "nobody", jpeg()).status_code == 404

    registry, engine = open_registry(installed)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes)
    finally:
        engine.dispose()
    text_model = predict_raw(client, "sentiment", jpeg())
    assert text_model.status_code == 415, text_model.text
    assert "takes a JSON body" in text_model.json()["detail"]
    also = client.post(
        "/v1/models/sentiment/predict", files={"image": ("x.jpg", jpeg(), "image/jpeg")}
    )
    assert also.status_code == 415
    # and the text model still answers JSON
    ok = client.post("/v1/models/sentiment/predict", json={"inputs": ["great"]})
    assert ok.status_code == 200, ok.text


def test_predictions_are_logged_without_pixels(client: TestClient, hopper: bytes) -> None:
    body = predict_raw(client, "faces", hopper).json()
    metrics = client.get("/metrics").text
    assert 'aiweb_predictions_total{label="face",model="faces",version="1"}' in metrics
    assert 'aiweb_prediction_objects_count{model="faces",version="1"}' in metrics
    fb = client.post(f"/v1/predictions/{body['id']}/feedback", json={"label": "face"})
    assert fb.status_code == 201, fb.text
    assert fb.json()["correct"] is True


def test_feedback_with_corrected_boxes(client: TestClient, hopper: bytes) -> None:
    body = predict_raw(client, "faces", hopper).json()
    box = body["detections"][0]["box"]
    url = f"/v1/predictions/{body['id']}/feedback"
    shifted = {**box, "x": box["x"] + box["width"] // 10}  # IoU ~0.8: the same face
    r = client.post(url, json={"boxes": [{"label": "face", **shifted}]})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["correct"] is True
    assert out["counts"] == {"true_positives": 1, "false_positives": 0, "false_negatives": 0}
    assert out["predicted_boxes"] == [{"label": "face", **{k: float(v) for k, v in box.items()}}]
    assert out["label"] == "face"
    # a second face the detector missed: wrong, one false negative; replaces the first
    other = {"label": "face", "x": 0, "y": 0, "width": 50, "height": 50}
    r = client.post(url, json={"boxes": [{"label": "face", **box}, other]})
    assert r.status_code == 200, r.text
    assert r.json()["correct"] is False
    assert r.json()["counts"]["false_negatives"] == 1
    # no face at all
    r = client.post(url, json={"boxes": []})
    assert r.json()["label"] == "none"
    assert r.json()["counts"] == {"true_positives": 0, "false_positives": 1, "false_negatives": 0}
    perf = client.get("/v1/models/faces/versions/1/performance").json()
    assert perf["windows"]["24h"]["n"] == 1
    assert perf["windows"]["24h"]["accuracy"] == 0.0

    for bad in (
        {"boxes": [{"label": "cat", "x": 0, "y": 0, "width": 5, "height": 5}]},
        {"boxes": [{"label": "face", "x": 0, "y": 0, "width": 0, "height": 5}]},
        {"boxes": [{"label": "face", "x": "NaN", "y": 0, "width": 5, "height": 5}]},
        {"boxes": [{"label": "face", "x": 1e308, "y": 0, "width": 5, "height": 5}]},
        {"text": "a face"},  # text for a prediction of boxes
        {"boxes": [], "label": "face"},
    ):
        r = client.post(url, json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == PROBLEM


def test_feedback_with_corrected_text(client: TestClient) -> None:
    image = text_image("Invoice 2026", "Total due")
    body = client.post(
        "/v1/models/ocr/predict", content=image, headers={"Content-Type": "image/png"}
    ).json()
    url = f"/v1/predictions/{body['id']}/feedback"
    right = client.post(url, json={"text": "Invoice 2026\nTotal due"})
    assert right.status_code == 201, right.text
    assert right.json()["correct"] is True
    assert right.json()["label"] == "text"
    # the text read is not logged by default: no error rate, only whether it was exact
    assert right.json()["predicted_text"] is None
    assert right.json()["cer"] is None
    wrong = client.post(url, json={"text": "Invoice 2025\nTotal due"})
    assert wrong.json()["correct"] is False
    nasty = client.post(
        url, content=rb'{"text": "\ud800 \u0000"}', headers={"Content-Type": "application/json"}
    )
    assert nasty.status_code == 422
    boxes = client.post(url, json={"boxes": []})
    assert boxes.status_code == 422
    assert "not boxes" in boxes.json()["detail"]


def test_feedback_text_error_rate_when_the_text_is_logged(
    installed: Settings, auth_headers: dict[str, str]
) -> None:
    logged = installed.model_copy(update={"log_inputs": True})
    with TestClient(create_app(logged), headers=auth_headers) as client:
        body = client.post(
            "/v1/models/ocr/predict",
            content=text_image("Invoice 2026"),
            headers={"Content-Type": "image/png"},
        ).json()
        r = client.post(f"/v1/predictions/{body['id']}/feedback", json={"text": "Invoice 2025"})
        assert r.status_code == 201, r.text
        assert r.json()["predicted_text"] == "Invoice 2026"
        assert r.json()["cer"] == pytest.approx(1 / 12)
        assert r.json()["correct"] is False


def test_over_http_the_server_keeps_answering(installed: Settings, admin_key: str) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with (
        live_server(installed) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http,
    ):
        for name, make, status, _ in _hostile():
            r = http.post(
                "/v1/models/faces/predict",
                content=make(),
                headers={"Content-Type": "image/png"},
            )
            assert r.status_code == status, (name, r.text)
            assert http.get("/livez").status_code == 200
        r = http.post(
            "/v1/models/faces/predict", content=jpeg(), headers={"Content-Type": "image/jpeg"}
        )
        assert r.status_code == 200
        assert r.json()["detections"] == []


def test_a_shadow_rollout_compares_boxes_and_never_returns_the_candidate(
    client: TestClient, installed: Settings, hopper: bytes
) -> None:
    """A faces version that finds nothing (a cascade needing 500 overlapping windows) as
    the shadow of the production one: the image body reaches both, the caller only ever
    gets version 1, and the agreement gate (boxes matched at IoU >= 0.5) rolls it back."""
    faces = builtin_model("faces")
    registry, engine = open_registry(installed)
    try:
        strict = Manifest("faces", {**faces.manifest.params, "min_neighbors": 500})
        registry.register_version(
            "faces",
            faces.task,
            artifact=strict.to_bytes(),
            artifact_format=ARTIFACT_FORMAT,
            labels=faces.labels,
            signature={"params": strict.params},
            lineage=faces.lineage,
            evaluation={},
            actor="tests",
            extra_artifacts=faces.extra_artifacts,
        )
    finally:
        engine.dispose()
    rollout = "/v1/models/faces/rollout"
    body = {
        "candidate": 2,
        "mode": "shadow",
        "gates": {"min_samples": 5, "min_agreement": 0.9, "min_accuracy_delta": None},
    }
    started = client.put(rollout, json=body)
    assert started.status_code in (200, 201), started.text
    versions: set[int] = set()
    deadline = time.monotonic() + 60
    while (report := client.get(rollout).json())["state"] != "rolled_back":
        assert time.monotonic() < deadline, report
        answer = predict_raw(client, "faces", hopper)
        assert answer.status_code == 200, answer.text
        versions.add(answer.json()["version"])
        assert len(answer.json()["detections"]) == 1
    assert versions == {1}
    assert report["decision"]["gate"] == "min_agreement"
    assert report["agreement"]["compared"] > 0
    assert report["agreement"]["agreed"] == 0
