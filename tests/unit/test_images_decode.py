"""aiweb.images.decode on images made here: each format decodes to RGB at its size,
colour modes are converted, EXIF orientation is applied, metadata never survives
re-encoding, and every hostile file of issue #25 is refused with the error that says
why — the pixel bomb from its header alone, without allocating its pixels."""

from __future__ import annotations

import io
import time
import tracemalloc

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
from PIL import Image

from aiweb.errors import AiwebError, ImageError, ImageTooLarge, UnsupportedImageFormat
from aiweb.images.decode import (
    JPEG_PADDING_TOLERANCE,
    DecodedImage,
    encode_png,
    inspect_image,
    read_image,
    sniff,
)
from image_helpers import (
    BLUE,
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
    png_zero_bomb,
    webp,
    zip_of,
)

MAX_PIXELS = 40_000_000
MAX_BYTES = 20 * 1024 * 1024


def read(data: bytes, **limits: int) -> DecodedImage:
    return read_image(
        data,
        max_pixels=limits.get("max_pixels", MAX_PIXELS),
        max_bytes=limits.get("max_bytes", MAX_BYTES),
    )


def near(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tolerance))


# -- formats and modes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt"),
    [(jpeg(64, 48), "jpeg"), (png(64, 48), "png"), (webp(64, 48), "webp")],
    ids=["jpeg", "png", "webp"],
)
def test_each_format_decodes_to_rgb_at_its_size(data: bytes, fmt: str) -> None:
    image = read(data)
    assert (image.width, image.height, image.format) == (64, 48, fmt)
    assert image.pixels.shape == (48, 64, 3)
    assert image.pixels.dtype == np.uint8
    assert image.pixels.flags.c_contiguous
    assert not image.pixels.flags.writeable
    assert near(image.pixels[4, 4], RED)
    assert near(image.pixels[40, 60], BLUE)
    assert sniff(data) == fmt
    assert inspect_image(data).pixels == 64 * 48


def test_lossless_webp_and_png_keep_every_pixel() -> None:
    source = np.asarray(picture(33, 17))
    for data in (png(33, 17), webp(33, 17, lossless=True)):
        assert np.array_equal(read(data).pixels, source)


@pytest.mark.parametrize("mode", ["L", "P", "1", "LA"])
def test_grayscale_and_palette_pngs_become_rgb(mode: str) -> None:
    image = read(png(20, 10, mode))
    assert image.pixels.shape == (10, 20, 3)
    expected = np.asarray(picture(20, 10, mode).convert("RGB"))
    assert np.array_equal(image.pixels, expected)


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (4, 2), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((0, 0), (*RED, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 128))  # half transparent black: grey
    image = read(encode(rgba, "PNG"))
    assert tuple(image.pixels[0, 0]) == RED
    assert tuple(image.pixels[1, 1]) == (255, 255, 255)
    assert 120 <= image.pixels[0, 1, 0] <= 135
    palette = rgba.convert("P")  # a palette with a transparent entry (tRNS)
    assert tuple(read(encode(palette, "PNG")).pixels[1, 1]) == (255, 255, 255)
    keyed = Image.new("RGB", (2, 1), RED)
    keyed.putpixel((1, 0), (1, 2, 3))  # an RGB PNG with one transparent colour (tRNS)
    pixels = read(encode(keyed, "PNG", transparency=(1, 2, 3))).pixels
    assert pixels.tolist() == [[list(RED), [255, 255, 255]]]


def test_cmyk_jpeg_and_16_bit_png_become_8_bit_rgb() -> None:
    cmyk = read(encode(picture().convert("CMYK"), "JPEG", quality=95))
    assert near(cmyk.pixels[4, 4], RED)
    deep = Image.new("I;16", (3, 2), 0)
    deep.putpixel((0, 0), 65535)
    deep.putpixel((1, 0), 32768)
    image = read(encode(deep, "PNG"))
    assert image.pixels.shape == (2, 3, 3)
    assert tuple(image.pixels[0, 0]) == (255, 255, 255)
    assert tuple(image.pixels[0, 1]) == (128, 128, 128)
    assert tuple(image.pixels[1, 2]) == (0, 0, 0)


