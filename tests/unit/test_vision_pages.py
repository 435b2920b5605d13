"""Rendering the pages of a PDF (:mod:`aiweb.vision.pages`): PDFs made by Pillow (image
pages, as a scanner makes them), a page count, the shapes at 200 dpi, pages rendered at a
lower resolution to fit the pixel limit, and refused files (corrupt, truncated,
encrypted, too many pages)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from aiweb.errors import DataFormatError, InvalidInputError, PayloadTooLargeError
from aiweb.vision.pages import DPI, page_scale, render_pages

pytest.importorskip("pypdfium2")

RED = (220, 20, 30)
BLUE = (20, 40, 220)
BIG = 10**9


def pillow_pdf(*pages: Image.Image, resolution: float = 100.0) -> bytes:
    """``pages`` as a PDF made by Pillow, each image a page of its size at ``resolution``
    dpi (a 400 x 200 image at 100 dpi is a 4 x 2 inch page: 288 x 144 units)."""
    out = io.BytesIO()
    first, *rest = pages
    first.save(out, "PDF", resolution=resolution, save_all=True, append_images=rest)
    return out.getvalue()


def two_pages() -> bytes:
    red = Image.new("RGB", (400, 200), RED)
    blue = Image.new("RGB", (300, 500), BLUE)
    blue.paste(RED, (0, 0, 100, 100))  # its top-left corner red
    return pillow_pdf(red, blue)


def test_every_page_in_order_as_uint8_rgb_at_200_dpi() -> None:
    pages = list(render_pages(two_pages(), max_pixels=BIG, max_pages=10))
    assert len(pages) == 2
    first, second = pages
    # 4 x 2 inches and 3 x 5 inches at 200 dpi
    assert first.shape == (400, 800, 3)
    assert second.shape == (1000, 600, 3)
    for page in pages:
        assert page.dtype == np.uint8
        assert page.flags.c_contiguous
    assert np.abs(first[200, 400].astype(int) - RED).max() <= 3  # RGB, not BGR
    assert np.abs(second[20, 20].astype(int) - RED).max() <= 3  # top-left is at the top left
    assert np.abs(second[900, 500].astype(int) - BLUE).max() <= 3


def test_dpi_sets_the_size() -> None:
    (page,) = render_pages(
        pillow_pdf(Image.new("RGB", (400, 200), RED)), dpi=72, max_pixels=BIG, max_pages=1
    )
    assert page.shape == (144, 288, 3)
    assert DPI == 200


def test_a_page_over_the_pixel_limit_is_rendered_at_a_lower_dpi_that_fits() -> None:
    pdf = two_pages()
    limit = 50_000  # the first page at 200 dpi has 320,000 pixels, the second 600,000
    first, second = render_pages(pdf, max_pixels=limit, max_pages=10)
    for page, (width_in, height_in) in ((first, (4, 2)), (second, (3, 5))):
        height, width = page.shape[:2]
        assert height * width <= limit
        assert height * width > 0.97 * limit  # as large as fits, not much smaller
        assert width / height == pytest.approx(width_in / height_in, rel=0.02)  # not squashed
    # a page under the limit keeps its 200 dpi
    small, _ = render_pages(pdf, max_pixels=320_000, max_pages=10)
    assert small.shape == (400, 800, 3)


def test_page_scale_never_exceeds_the_limit() -> None:
    for width, height, limit in ((612.0, 792.0, 1), (612.0, 792.0, 999), (14400.0, 3.0, 5000)):
        scale = page_scale(width, height, dpi=200, max_pixels=limit)
        pixels = max(1, math.ceil(width * scale)) * max(1, math.ceil(height * scale))
        assert pixels <= max(limit, 1), (width, height, limit, pixels)
    assert page_scale(612.0, 792.0, dpi=200, max_pixels=BIG) == pytest.approx(200 / 72)
    with pytest.raises(ValueError, match="no area"):
        page_scale(0.0, 792.0, dpi=200, max_pixels=BIG)


def test_corrupt_truncated_and_empty_pdfs_are_invalid_input() -> None:
    pdf = two_pages()
    for bad in (b"not a pdf at all", b"%PDF-1.4\n%garbage\n", b"", pdf[: len(pdf) // 3]):
        with pytest.raises(InvalidInputError):
            list(render_pages(bad, max_pixels=BIG, max_pages=10))


def test_an_encrypted_pdf_is_invalid_input() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(two_pages())))
    writer.encrypt("secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(DataFormatError, match="encrypted"):
        next(render_pages(out.getvalue(), max_pixels=BIG, max_pages=10))


def test_more_pages_than_the_limit_is_refused_before_rendering() -> None:
    pages = render_pages(two_pages(), max_pixels=BIG, max_pages=1)
    with pytest.raises(PayloadTooLargeError, match="2 pages"):
        next(pages)
    with pytest.raises(ValueError, match="at least 1"):
        next(render_pages(two_pages(), max_pixels=0, max_pages=1))
