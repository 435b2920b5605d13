"""aiweb.vision.overlay on small synthetic images: a valid PNG of the same size, boxes and
polygons in their colours where they belong and nothing elsewhere, tags inside the image,
malformed items skipped, the input left alone, and non-RGB pixels refused."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from aiweb.vision.overlay import draw_detections, draw_lines

#: Okabe & Ito's colour-blind-safe palette, without black (the module's docs).
OKABE_ITO = {
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
}
FACE = (86, 180, 233)
PERSON = (230, 159, 0)
LINE = (0, 114, 178)


def grey(height: int, width: int, value: int = 128) -> npt.NDArray[np.uint8]:
    return np.full((height, width, 3), value, dtype=np.uint8)


def decode(png: bytes) -> npt.NDArray[np.uint8]:
    """The PNG's pixels, after checking it is a well-formed 8-bit RGB PNG."""
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGB"
        return np.asarray(image).copy()


def detection(label: str, score: float, x: Any, y: Any, width: Any, height: Any) -> dict[str, Any]:
    return {
        "label": label,
        "score": score,
        "box": {"x": x, "y": y, "width": width, "height": height},
    }


def colour_at(pixels: npt.NDArray[np.uint8], row: int, col: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in pixels[row, col])
    return r, g, b


def test_a_png_of_the_same_size_with_the_box_in_its_colour_and_nothing_far_away() -> None:
    pixels = grey(200, 300)
    before = pixels.copy()
    out = decode(draw_detections(pixels, [detection("face", 0.87, 40, 80, 60, 50)]))
    assert out.shape == pixels.shape
    np.testing.assert_array_equal(pixels, before)  # the input is untouched
    # line width max(2, round(200 / 250)) = 2, drawn inward from the box's edges
    for row, col in [(80, 60), (81, 60), (129, 60), (100, 40), (100, 41), (100, 99)]:
        assert colour_at(out, row, col) == FACE, (row, col)
    assert colour_at(out, 100, 42) == (128, 128, 128)  # inside the outline: untouched
    assert colour_at(out, 100, 70) == (128, 128, 128)
    # nothing changes outside the box and its tag (above it, from its left edge)
    np.testing.assert_array_equal(out[131:], pixels[131:])
    np.testing.assert_array_equal(out[:, 160:], pixels[:, 160:])
    np.testing.assert_array_equal(out[:, :40], pixels[:, :40])
    np.testing.assert_array_equal(out[:55], pixels[:55])


def test_the_tag_sits_above_the_box_filled_with_its_colour_and_dark_text() -> None:
    pixels = grey(200, 300)
    out = decode(draw_detections(pixels, [detection("face", 0.87, 40, 80, 60, 50)]))
    tag = out[66:80, 40:95]  # the rows just above the box (the tag is 14 x 55 pixels here)
    is_face = np.all(tag == FACE, axis=-1)
    assert is_face.mean() > 0.4  # the fill
    assert tag.min() < 60  # the text: black on sky blue (the higher contrast)
    assert colour_at(out, 79, 41) == FACE  # the tag's bottom-left corner meets the box


def test_a_box_at_the_top_edge_gets_its_tag_inside_the_image() -> None:
    pixels = grey(100, 200)
    out = decode(draw_detections(pixels, [detection("person", 0.5, 20, 0, 100, 60)]))
    # below the outline (rows 0-1, columns 20-21), only the tag can colour the box's inside
    inside = out[3:12, 25:60]
    assert np.all(inside == PERSON, axis=-1).mean() > 0.4
    assert inside.min() < 60  # black text on orange
    np.testing.assert_array_equal(out[61:], pixels[61:])


def test_a_tag_at_the_right_edge_moves_left_into_the_image() -> None:
    pixels = grey(100, 200)
    out = decode(draw_detections(pixels, [detection("person", 0.5, 190, 40, 10, 20)]))
    # the tag is wider than the 10 pixels right of x=190: it ends at the right edge
    above = out[25:40, 150:190]
    assert np.all(above == PERSON, axis=-1).mean() > 0.3
    assert colour_at(out, 39, 199) == PERSON