def test_exif_orientation_6_is_applied() -> None:
    # stored 64 x 32 with the red block top-left; orientation 6: rotate 90 degrees
    # clockwise to display, so it shows 32 x 64 with the block top-right
    image = read(jpeg_oriented(6, 64, 32))
    assert (image.width, image.height) == (32, 64)
    assert image.pixels.shape == (64, 32, 3)
    assert near(image.pixels[4, 32 - 5], RED)  # top-right
    assert near(image.pixels[4, 4], BLUE)  # top-left is no longer red
    assert near(image.pixels[60, 28], BLUE)
    assert inspect_image(jpeg_oriented(6, 64, 32)).width == 64  # the header: as stored


def test_exif_orientation_1_changes_nothing() -> None:
    image = read(jpeg_oriented(1, 64, 32))
    assert (image.width, image.height) == (64, 32)
    assert near(image.pixels[4, 4], RED)


def test_gps_metadata_is_read_but_never_kept() -> None:
    data = jpeg_with_gps()
    with Image.open(io.BytesIO(data)) as original:  # the fixture does carry GPS
        assert original.getexif().get_ifd(0x8825)
    image = read(data)
    stored = encode_png(image.pixels)
    with Image.open(io.BytesIO(stored)) as again:
        assert dict(again.getexif()) == {}
        assert again.info.keys() <= {"dpi"} or not {"exif", "icc_profile", "xmp"} & set(again.info)
        assert np.array_equal(np.asarray(again), image.pixels)  # lossless
    assert set(png_chunk_types(stored)) <= {b"IHDR", b"IDAT", b"IEND"}
    assert b"ACME" not in stored
    assert b"Jane" not in stored


