"""Decode an uploaded image safely: JPEG, PNG and WebP only, bounded before decoding.

:func:`read_image` takes the uploaded bytes and gives back RGB pixels, or refuses the
file with an error that says what was wrong. In order:

1. **bytes**: more than ``max_bytes`` (``AIWEB_LIMITS__MAX_IMAGE_BYTES``) is refused
   before anything is looked at (:class:`~aiweb.errors.ImageTooLarge`, 413); an empty
   file is refused (:class:`~aiweb.errors.ImageError`, 422).
2. **format**, told by the first bytes (never the file name or the ``Content-Type``):
   JPEG ``FF D8 FF``, PNG ``89 50 4E 47 0D 0A 1A 0A``, WebP ``RIFF<size>WEBP``. Anything
   else is refused naming what it looks like when that is recognisable (a GIF, TIFF, BMP,
   SVG, PDF, ZIP …) (:class:`~aiweb.errors.UnsupportedImageFormat`, 415).
3. **structure**, read by this module without decoding (a walk over the PNG chunks, the
   JPEG segments and the RIFF chunks): the declared width and height, animation (an APNG
   ``acTL`` of more than one frame, a WebP ``ANIM``/``ANMF`` chunk or animation flag),
   truncation (no PNG ``IEND``, no JPEG end of image, a RIFF shorter than it says) and
   **data after the image's end** (a polyglot: a ZIP appended to a PNG, say). After a
   JPEG's end of image at most :data:`JPEG_PADDING_TOLERANCE` bytes of padding (``00``,
   ``FF``, white space) are tolerated; the secondary pictures of an MPO (the multi-picture
   JPEG of some phones, declared by its ``APP2`` ``MPF`` segment) are accepted and dropped.
4. **pixels**: ``width x height`` over ``max_pixels`` (``AIWEB_LIMITS__MAX_IMAGE_PIXELS``)
   is refused from the header, before any pixel is decoded (413). Pillow is then asked
   to open the bytes as the sniffed format only, with its own bomb bound
   (``Image.MAX_IMAGE_PIXELS``) set to ``max_pixels`` for the call, and the declared
   size checked again as Pillow reads it.
5. **decode**: a full ``load()``; anything Pillow raises (``OSError``, ``SyntaxError``,
   ``ValueError`` …) becomes an :class:`~aiweb.errors.ImageError` that says what Pillow
   said. Truncation is found by step 3 whatever ``ImageFile.LOAD_TRUNCATED_IMAGES`` says.
6. **orientation and colour**: the EXIF orientation is applied
   (``ImageOps.exif_transpose``), so width, height and pixels are as the image is
   displayed; grayscale, palette, CMYK and 16-bit images become 8-bit RGB, and images
   with transparency are composited on white.

Nothing of the file's metadata (EXIF, GPS, XMP, ICC profile, text chunks) is kept:
:class:`DecodedImage` holds pixels only, and :func:`encode_png` writes a PNG from them
alone.

Decoding is CPU work: async callers run :func:`read_image` in a worker thread
(``anyio.to_thread.run_sync``).
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from aiweb.errors import AiwebError, ImageError, ImageTooLarge, UnsupportedImageFormat

__all__ = [
    "BYTES_SETTING",
    "FORMATS",
    "JPEG_PADDING_TOLERANCE",
    "MEDIA_TYPES",
    "PIXELS_SETTING",
    "DecodedImage",
    "ImageFormat",
    "ImageHeader",
    "encode_png",
    "inspect_image",
    "read_image",
    "sniff",
]

ImageFormat = Literal["jpeg", "png", "webp"]

#: The formats read, in the order they are named in errors.
FORMATS: tuple[ImageFormat, ...] = ("jpeg", "png", "webp")
#: The media type of each format (what a raw image body may be sent as).
MEDIA_TYPES: dict[ImageFormat, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
}
BYTES_SETTING = "AIWEB_LIMITS__MAX_IMAGE_BYTES"
PIXELS_SETTING = "AIWEB_LIMITS__MAX_IMAGE_PIXELS"
#: Bytes of padding (``00``, ``FF``, white space) tolerated after a JPEG's end of image.
JPEG_PADDING_TOLERANCE = 1024

ACCEPTED = "a JPEG, PNG or WebP image"
_NAMES: dict[ImageFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP"}
_PILLOW_FORMATS: dict[ImageFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MAX_CHUNKS = 200_000  # a walk over more chunks than this is refused (CPU bound)
_PADDING = frozenset(b"\x00\xff \t\r\n")

#: What other files start with, to name them when refusing them.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"8BPS", "a Photoshop document"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"%PDF-", "a PDF document"),
    (b"%!PS", "a PostScript file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file"),
)

# Pillow's bomb bound is a module global: set it and open under one lock (opening reads
# the header only), so concurrent calls with other limits cannot race between the two.
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares, read without decoding it.

    Attributes:
        format: ``"jpeg"``, ``"png"`` or ``"webp"`` (told by the bytes).
        width: stored width in pixels (before EXIF orientation).
        height: stored height in pixels (before EXIF orientation).
        frames: frames declared (1 unless animated).
    """

    format: ImageFormat
    width: int
    height: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        """``width * height``."""
        return self.width * self.height


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """An image decoded to RGB pixels, as it is displayed (EXIF orientation applied).

    Attributes:
        pixels: uint8 array of shape ``(height, width, 3)``, RGB, C-contiguous, read-only.
        width: pixels across, after orientation.
        height: pixels down, after orientation.
        format: the uploaded file's format: ``"jpeg"``, ``"png"`` or ``"webp"``.
    """

    pixels: npt.NDArray[np.uint8]
    width: int
    height: int
    format: ImageFormat