def test_boxes_crossing_the_edges_are_clipped() -> None:
    pixels = grey(100, 100)
    out = decode(draw_detections(pixels, [detection("face", 0.9, -50, 50, 400, 1000)]))
    assert colour_at(out, 75, 0) == FACE  # its left edge is the image's
    assert colour_at(out, 75, 99) == FACE  # and its right edge too
    assert colour_at(out, 99, 50) == FACE  # and its bottom


def test_the_line_width_grows_with_the_image() -> None:
    pixels = grey(1000, 1000)  # max(2, round(1000 / 250)) = 4
    out = decode(draw_detections(pixels, [detection("face", 0.9, 400, 400, 200, 200)]))
    assert [colour_at(out, 500, col) == FACE for col in range(398, 406)] == [
        False,
        False,
        True,
        True,
        True,
        True,
        False,
        False,
    ]


def test_one_colour_per_label_from_the_palette_and_the_same_every_time() -> None:
    pixels = grey(120, 400)
    labels = ["face", "person", "dog", "car", "bicycle"]
    found = {}
    for i, label in enumerate(labels):
        box = detection(label, 0.5, 20 + 70 * i, 60, 50, 40)
        out = decode(draw_detections(pixels, [box]))
        found[label] = colour_at(out, 80, 20 + 70 * i)
        again = decode(draw_detections(grey(120, 400, 30), [box]))
        assert colour_at(again, 80, 20 + 70 * i) == found[label], label
    assert found["face"] == FACE
    assert found["person"] == PERSON
    assert set(found.values()) <= OKABE_ITO


MALFORMED: list[Any] = [
    "face",  # not a mapping
    {"score": 0.5, "box": {"x": 1, "y": 1, "width": 5, "height": 5}},  # no label
    {"label": "face", "box": {"x": 1, "y": 1, "width": 5, "height": 5}},  # no score
    {"label": "face", "score": 0.5},  # no box
    {"label": "face", "score": 0.5, "box": [1, 1, 5, 5]},  # a box that is not a mapping
    {"label": "face", "score": 0.5, "box": {"x": 1, "y": 1, "width": 5}},  # no height
    detection("face", float("nan"), 1, 1, 5, 5),
    detection("face", 0.5, float("nan"), 1, 5, 5),
    detection("face", 0.5, 1, float("inf"), 5, 5),
    detection("face", 0.5, "1", 1, 5, 5),
    detection("face", 0.5, True, 1, 5, 5),
    detection("face", 0.5, 1, 1, 0, 5),  # no area
    detection("face", 0.5, 1, 1, 5, -5),
    detection("face", 0.5, 500, 10, 20, 20),  # entirely right of the image
    detection("face", 0.5, -40, 10, 20, 20),  # entirely left of it
    detection("face", 0.5, 10, 60, 20, 20),  # entirely below it
    {"label": 7, "score": 0.5, "box": {"x": 1, "y": 1, "width": 5, "height": 5}},
    None,
]


def test_malformed_detections_are_skipped() -> None:
    pixels = grey(60, 80)
    out = decode(draw_detections(pixels, MALFORMED))
    np.testing.assert_array_equal(out, pixels)
    good = detection("face", 0.5, 30, 30, 20, 20)
    alone = draw_detections(pixels, [good])
    assert decode(draw_detections(pixels, [*MALFORMED, good])).tolist() == decode(alone).tolist()


def test_no_detection_gives_the_image_back() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode(draw_detections(pixels, [])), pixels)
    np.testing.assert_array_equal(decode(draw_lines(pixels, [])), pixels)


def test_a_view_of_another_array_is_read_and_left_alone() -> None:
    base = np.random.default_rng(1).integers(0, 256, (50, 80, 3), dtype=np.uint8)
    before = base.copy()
    view = base[:, ::-1]  # not contiguous
    out = decode(draw_detections(view, [detection("face", 0.5, 10, 20, 20, 20)]))
    np.testing.assert_array_equal(base, before)
    assert colour_at(out, 30, 10) == FACE
    np.testing.assert_array_equal(out[41:], view[41:])  # below the box
    np.testing.assert_array_equal(out[:, 70:], view[:, 70:])  # right of it and its tag