def test_encode_png_refuses_what_is_not_rgb_pixels() -> None:
    with pytest.raises(ValueError, match="uint8 pixels"):
        encode_png(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8 pixels"):
        encode_png(np.zeros((2, 2, 3), dtype=np.float32))  # type: ignore[arg-type]


# -- hostile files --------------------------------------------------------------------


def test_a_30000_x_30000_png_header_is_refused_without_allocating() -> None:
    data = png_header_bomb(30_000, 30_000)
    assert len(data) < 200
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ImageTooLarge, match="900,000,000 pixels") as caught:
            read(data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.status == 413
    assert "AIWEB_LIMITS__MAX_IMAGE_PIXELS" in caught.value.detail
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024


def test_a_compressed_bomb_is_refused_before_decoding() -> None:
    data = png_zero_bomb(8_000)  # 64 megapixels of zeros in about 64 KB
    assert len(data) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLarge, match="8,000 x 8,000"):
            read(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024


def test_the_pixel_limit_is_the_callers() -> None:
    data = png(64, 48)
    assert read(data, max_pixels=64 * 48).width == 64
    # Pillow's own bound follows the call, not its default (89 megapixels)
    assert Image.MAX_IMAGE_PIXELS == 64 * 48
    with pytest.raises(ImageTooLarge, match="at most 3,071"):
        read(data, max_pixels=64 * 48 - 1)
    assert read(data).width == 64
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS


def test_more_bytes_than_the_limit_are_refused_first() -> None:
    data = png(64, 48)
    assert read(data, max_bytes=len(data)).width == 64
    with pytest.raises(ImageTooLarge, match="AIWEB_LIMITS__MAX_IMAGE_BYTES"):
        read(data, max_bytes=len(data) - 1)
    with pytest.raises(ImageTooLarge):  # before the format is even looked at
        read(b"GIF89a" + b"\0" * 100, max_bytes=10)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_a_truncated_jpeg_is_refused(cut: float) -> None:
    data = jpeg(256, 256)
    with pytest.raises(ImageError, match="JPEG image is truncated") as caught:
        read(data[: int(len(data) * cut)])
    assert caught.value.status == 422


def test_truncation_is_found_whatever_pillow_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # nothing in aiweb sets it
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # someone else's code did
    data = jpeg(256, 256)
    with pytest.raises(ImageError, match="truncated"):
        read(data[: len(data) // 2])
    data = png(128, 128)
    with pytest.raises(ImageError, match="truncated"):
        read(data[: len(data) - 20])


@pytest.mark.parametrize("make", [png, webp], ids=["png", "webp"])
def test_truncated_pngs_and_webps_are_refused(make: object) -> None:
    data = make(128, 128)  # type: ignore[operator]
    with pytest.raises(ImageError, match="truncated"):
        read(data[: len(data) - 20])


def test_corrupt_pixel_data_is_refused() -> None:
    data = bytearray(png(64, 64))
    at = data.find(b"IDAT") + 8
    data[at : at + 20] = b"\xde\xad\xbe\xef" * 5  # the chunk's CRC no longer matches
    with pytest.raises(ImageError, match="PNG image"):
        read(bytes(data))


def test_a_png_inside_a_zip_is_not_an_image() -> None:
    with pytest.raises(UnsupportedImageFormat, match="a ZIP archive") as caught:
        read(zip_of("photo.png", png()))
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("data", "name"),
    [(png(), "PNG"), (webp(), "WebP"), (jpeg(), "JPEG")],
    ids=["png", "webp", "jpeg"],
)
def test_a_zip_appended_to_an_image_is_a_polyglot(data: bytes, name: str) -> None:
    with pytest.raises(ImageError, match=rf"after the end of the {name} image \(a polyglot"):
        read(data + zip_of("payload.txt", b"hello from inside"))


def test_a_jpeg_may_end_with_a_little_padding_but_not_a_script() -> None:
    data = jpeg()
    assert read(data + b"\x00" * 16 + b"\r\n").width == 64
    assert read(data + b"\xff" * JPEG_PADDING_TOLERANCE).width == 64
    with pytest.raises(ImageError, match="polyglot"):
        read(data + b"\x00" * (JPEG_PADDING_TOLERANCE + 1))
    with pytest.raises(ImageError, match="28 bytes of data after the end of the JPEG image"):
        read(data + b"<?php system($_GET['c']); ?>")


@pytest.mark.parametrize(("fmt", "name"), [("WEBP", "WebP"), ("PNG", "PNG")])
def test_animations_are_refused(fmt: str, name: str) -> None:
    with pytest.raises(ImageError, match=f"the {name} image is animated") as caught:
        read(animated(fmt))
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (encode(picture(), "GIF"), "a GIF image"),
        (encode(picture(), "BMP"), "a BMP image"),
        (encode(picture(), "TIFF"), "a TIFF image"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG"),
        (b"<svg onload='alert(1)'/>", "an SVG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
        (b"hello, world\n", "text, not an image"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "a RIFF file but not WebP"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc", "an unknown binary format"),
    ],
    ids=["gif", "bmp", "tiff", "svg-xml", "svg", "pdf", "text", "wav", "binary"],
)
def test_other_formats_are_refused_by_name(data: bytes, what: str) -> None:
    with pytest.raises(UnsupportedImageFormat, match=what) as caught:
        read(data)
    assert caught.value.status == 415
    assert "upload a JPEG, PNG or WebP image" in caught.value.detail


def test_empty_bytes_are_refused() -> None:
    with pytest.raises(ImageError, match="the file is empty") as caught:
        read(b"")
    assert caught.value.status == 422


def test_magic_bytes_alone_are_not_an_image() -> None:
    for data in (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x04\x00\x00\x00WEBP"):
        with pytest.raises(ImageError):
            read(data)


# -- any bytes: a decoded image or our error, never another exception ---------------------

_SEEDS = [jpeg(24, 16), png(24, 16), webp(24, 16), jpeg_oriented(6, 24, 16), png(8, 8, "P")]


def _decodes_or_refuses(data: bytes) -> None:
    refused: AiwebError | None = None
    try:
        image = read(data, max_pixels=1_000_000)
    except AiwebError as exc:  # anything else fails the test
        refused = exc
    if refused is not None:
        assert isinstance(refused, ImageError | ImageTooLarge | UnsupportedImageFormat)
        assert 400 <= refused.status < 500
        assert refused.detail
        return
    assert image.pixels.shape == (image.height, image.width, 3)
    assert image.pixels.dtype == np.uint8


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(st.binary(max_size=512))
def test_any_bytes_decode_or_are_refused(data: bytes) -> None:
    _decodes_or_refuses(data)


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    tail=st.binary(max_size=64),
)
def test_damaged_images_decode_or_are_refused(
    seed: bytes, edits: list[tuple[float, int]], cut: float | None, tail: bytes
) -> None:
    data = bytearray(seed)
    for where, value in edits:
        data[min(int(where * len(data)), len(data) - 1)] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    _decodes_or_refuses(bytes(data) + tail)