def sniff(data: bytes) -> ImageFormat:
    """The format of an image, told by its first bytes.

    Args:
        data: the file's bytes (the first 16 are enough).

    Returns:
        ``"jpeg"``, ``"png"`` or ``"webp"``.

    Raises:
        ImageError: ``data`` is empty (422).
        UnsupportedImageFormat: anything else; the detail names what it looks like when
            that is recognisable (415).
    """
    if not data:
        raise ImageError(f"the file is empty; upload {ACCEPTED}")
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise UnsupportedImageFormat(f"the file is {_looks_like(data)}; upload {ACCEPTED}")


def _looks_like(data: bytes) -> str:
    for signature, what in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return what
    if data[:4] == b"RIFF":
        return "a RIFF file but not WebP (WAV, AVI …)"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "an AVIF image"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "a HEIC/HEIF image"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return "an SVG or XML document" if b"<svg" in head else "an XML document"
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML document"
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "not a JPEG, PNG or WebP image (an unknown binary format)"
    return "text, not an image"


def inspect_image(data: bytes, *, max_bytes: int | None = None) -> ImageHeader:
    """Read an image's header and check its structure, without decoding it (steps 1 to 3 of
    the module docs).

    Args:
        data: the whole file.
        max_bytes: refuse more bytes than this (``None``: no bound).

    Returns:
        Its format, declared size and frame count.

    Raises:
        ImageTooLarge: more than ``max_bytes`` (413).
        UnsupportedImageFormat: not a JPEG, PNG or WebP image (415).
        ImageError: empty, truncated, malformed, or data after the image's end (422).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageTooLarge(f"the image is larger than {max_bytes:,} bytes ({BYTES_SETTING})")
    kind = sniff(data)
    if kind == "png":
        return _png_header(data)
    if kind == "jpeg":
        return _jpeg_header(data)
    return _webp_header(data)


def read_image(data: bytes, *, max_pixels: int, max_bytes: int) -> DecodedImage:
    """Decode an uploaded image to RGB pixels, refusing hostile files (module docs).

    Args:
        data: the whole file.
        max_pixels: most pixels (width x height) its header may declare
            (``AIWEB_LIMITS__MAX_IMAGE_PIXELS``).
        max_bytes: most bytes (``AIWEB_LIMITS__MAX_IMAGE_BYTES``).

    Returns:
        The pixels as displayed (EXIF orientation applied), uint8 RGB of shape
        ``(height, width, 3)``, and the file's format.

    Raises:
        ImageTooLarge: more bytes than ``max_bytes``, or more pixels than ``max_pixels``
            declared (a decompression bomb), found before decoding (413).
        UnsupportedImageFormat: not a JPEG, PNG or WebP image (415).
        ImageError: empty, truncated or corrupt, animated, or a polyglot (data after the
            image's end) (422); the detail says which.
    """
    header = inspect_image(data, max_bytes=max_bytes)
    name = _NAMES[header.format]
    if header.frames > 1:
        raise ImageError(
            f"the {name} image is animated ({header.frames} frames); upload a still image"
        )
    _check_pixels(header.width, header.height, max_pixels)
    try:
        with _OPEN_LOCK:
            Image.MAX_IMAGE_PIXELS = max_pixels
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[header.format]])
    except Image.DecompressionBombError:
        raise ImageTooLarge(
            f"the image declares more than {max_pixels:,} pixels ({PIXELS_SETTING})"
        ) from None
    except MemoryError:
        raise  # the server's state, not the file's (sizes are bounded above)
    except Exception as exc:  # hostile bytes: whatever Pillow raises is the file's fault
        raise ImageError(f"the {name} image cannot be read: {_said(exc)}") from None
    try:
        with image:
            _check_pixels(image.width, image.height, max_pixels)
            if getattr(image, "is_animated", False) and image.format != "MPO":
                raise ImageError(f"the {name} image is animated; upload a still image")
            image.load()  # an MPO: its first picture; the others are dropped
            shown = ImageOps.exif_transpose(image) or image
            pixels = _rgb(shown)
    except (AiwebError, MemoryError):
        raise
    except Image.DecompressionBombError:
        raise ImageTooLarge(
            f"the image declares more than {max_pixels:,} pixels ({PIXELS_SETTING})"
        ) from None
    except Exception as exc:  # hostile bytes: whatever Pillow raises is the file's fault
        raise ImageError(f"the {name} image is corrupt: {_said(exc)}") from None
    pixels.flags.writeable = False
    height, width = pixels.shape[:2]
    return DecodedImage(pixels=pixels, width=int(width), height=int(height), format=header.format)


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """A PNG of RGB pixels, with no metadata (no EXIF, text, ICC or time chunks).

    Args:
        pixels: uint8 array of shape ``(height, width, 3)``, RGB
            (:attr:`DecodedImage.pixels`).

    Returns:
        The PNG file's bytes (lossless: decoding them gives ``pixels`` back).

    Raises:
        ValueError: ``pixels`` is not a uint8 array of shape ``(h, w, 3)``.
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(
            f"expected uint8 pixels of shape (h, w, 3), got {pixels.dtype} {pixels.shape}"
        )
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format="PNG", compress_level=6)
    return out.getvalue()


