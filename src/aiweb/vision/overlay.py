"""A vision model's answer drawn onto the image it was made on, as PNG bytes (Pillow only).

- :func:`draw_detections`: each detection's box as a rectangle outline, and a filled tag
  ``"face 0.87"`` (label and score) above it — inside the box when the box touches the
  top edge of the image, so the tag is always in the picture.
- :func:`draw_lines`: each OCR line's polygon as an outline, and a small tag with its
  1-based place in the list (``"1"``, ``"2"`` …: the reading order the lines come in) at
  its first point. The recognized text itself is not drawn: it may be in any script, and
  the bundled font has Latin glyphs only.

Colours come from Okabe & Ito's colour-blind-safe palette ("Color Universal Design",
2008), one per label and always the same one: ``face`` sky blue ``(86, 180, 233)``,
``person`` orange ``(230, 159, 0)``, OCR lines blue ``(0, 114, 178)``; any other label
the palette colour picked by the CRC-32 of its UTF-8 bytes (stable across processes,
unlike ``hash``). A tag's text is black or white, whichever contrasts more with its fill.

Line widths and font sizes scale with the image: outlines are
``max(2, round(min(width, height) / 250))`` pixels wide, and tags use Pillow's bundled
scalable font (``ImageFont.load_default(size=…)``, Pillow >= 10.1) at
``max(12, round(min(width, height) / 45))`` pixels for detections and ``/ 60`` for OCR
lines, so an overlay of a 4000-pixel photo is as legible as one of a 500-pixel portrait.

The cost is mostly the PNG encoding (zlib at Pillow's default level): about 2.5 s for an
8-megapixel photo on one core, against milliseconds for the drawing. Async callers run
these functions in a worker thread.

Both functions are forgiving of their answers and strict about their pixels: an item
that cannot be drawn (a missing key, a value of the wrong type, a NaN or infinite
coordinate or score, a box of no area or entirely outside the image) is skipped, and
coordinates are clipped to the image; only pixels that are not uint8 RGB raise. The
input array is never modified: the drawing is done on a copy.
"""

from __future__ import annotations

import io
import math
import numbers
import zlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from aiweb.vision.detectors import check_pixels

__all__ = ["draw_detections", "draw_lines"]

_RGB = tuple[int, int, int]
#: a box to draw: label, score, and its inclusive corners x0, y0, x1, y1 in the image
_Box = tuple[str, float, int, int, int, int]

#: Okabe & Ito's palette without its black (an outline must show on dark pictures).
_PALETTE: tuple[_RGB, ...] = (
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (0, 114, 178),  # blue
    (213, 94, 0),  # vermillion
    (204, 121, 167),  # reddish purple
)
#: The labels of aiweb's own detectors, given colours that stand apart on photographs.
_FIXED: dict[str, _RGB] = {"face": (86, 180, 233), "person": (230, 159, 0)}
#: The colour of OCR line outlines and their tags.
_LINE_COLOUR: _RGB = (0, 114, 178)
#: Longest label drawn, in characters (longer ones end with ``...``).
_MAX_LABEL = 40


def _colour_of(label: str) -> _RGB:
    """The colour of a label: fixed for ``face`` and ``person``, else by its CRC-32."""
    fixed = _FIXED.get(label)
    if fixed is not None:
        return fixed
    return _PALETTE[zlib.crc32(label.encode("utf-8")) % len(_PALETTE)]


