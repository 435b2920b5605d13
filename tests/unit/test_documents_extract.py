"""Reading documents (aiweb.documents.extract): the type from the bytes, the text page by
page, and every refusal of a hostile file, with its status and message. All files are
made in memory (tests/document_helpers.py)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest

from aiweb.documents.extract import (
    DOCX,
    OCR_MODEL,
    PDF,
    TXT,
    ExtractionLimits,
    check_zip,
    extract,
    sniff,
)
from aiweb.errors import (
    AiwebError,
    DataFormatError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from document_helpers import (
    DOCX_TYPE,
    docx_bomb,
    encrypted_pdf,
    hand_made_pdf,
    image_only_pdf,
    make_docx,
    make_pdf,
    truncated_pdf,
    zip_without_document,
)


def refusal(data: bytes, limits: ExtractionLimits | None = None) -> AiwebError:
    with pytest.raises(AiwebError) as caught:
        extract(data, limits)
    return caught.value


# -- the type comes from the bytes ------------------------------------------------------


def test_sniff_goes_by_the_bytes() -> None:
    assert sniff(make_pdf(["x"])) == PDF
    assert sniff(make_docx([["x"]])) == DOCX == DOCX_TYPE
    assert sniff("plain text, café".encode()) == TXT
    assert sniff(b"%PDF") == TXT  # not the whole signature: read (and refused) as text


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "legacy Office file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 64, "JPEG image"),
        (b"{\\rtf1\\ansi hello}", "RTF document"),
        (zip_without_document(), "not a Word document"),
    ],
)
def test_other_types_are_415_naming_the_accepted_ones(data: bytes, needle: str) -> None:
    exc = refusal(data)
    assert isinstance(exc, UnsupportedMediaTypeError)
    assert exc.status == 415
    assert needle in exc.detail
    assert "PDF, DOCX (Word 2007 or later) or UTF-8 plain text" in exc.detail


# -- text, page by page ------------------------------------------------------------------


def test_pdf_text_keeps_its_pages_in_order() -> None:
    pages = ["Jane Doe\nPython developer, café", "Experience\nACME 2019-2023", "References"]
    done = extract(make_pdf(pages))
    assert done.media_type == PDF
    assert done.pages == pages


def test_docx_paragraphs_tables_and_page_breaks_in_body_order() -> None:
    data = make_docx(
        [["Jane Doe", "Python developer"], ["Experience", "ACME"], ["Références"]],
        table=[["Skills", "Python\nSQL"], ["Languages", "English"]],
    )
    done = extract(data)
    assert done.media_type == DOCX
    assert done.pages == [
        "Jane Doe\nPython developer\nSkills\tPython\nSQL\nLanguages\tEnglish",
        "Experience\nACME",
        "Références",
    ]


def test_docx_page_break_before_starts_a_page() -> None:
    done = extract(make_docx([["one"], ["two", "two b"], ["three"]], break_before=True))
    assert done.pages == ["one", "two\ntwo b", "three"]


def test_docx_without_page_breaks_is_one_page() -> None:
    assert extract(make_docx([["a", "b", "c"]])).pages == ["a\nb\nc"]


def test_text_pages_are_separated_by_form_feeds() -> None:
    data = "\ufeffpage one\r\nline two\fpage two\f\fpage four".encode()
    done = extract(data)
    assert done.media_type == TXT
    assert done.pages == ["page one\nline two", "page two", "", "page four"]


def test_utf8_bom_is_dropped() -> None:
    assert extract(b"\xef\xbb\xbfhello").pages == ["hello"]


# -- refusals ---------------------------------------------------------------------------


def test_encrypted_pdf_is_422_saying_so() -> None:
    exc = refusal(encrypted_pdf("secret"))
    assert isinstance(exc, DataFormatError)
    assert exc.status == 422
    assert "encrypted" in exc.detail


def test_a_pdf_restricted_by_an_owner_password_only_is_read() -> None:
    done = extract(encrypted_pdf("", owner="owner-secret"))
    assert done.pages == ["Confidential CV of Jane Doe"]


def test_truncated_pdf_is_422() -> None:
    exc = refusal(truncated_pdf())
    assert exc.status == 422
    assert "truncated" in exc.detail


def test_malformed_pdf_is_422() -> None:
    exc = refusal(b"%PDF-1.7\n" + b"\x00garbage " * 200 + b"\n%%EOF\n")
    assert exc.status == 422
    assert "malformed" in exc.detail


def test_a_pdf_claiming_10000_pages_is_refused_before_its_tree_is_walked() -> None:
    data = hand_made_pdf(count=10_000)
    tracemalloc.start()
    try:
        exc = refusal(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(exc, PayloadTooLargeError)
    assert exc.status == 413
    assert "claims to have 10,000 pages" in exc.detail
    assert "AIWEB_LIMITS__MAX_DOCUMENT_PAGES" in exc.detail
    assert peak < 20 * 1024 * 1024


def test_a_hand_made_pdf_with_a_true_count_is_read() -> None:
    assert extract(hand_made_pdf(count=2, kids=2, text="Hi there")).pages == ["Hi there"] * 2


def test_a_pdf_with_more_real_pages_than_it_claims_is_refused() -> None:
    exc = refusal(hand_made_pdf(count=1, kids=3), ExtractionLimits(max_pages=2))
    assert exc.status == 413
    assert "has 3 pages; at most 2" in exc.detail


def test_a_pdf_over_the_page_limit_is_413() -> None:
    exc = refusal(make_pdf([f"page {i}" for i in range(4)]), ExtractionLimits(max_pages=3))
    assert exc.status == 413
    assert "4 pages; at most 3" in exc.detail


def test_image_only_pdf_is_422_naming_ocr() -> None:
    exc = refusal(image_only_pdf())
    assert exc.status == 422
    assert "scanned or image-only PDF" in exc.detail
    assert "OCR" in exc.detail
    assert OCR_MODEL in exc.detail


def test_docx_zip_bomb_is_refused_from_its_declared_sizes() -> None:
    bomb = docx_bomb(50)
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        exc = refusal(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(exc, PayloadTooLargeError)
    assert "zip bomb" in exc.detail
    assert "word/document.xml" in exc.detail
    assert peak < 5 * 1024 * 1024  # nothing was decompressed


def test_check_zip_bounds_entries_total_and_ratio() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(5):
            archive.writestr(f"part{i}.xml", "<a>" + "x" * 3000 + "</a>")
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        check_zip(archive)  # fine by the defaults
        with pytest.raises(PayloadTooLargeError, match="5 entries; at most 4"):
            check_zip(archive, max_entries=4)
        with pytest.raises(PayloadTooLargeError, match="decompress to 15,035 bytes"):
            check_zip(archive, max_uncompressed_bytes=10_000)
        with pytest.raises(PayloadTooLargeError, match="zip bomb"):
            check_zip(archive, max_ratio=10, ratio_floor=1000)


def test_truncated_docx_is_422() -> None:
    data = make_docx([["a CV"]])
    exc = refusal(data[: len(data) // 2])
    assert exc.status == 422
    assert "truncated or malformed" in exc.detail


def test_docx_with_a_broken_document_part_is_422() -> None:
    real = make_docx([["a CV"]])
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(real)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "word/document.xml":
                body = body[: len(body) // 2]  # not well-formed XML
            dst.writestr(info, body)
    exc = refusal(out.getvalue())
    assert exc.status == 422
    assert "DOCX is malformed" in exc.detail


def test_docx_without_text_is_422() -> None:
    exc = refusal(make_docx([[""]]))
    assert exc.status == 422
    assert "no text" in exc.detail


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"caf\xe9 au lait", "not UTF-8 text (invalid byte 0xe9 at byte 3)"),
        (b"ok\xed\xa0\x80", "not UTF-8"),  # an encoded lone surrogate
        (b"a\x00b", "NUL byte (at byte 1)"),
        ("hello".encode("utf-16"), "UTF-16"),
        (b" \n\t\r\n", "empty"),
    ],
)
def test_bad_text_is_422(data: bytes, needle: str) -> None:
    exc = refusal(data)
    assert isinstance(exc, DataFormatError)
    assert needle in exc.detail


def test_text_over_the_page_and_character_limits_is_413() -> None:
    exc = refusal(b"p\f" * 5, ExtractionLimits(max_pages=5))
    assert exc.status == 413
    assert "6 pages; at most 5" in exc.detail
    exc = refusal(b"x" * 1001, ExtractionLimits(max_chars=1000))
    assert exc.status == 413
    assert "more than 1,000 characters" in exc.detail
    assert "AIWEB_LIMITS__MAX_DOCUMENT_CHARS" in exc.detail


def test_extraction_over_its_time_budget_is_422() -> None:
    exc = refusal(make_pdf(["a", "b"]), ExtractionLimits(budget_s=-1))
    assert exc.status == 422
    assert "took longer than" in exc.detail


def test_pages_never_hold_lone_surrogates_nul_or_form_feeds() -> None:
    from aiweb.documents.extract import _clean

    assert _clean("a\x00b\ud800c\fd\r\ne\rf") == "ab\ufffdc\nd\ne\nf"
