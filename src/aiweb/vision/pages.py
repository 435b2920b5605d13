"""The pages of a PDF as images, for the vision models: a scanned, image-only PDF read by
OCR page by page (:mod:`aiweb.vision.jobs`).

Pages are rendered with pypdfium2 (PDFium, the PDF engine of Chromium; part of the
``aiweb[vision]`` extra) at :data:`DPI` dots per inch, white background, as 8-bit RGB.
A page that would have more than ``max_pixels`` pixels at that resolution is rendered
at the highest lower resolution that fits (a poster-sized page still fits the image
limit, ``AIWEB_LIMITS__MAX_IMAGE_PIXELS``), so no rendered page ever has more than
``max_pixels`` pixels.

PDFium may not be called from two threads at once, even on different documents: every
call into it here holds :data:`_PDFIUM_LOCK` (one page is rendered at a time in a
process; a job renders its pages one by one anyway).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from aiweb.errors import DataFormatError, ModelNotReadyError, PayloadTooLargeError

__all__ = ["DPI", "page_scale", "render_pages"]

#: the resolution pages are rendered at, dots per inch (a PDF's unit is 1/72 inch)
DPI = 200
#: PDF units per inch
_POINTS_PER_INCH = 72.0
#: PDFium's error code of a document that needs a password (``FPDF_ERR_PASSWORD``)
_ERR_PASSWORD = 4
_PDFIUM_LOCK = threading.Lock()


def page_scale(width_pt: float, height_pt: float, *, dpi: int, max_pixels: int) -> float:
    """The render scale (pixels per PDF unit) of a page: ``dpi / 72``, lowered when the
    page would have more than ``max_pixels`` pixels at that resolution.

    PDFium renders ``ceil(width_pt * scale)`` by ``ceil(height_pt * scale)`` pixels; the
    scale returned keeps that product at most ``max_pixels``.

    Args:
        width_pt: page width, PDF units (1/72 inch), > 0.
        height_pt: page height, PDF units, > 0.
        dpi: the wanted resolution, dots per inch, ≥ 1.
        max_pixels: the most pixels (width times height) the rendered page may have, ≥ 1.

    Returns:
        The scale, > 0.

    Raises:
        ValueError: a size, ``dpi`` or ``max_pixels`` that is not positive.
    """
    if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt * height_pt)):
        raise ValueError(f"a page of {width_pt} x {height_pt} units has no area")
    if dpi < 1 or max_pixels < 1:
        raise ValueError("dpi and max_pixels must be at least 1")
    scale = dpi / _POINTS_PER_INCH

    def pixels(s: float) -> int:
        return max(1, math.ceil(width_pt * s)) * max(1, math.ceil(height_pt * s))

    if pixels(scale) <= max_pixels:
        return scale
    scale = math.sqrt(max_pixels / (width_pt * height_pt))
    # ceil() may add up to a pixel to each side: step down until the product fits (a few
    # steps); a page so thin that even one pixel across is too many keeps one pixel
    while pixels(scale) > max_pixels and scale > 1e-9:
        scale *= 0.995
    return scale


def _refused(exc: Exception) -> DataFormatError:
    """The error of a PDF PDFium cannot open."""
    code = getattr(exc, "err_code", None)
    if code == _ERR_PASSWORD:
        return DataFormatError(
            "the PDF is encrypted (password-protected): aiweb cannot render its pages"
        )
    return DataFormatError(f"the PDF cannot be read: it is truncated or malformed ({exc})")


def _rgb(bitmap: Any) -> npt.NDArray[np.uint8]:
    """A rendered bitmap as a C-contiguous uint8 RGB array ``(height, width, 3)`` (a copy:
    the bitmap's buffer is freed with it)."""
    array = np.asarray(bitmap.to_numpy(), dtype=np.uint8)
    if array.ndim == 2:  # grey
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    rgb = array[:, :, :3]
    if not bitmap.rev_byteorder and bitmap.mode.startswith("BGR"):
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb)


def render_pages(
    pdf: bytes, *, dpi: int = DPI, max_pixels: int, max_pages: int
) -> Iterator[npt.NDArray[np.uint8]]:
    """Render every page of a PDF, first to last, one at a time.

    A generator: the PDF is opened and checked when the first page is asked for, so the
    errors below are raised by the first ``next()``, before any page is rendered, except
    those about one page (raised when that page comes).

    Args:
        pdf: the PDF file's bytes.
        dpi: resolution, dots per inch (default :data:`DPI`, 200), ≥ 1.
        max_pixels: the most pixels (width times height) a rendered page may have: a larger
            page is rendered at the highest resolution below ``dpi`` that fits
            (:func:`page_scale`), ≥ 1.
        max_pages: the most pages the PDF may have, ≥ 1.

    Yields:
        Each page as uint8 RGB pixels of shape ``(height, width, 3)``, C-contiguous, on a
        white background, as displayed (the page's ``/Rotate`` applied); at ``dpi`` an A4
        page (595.3 by 841.9 units) is 1654 by 2339 pixels.

    Raises:
        DataFormatError: not a PDF PDFium can open (empty, truncated, malformed), an
            encrypted one (a user password; a PDF restricted by an owner password only
            opens and is rendered), a PDF without pages, or a page without area (422).
        PayloadTooLargeError: more than ``max_pages`` pages (413).
        ModelNotReadyError: pypdfium2 is not installed (``pip install 'aiweb[vision]'``)
            (503).
        ValueError: ``dpi``, ``max_pixels`` or ``max_pages`` below 1.
    """
    if dpi < 1 or max_pixels < 1 or max_pages < 1:
        raise ValueError("dpi, max_pixels and max_pages must be at least 1")
    try:
        import pypdfium2  # type: ignore[import-untyped]  # no py.typed
    except ImportError:
        raise ModelNotReadyError(
            "rendering PDF pages needs pypdfium2: pip install 'aiweb[vision]'"
        ) from None
    if not pdf:
        raise DataFormatError("the PDF is empty")
    with _PDFIUM_LOCK:
        try:
            document = pypdfium2.PdfDocument(pdf)
        except pypdfium2.PdfiumError as exc:
            raise _refused(exc) from None
    try:
        with _PDFIUM_LOCK:
            count = len(document)
        if count < 1:
            raise DataFormatError("the PDF has no pages")
        if count > max_pages:
            raise PayloadTooLargeError(
                f"the PDF has {count:,} pages; at most {max_pages:,} are rendered "
                "(AIWEB_LIMITS__MAX_DOCUMENT_PAGES)"
            )
        for index in range(count):
            with _PDFIUM_LOCK:
                try:
                    page = document[index]
                except pypdfium2.PdfiumError as exc:
                    raise DataFormatError(
                        f"page {index + 1} of the PDF cannot be read: {exc}"
                    ) from None
                try:
                    width, height = page.get_size()
                    try:
                        scale = page_scale(width, height, dpi=dpi, max_pixels=max_pixels)
                    except ValueError:
                        raise DataFormatError(
                            f"page {index + 1} of the PDF has no area ({width} x {height})"
                        ) from None
                    bitmap = page.render(scale=scale, rev_byteorder=True)
                    try:
                        pixels = _rgb(bitmap)
                    finally:
                        bitmap.close()
                finally:
                    page.close()
            yield pixels
    finally:
        with _PDFIUM_LOCK:
            document.close()