def line(polygon: Any, text: str = "text") -> dict[str, Any]:
    return {"text": text, "score": 0.9, "polygon": polygon}


def test_an_ocr_polygon_is_outlined_and_numbered() -> None:
    pixels = grey(120, 200)
    before = pixels.copy()
    png = draw_lines(pixels, [line([[20.4, 40.2], [150.0, 40.0], [150.0, 70.0], [20.0, 70.0]])])
    out = decode(png)
    assert out.shape == pixels.shape
    np.testing.assert_array_equal(pixels, before)
    on_edge = [colour_at(out, 55, col) for col in (19, 20, 21)]  # the left side, 2 wide
    assert LINE in on_edge
    assert any(colour_at(out, row, 85) == LINE for row in (69, 70, 71))  # the bottom side
    assert colour_at(out, 55, 85) == (128, 128, 128)  # inside: the text is not drawn over
    tag = out[27:39, 20:31]  # its number, above the first point (12 x 11 pixels here)
    assert np.all(tag == LINE, axis=-1).mean() > 0.4
    assert tag.min(axis=-1).max() > 200  # white text on the blue tag (the higher contrast)
    np.testing.assert_array_equal(out[75:], pixels[75:])
    np.testing.assert_array_equal(out[:, 155:], pixels[:, 155:])


def test_lines_are_numbered_by_their_place_in_the_answer() -> None:
    pixels = grey(120, 200, 255)
    good = line([[20, 40], [150, 40], [150, 70], [20, 70]])
    first = decode(draw_lines(pixels, [good]))  # tag "1"
    second = decode(draw_lines(pixels, [line(None), good]))  # tag "2", the same outline
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first[41:], second[41:])  # they differ in the tag only


def test_a_line_at_the_top_gets_its_number_inside_the_image() -> None:
    pixels = grey(120, 200, 255)
    out = decode(draw_lines(pixels, [line([[30, 0], [150, 0], [150, 30], [30, 30]])]))
    assert np.all(out[3:10, 32:40] == LINE, axis=-1).mean() > 0.3


def test_malformed_lines_are_skipped_and_points_outside_clipped() -> None:
    pixels = grey(60, 80)
    malformed: list[Any] = [
        "line",
        {"text": "no polygon", "score": 0.9},
        line([[1, 1], [10, 1]]),  # two points
        line([[1, 1], [10, 1], [10, float("nan")], [1, 10]]),
        line([[1, 1], [10, 1], [10, 10, 3], [1, 10]]),
        line([[1, 1], [10, 1], ["10", 10], [1, 10]]),
        line("1,1 10,1 10,10"),
        line([[100, 1], [120, 1], [120, 10], [100, 10]]),  # entirely right of the image
        line([[1, -30], [10, -30], [10, -5], [1, -5]]),  # entirely above it
    ]
    np.testing.assert_array_equal(decode(draw_lines(pixels, malformed)), pixels)
    crossing = decode(draw_lines(pixels, [line([[-10, 20], [200, 20], [200, 40], [-10, 40]])]))
    assert any(colour_at(crossing, 30, col) == LINE for col in (0, 1))


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((10, 10), dtype=np.uint8),  # grey
        np.zeros((10, 10, 4), dtype=np.uint8),  # RGBA
        np.zeros((10, 10, 3), dtype=np.float32),
        np.zeros((10, 10, 3), dtype=np.uint16),
        np.zeros((0, 10, 3), dtype=np.uint8),
        [[[0, 0, 0]]],  # not an array
    ],
    ids=["grey", "rgba", "float32", "uint16", "empty", "list"],
)
def test_pixels_that_are_not_uint8_rgb_are_refused(pixels: Any) -> None:
    with pytest.raises(ValueError, match=r"uint8 RGB pixels of shape \(H, W, 3\)"):
        draw_detections(pixels, [])
    with pytest.raises(ValueError, match=r"uint8 RGB pixels of shape \(H, W, 3\)"):
        draw_lines(pixels, [])