def _text_colour(fill: _RGB) -> _RGB:
    """Black or white, whichever contrasts more with ``fill`` (WCAG relative luminance)."""

    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in fill)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # contrast with black (L + 0.05) / 0.05 against white 1.05 / (L + 0.05)
    return (0, 0, 0) if (luminance + 0.05) ** 2 > 0.05 * 1.05 else (255, 255, 255)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN and infinities too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _line_width(width: int, height: int) -> int:
    return max(2, round(min(width, height) / 250))


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (its bitmap font without FreeType)."""
    return ImageFont.load_default(size=size)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # compression level 1: a photo's overlay in ~0.6 s instead of 2.5 s, ~20% larger
    image.save(buffer, "PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


class _Canvas:
    """A copy of the pixels as a Pillow image, and the tag drawing shared by both overlays."""

    def __init__(self, pixels: npt.NDArray[np.uint8], font_divisor: int, min_font: int) -> None:
        check_pixels(pixels)
        self.image = Image.fromarray(np.array(pixels, dtype=np.uint8, copy=True, order="C"))
        self.width, self.height = self.image.size
        self.draw = ImageDraw.Draw(self.image)
        self.line_width = _line_width(self.width, self.height)
        self.font = _font(max(min_font, round(min(self.width, self.height) / font_divisor)))
        self.pad = max(1, self.line_width // 2 + 1)

    def clip_x(self, x: float) -> int:
        return min(self.width - 1, max(0, round(x)))

    def clip_y(self, y: float) -> int:
        return min(self.height - 1, max(0, round(y)))

    def tag(self, text: str, x: int, y: int, fill: _RGB, *, inside_top: int) -> None:
        """A filled tag of ``text`` whose bottom-left corner is at ``(x, y)``; moved down to
        ``inside_top`` when it would cross the top edge, and left when it would cross the
        right edge (never past the left one)."""
        if not isinstance(self.font, ImageFont.FreeTypeFont):  # the bitmap font: Latin-1 only
            text = text.encode("latin-1", "replace").decode("latin-1")
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self.font)
        tag_w = right - left + 2 * self.pad
        tag_h = bottom - top + 2 * self.pad
        x0 = max(0, min(x, self.width - tag_w))
        y0 = y - tag_h if y - tag_h >= 0 else inside_top
        y0 = max(0, min(y0, self.height - tag_h))
        self.draw.rectangle((x0, y0, x0 + tag_w - 1, y0 + tag_h - 1), fill=fill)
        self.draw.text(
            (x0 + self.pad - left, y0 + self.pad - top),
            text,
            font=self.font,
            fill=_text_colour(fill),
        )


def _box_of(detection: Any, width: int, height: int) -> _Box | None:
    """``(label, score, x0, y0, x1, y1)`` (inclusive corners, clipped) or None."""
    if not isinstance(detection, Mapping):
        return None
    label, box = detection.get("label"), detection.get("box")
    score = _number(detection.get("score"))
    if not isinstance(label, str) or score is None or not isinstance(box, Mapping):
        return None
    x, y = _number(box.get("x")), _number(box.get("y"))
    w, h = _number(box.get("width")), _number(box.get("height"))
    if x is None or y is None or w is None or h is None or w <= 0 or h <= 0:
        return None
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width - 1, round(x + w) - 1), min(height - 1, round(y + h) - 1)
    if x1 < x0 or y1 < y0:  # empty, or entirely outside the image
        return None
    return label, score, x0, y0, x1, y1


def draw_detections(
    pixels: npt.NDArray[np.uint8], detections: Sequence[Mapping[str, Any]]
) -> bytes:
    """The image with each detection's box and a ``"label score"`` tag drawn on it.

    Args:
        pixels: uint8 array of shape ``(height, width, 3)``, RGB — the image the
            detections were made on (not modified).
        detections: ``{"label": str, "score": float, "box": {"x", "y", "width",
            "height"}}`` each, the box in pixels of ``pixels``: ``x``/``y`` its top-left
            corner. Drawn in the order given, every box before any tag, so no outline
            crosses a tag. The score is shown with two decimals, the label cut to 40
            characters. An item with a missing key, a wrong type, a NaN or infinite
            number, no area or no pixel in the image is skipped; boxes that cross an edge
            are clipped to it.

    Returns:
        A PNG (8-bit RGB, no metadata) of the same width and height as ``pixels``.

    Raises:
        ValueError: ``pixels`` is not a uint8 array of shape ``(height, width, 3)``.
    """
    canvas = _Canvas(pixels, font_divisor=45, min_font=12)
    boxes = [b for b in (_box_of(d, canvas.width, canvas.height) for d in detections) if b]
    for label, _score, x0, y0, x1, y1 in boxes:
        canvas.draw.rectangle((x0, y0, x1, y1), outline=_colour_of(label), width=canvas.line_width)
    for label, score, x0, y0, _x1, _y1 in boxes:
        name = label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 3] + "..."
        canvas.tag(f"{name} {score:.2f}", x0, y0, _colour_of(label), inside_top=y0)
    return _png(canvas.image)


def _polygon_of(line: Any, width: int, height: int) -> list[tuple[int, int]] | None:
    """The line's polygon clipped to the image, or None."""
    if not isinstance(line, Mapping):
        return None
    polygon = line.get("polygon")
    if not isinstance(polygon, Sequence) or isinstance(polygon, str) or len(polygon) < 3:
        return None
    points: list[tuple[float, float]] = []
    for point in polygon:
        if not isinstance(point, Sequence) or isinstance(point, str) or len(point) != 2:
            return None
        x, y = _number(point[0]), _number(point[1])
        if x is None or y is None:
            return None
        points.append((x, y))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if max(xs) < 0 or max(ys) < 0 or min(xs) > width - 1 or min(ys) > height - 1:
        return None
    return [
        (min(width - 1, max(0, round(x))), min(height - 1, max(0, round(y)))) for x, y in points
    ]


def draw_lines(pixels: npt.NDArray[np.uint8], lines: Sequence[Mapping[str, Any]]) -> bytes:
    """The image with each OCR line's outline and its number drawn on it.

    Args:
        pixels: uint8 array of shape ``(height, width, 3)``, RGB — the image the lines
            were read on (not modified).
        lines: ``{"text": str, "score": float, "polygon": [[x, y], …]}`` each, in reading
            order; the polygon's corners (4 from the OCR, at least 3 here) in pixels of
            ``pixels``, float or int. Only ``polygon`` is read: the text is not drawn. Line
            ``i`` (0-based) gets the tag ``str(i + 1)`` — its place in ``lines``, so the
            numbers match the answer even when an item is skipped — with its bottom-left
            corner at the polygon's first point (inside the image when that is at the top
            edge). A line without a polygon, with a point that is not two finite numbers,
            or entirely outside the image is skipped; points outside are clipped.

    Returns:
        A PNG (8-bit RGB, no metadata) of the same width and height as ``pixels``.

    Raises:
        ValueError: ``pixels`` is not a uint8 array of shape ``(height, width, 3)``.
    """
    canvas = _Canvas(pixels, font_divisor=60, min_font=12)
    polygons = [(i, _polygon_of(line, canvas.width, canvas.height)) for i, line in enumerate(lines)]
    drawn = [(i, polygon) for i, polygon in polygons if polygon is not None]
    for _i, polygon in drawn:
        canvas.draw.line(
            [*polygon, polygon[0]], fill=_LINE_COLOUR, width=canvas.line_width, joint="curve"
        )
    for i, polygon in drawn:
        x, y = polygon[0]
        canvas.tag(str(i + 1), x, y, _LINE_COLOUR, inside_top=y)
    return _png(canvas.image)
