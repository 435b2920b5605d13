"""Images made in the tests (Pillow, zlib, zipfile): the formats aiweb reads, and the
hostile files of issue #25 (a pixel bomb's header, truncation, GPS metadata, polyglots,
animations, other formats)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import Any

from PIL import Image

RED = (220, 20, 30)
BLUE = (20, 40, 220)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    """``image`` saved as ``fmt`` (a Pillow format name)."""
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def picture(width: int = 64, height: int = 48, mode: str = "RGB") -> Image.Image:
    """A ``width`` x ``height`` image: blue, with a red 16 x 16 block in its top-left corner."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, 16, 16))
    return image if mode == "RGB" else image.convert(mode)


def jpeg(width: int = 64, height: int = 48, **options: Any) -> bytes:
    return encode(picture(width, height), "JPEG", quality=95, **options)


def png(width: int = 64, height: int = 48, mode: str = "RGB") -> bytes:
    return encode(picture(width, height, mode), "PNG")


def webp(width: int = 64, height: int = 48, **options: Any) -> bytes:
    return encode(picture(width, height), "WEBP", **options)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order."""
    pos, kinds = 8, []
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        kinds.append(kind)
        pos += 12 + length
    return kinds


def png_header_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid-looking PNG header declaring ``width`` x ``height`` 8-bit RGB pixels, with
    a tiny IDAT (a few bytes of pixels) and an IEND: what a decompression bomb shows
    before it is decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_zero_bomb(side: int = 8_000) -> bytes:
    """A real compressed bomb: a ``side`` x ``side`` grayscale PNG of zeros, whole and
    valid (about 64 KB for 64 megapixels)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_with_gps() -> bytes:
    """A JPEG whose EXIF holds a GPS position, a camera make and a description."""
    image = picture()
    exif = image.getexif()
    exif[0x010F] = "ACME Camera"  # Make
    exif[0x010E] = "Jane at home"  # ImageDescription
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"  # GPSLatitudeRef
    gps[2] = (51.0, 30.0, 26.0)  # GPSLatitude
    gps[3] = "W"  # GPSLongitudeRef
    gps[4] = (0.0, 7.0, 39.0)  # GPSLongitude
    return encode(image, "JPEG", quality=95, exif=exif)


def jpeg_oriented(orientation: int, width: int = 64, height: int = 32) -> bytes:
    """A ``width`` x ``height`` JPEG (red block top-left as stored) with an EXIF
    Orientation tag."""
    image = picture(width, height)
    exif = image.getexif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif)


def zip_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, data)
    return out.getvalue()


def animated(fmt: str) -> bytes:
    """A two-frame animation (``WEBP`` or ``PNG``: an APNG)."""
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    """A JPEG cut in the middle of its image data."""
    data = jpeg(256, 256)
    return data[: len(data) // 2]
