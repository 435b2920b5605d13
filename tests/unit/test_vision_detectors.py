"""aiweb.vision's detectors and OCR on real photographs (``AIWEB_DATA_HOME/images``) and
on text rendered here: what each finds, where its boxes land, what it refuses; and the
non-maximum suppression and reading order by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from aiweb.vision.detectors import (
    Box,
    FaceDetector,
    PeopleDetector,
    face_cascade_path,
    non_max_suppression,
)
from aiweb.vision.ocr import OcrReader, reading_order


def rgb(path: Path) -> npt.NDArray[np.uint8]:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.fixture(scope="module")
def faces() -> FaceDetector:
    return FaceDetector.from_package()


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]], float)
    scores = np.array([0.5, 0.9, 0.1, 0.2])
    # [1,1,10,10] beats [0,0,10,10] (IoU 81/119 = 0.68) and its duplicate; [20,20] is apart
    assert non_max_suppression(boxes, scores, 0.5) == [1, 2]
    # above their overlap (0.68) the shifted pair stays; the exact duplicate (IoU 1) goes
    assert non_max_suppression(boxes, scores, 0.7) == [1, 0, 2]
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5) == []
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        non_max_suppression(boxes[:2], scores[:1], 0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        non_max_suppression(boxes, scores, 1.5)


def test_one_face_on_grace_hopper_on_her_face(shared_data: Path, faces: FaceDetector) -> None:
    pixels = rgb(shared_data / "images" / "grace_hopper.jpg")  # 517 x 606, a portrait
    found = faces.detect(pixels)
    assert len(found) == 1, found
    face = found[0]
    assert face.label == "face"
    assert face.score > 0
    box = face.box
    # the face is in the upper middle of the portrait, about a third of its width
    centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
    assert 0.3 * 517 < centre_x < 0.7 * 517, box
    assert 0.15 * 606 < centre_y < 0.55 * 606, box
    assert 0.2 * 517 < box.width < 0.6 * 517, box
    assert face.to_dict() == {
        "label": "face",
        "score": face.score,
        "box": {"x": box.x, "y": box.y, "width": box.width, "height": box.height},
    }


def test_a_large_image_is_scaled_and_its_boxes_scaled_back(
    shared_data: Path, faces: FaceDetector
) -> None:
    pixels = rgb(shared_data / "images" / "pexels_women_on_phones.jpg")  # 3458 x 2282
    found = faces.detect(pixels)
    assert found
    for d in found:  # in the image's own pixels, inside it
        assert d.box.x >= 0
        assert d.box.x + d.box.width <= 3458
        assert d.box.y >= 0
        assert d.box.y + d.box.height <= 2282
    assert max(d.box.width for d in found) > 1280 / 20  # not the scaled image's size


def test_nothing_on_a_blank_image_and_bad_input_refused(faces: FaceDetector) -> None:
    blank = np.full((200, 300, 3), 255, np.uint8)
    assert faces.detect(blank) == []
    assert PeopleDetector().detect(blank) == []
    for bad in (
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ):
        with pytest.raises(ValueError, match="uint8 RGB"):
            faces.detect(bad)
    with pytest.raises(ValueError, match="not an OpenCV cascade"):
        FaceDetector(b"<opencv_storage></opencv_storage>")
    with pytest.raises(ValueError, match="scale_factor > 1"):
        FaceDetector(face_cascade_path().read_bytes(), scale_factor=1.0)


def test_the_astronaut_is_a_person(shared_data: Path) -> None:
    pixels = rgb(shared_data / "images" / "skimage_astronaut.png")
    found = PeopleDetector().detect(pixels)
    assert [d.label for d in found] == ["person"]
    box = found[0].box
    assert box.height > box.width  # upright: HOG's 64 x 128 window shape
    assert isinstance(box, Box)


def test_ocr_reads_rendered_lines_in_reading_order() -> None:
    image = Image.new("RGB", (900, 150), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(30)  # Pillow's own FreeType font: no system font needed
    draw.text((10, 10), "a gorgeous, witty movie", fill="black", font=font)
    draw.text((520, 14), "second column", fill="black", font=font)
    draw.text((10, 80), "the plot is boilerplate", fill="black", font=font)
    result = OcrReader().read(np.asarray(image))
    assert result.text == "a gorgeous, witty movie second column\nthe plot is boilerplate"
    assert [line.text for line in result.lines] == [
        "a gorgeous, witty movie",
        "second column",
        "the plot is boilerplate",
    ]
    for line in result.lines:
        assert 0.5 <= line.score <= 1.0
        assert len(line.polygon) == 4
    first = np.asarray(result.lines[0].polygon)
    assert first[:, 0].min() < 30
    assert first[:, 1].max() < 75
    assert OcrReader().read(np.full((60, 200, 3), 255, np.uint8)).text == ""
    assert set(OcrReader.model_sha256()) == {p.name for p in OcrReader.model_files()}


def test_reading_order_by_hand() -> None:
    def box(x: float, y: float, w: float = 100, h: float = 20) -> list[list[float]]:
        return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]

    # row 1: x=300 then x=10 (given right first), a slightly lower one still in row 1;
    # row 2 below
    polygons = [box(300, 10), box(10, 12), box(10, 60), box(150, 16)]
    assert reading_order(polygons) == [[1, 3, 0], [2]]
    # a rotated line cut in pieces, each higher than the last, stays one row (given
    # right to left), above the next line
    pieces = [box(920, 25, h=30), box(370, 38, h=30), box(0, 48, h=30), box(0, 100, h=30)]
    assert reading_order(pieces) == [[2, 1, 0], [3]]
    assert reading_order([]) == []