# -- checks ---------------------------------------------------------------------------


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"the image declares a size of {width} x {height} pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width:,} x {height:,} = {width * height:,} pixels; at most "
            f"{max_pixels:,} ({PIXELS_SETTING})"
        )


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    """8-bit RGB pixels of a loaded image of any mode Pillow gives JPEG, PNG and WebP."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grayscale PNG
        gray = np.asarray(image).astype(np.uint32) >> 8
        gray8 = np.clip(gray, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray8[:, :, None], 3, axis=2))
    if mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float32), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("P", "L", "RGB") and "transparency" in image.info:  # a tRNS colour
        image = image.convert("RGBA")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or image.mode == "RGBA":
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    rgb = image.convert("RGB")
    return np.array(rgb, dtype=np.uint8, order="C")


# -- structure: PNG ---------------------------------------------------------------------


def _png_header(data: bytes) -> ImageHeader:
    n = len(data)
    pos = len(_PNG_SIGNATURE)
    width = height = 0
    frames = 1
    chunks = 0
    while True:
        if pos + 8 > n:
            raise ImageError("the PNG image is truncated (it ends before its IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF:
            raise ImageError(f"the PNG image is corrupt (a chunk length of {length} at byte {pos})")
        body = pos + 8
        end = body + length + 4  # + CRC
        if end > n:
            raise ImageError("the PNG image is truncated (it ends inside a chunk)")
        if chunks == 0:
            if kind != b"IHDR" or length != 13:
                raise ImageError("the PNG image is corrupt (its first chunk is not IHDR)")
            width, height = struct.unpack_from(">II", data, body)
        elif kind == b"acTL" and length >= 8:
            (frames,) = struct.unpack_from(">I", data, body)
        chunks += 1
        if chunks > _PNG_MAX_CHUNKS:
            raise ImageError(f"the PNG image has more than {_PNG_MAX_CHUNKS:,} chunks")
        pos = end
        if kind == b"IEND":
            break
    if pos < n:
        raise ImageError(
            f"{n - pos:,} bytes of data after the end of the PNG image (a polyglot file?)"
        )
    return ImageHeader("png", width, height, max(frames, 1))


# -- structure: JPEG ----------------------------------------------------------------------

# start-of-frame markers (not DHT C4, JPG C8, DAC CC)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0..7


def _jpeg_header(data: bytes) -> ImageHeader:
    n = len(data)
    pos = 2  # after SOI
    width = height = 0
    scanned = False
    mpf = False
    while True:
        at = data.find(b"\xff", pos)  # junk between segments is skipped, as decoders do
        if at < 0:
            raise ImageError("the JPEG image is truncated (no end-of-image marker)")
        pos = at
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise ImageError("the JPEG image is truncated (no end-of-image marker)")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            break
        if marker in _STANDALONE or marker == 0x00:
            continue
        if marker == 0xD8:
            raise ImageError("the JPEG image is corrupt (a second start-of-image marker)")
        if pos + 2 > n:
            raise ImageError("the JPEG image is truncated (it ends inside a segment)")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise ImageError(f"the JPEG image is corrupt (a segment length of {length})")
        if pos + length > n:
            raise ImageError("the JPEG image is truncated (it ends inside a segment)")
        segment = data[pos + 2 : pos + length]
        if marker in _SOF and width == 0 and height == 0:
            if len(segment) < 5:
                raise ImageError("the JPEG image is corrupt (a short start-of-frame segment)")
            height, width = struct.unpack_from(">HH", segment, 1)
        elif marker == 0xE2 and segment.startswith(b"MPF\x00"):
            mpf = True
        pos += length
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            if width == 0 or height == 0:
                raise ImageError("the JPEG image is corrupt (image data before its size)")
            scanned = True
            pos = _skip_entropy_data(data, pos)
    if not scanned:
        raise ImageError("the JPEG image is corrupt (no image data before its end)")
    trailing = data[pos:]
    secondary = mpf and trailing.startswith(b"\xff\xd8\xff")  # an MPO's other pictures
    if (
        trailing
        and not secondary
        and (len(trailing) > JPEG_PADDING_TOLERANCE or not set(trailing) <= _PADDING)
    ):
        raise ImageError(
            f"{len(trailing):,} bytes of data after the end of the JPEG image (a polyglot file?)"
        )
    return ImageHeader("jpeg", width, height)


def _skip_entropy_data(data: bytes, pos: int) -> int:
    """Where the marker after a scan's entropy-coded data starts (its ``FF``)."""
    n = len(data)
    while True:
        at = data.find(b"\xff", pos)
        if at < 0 or at + 1 >= n:
            raise ImageError("the JPEG image is truncated (no end-of-image marker)")
        following = data[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos = at + 1 if following == 0xFF else at + 2  # stuffing, restart, fill
            continue
        return at


# -- structure: WebP ---------------------------------------------------------------------


def _webp_header(data: bytes) -> ImageHeader:
    n = len(data)
    if n < 12:
        raise ImageError("the WebP image is truncated")
    (size,) = struct.unpack_from("<I", data, 4)
    riff_end = 8 + size
    if riff_end > n:
        raise ImageError(f"the WebP image is truncated ({n:,} bytes; its header says {riff_end:,})")
    if riff_end < n:
        raise ImageError(
            f"{n - riff_end:,} bytes of data after the end of the WebP image (a polyglot file?)"
        )
    pos = 12
    width = height = 0
    animated = False
    first = True
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise ImageError("the WebP image is truncated (it ends inside a chunk header)")
        kind, length = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if body + length > riff_end:
            raise ImageError("the WebP image is truncated (it ends inside a chunk)")
        chunk = data[body : body + length]
        if kind in (b"ANIM", b"ANMF"):
            animated = True
        elif kind == b"VP8X" and first and length >= 10:
            animated = animated or bool(chunk[0] & 0x02)
            width = 1 + int.from_bytes(chunk[4:7], "little")
            height = 1 + int.from_bytes(chunk[7:10], "little")
        elif kind == b"VP8 " and width == 0 and length >= 10:
            if chunk[3:6] != b"\x9d\x01\x2a":
                raise ImageError("the WebP image is corrupt (a bad VP8 frame header)")
            w, h = struct.unpack_from("<HH", chunk, 6)
            width, height = w & 0x3FFF, h & 0x3FFF
        elif kind == b"VP8L" and width == 0 and length >= 5:
            if chunk[0] != 0x2F:
                raise ImageError("the WebP image is corrupt (a bad VP8L signature)")
            bits = int.from_bytes(chunk[1:5], "little")
            width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        first = False
        pos = body + length + (length & 1)  # chunks are padded to even sizes
    if width == 0 or height == 0:
        raise ImageError("the WebP image is corrupt (no VP8, VP8L or VP8X chunk)")
    return ImageHeader("webp", width, height, 2 if animated else 1)
