"""Tell a document's type from its bytes and read its text, page by page.

Three types are read, told by the bytes alone (never by the file name or the media type
the client sent):

``application/pdf``
    starts with ``%PDF-``. Read with `pypdf`_, page by page, each page's text in the
    order of its content stream (the reading order of what word processors and PDF
    libraries write; a PDF that places text blocks out of order is read in that order).
``application/vnd.openxmlformats-officedocument.wordprocessingml.document`` (DOCX)
    a ZIP archive holding ``word/document.xml``. Read with `python-docx`_: the body's
    paragraphs and tables in body order (a table row is one line, its cells separated by
    a TAB; a cell's paragraphs by a line break), text boxes where they are anchored.
    Headers, footers, footnotes and comments are not read. A DOCX has no fixed pages
    (the word processor lays them out), so the text is split at the *explicit* page
    breaks only: a page-break character (Ctrl+Enter in Word) and a paragraph set to
    start on a new page ("page break before"); one without either is one page.
``text/plain``
    anything else that is UTF-8 text (a UTF-8 byte-order mark is dropped). Pages are
    separated by form feeds (U+000C), as line printers and ``pr`` wrote them; a text
    without one is one page. Invalid UTF-8 and NUL bytes are refused (422, naming the
    byte offset), as is UTF-16 (with a byte-order mark: save it as UTF-8); text is never
    decoded with replacement characters.

Anything else (a legacy ``.doc``, an image, a ZIP without ``word/document.xml`` …) is
refused with :class:`~aiweb.errors.UnsupportedMediaTypeError` (415) naming the three types.

Every page's text is cleaned the same way: line breaks become ``\\n`` (``\\r\\n``, ``\\r``),
NUL characters are dropped and form feeds inside a page become ``\\n`` (PDF, DOCX), and a
lone surrogate (which a broken PDF font map can produce) becomes U+FFFD, so the text is
always valid Unicode.

Hostile files are refused before they cost much (each with a 4xx error naming the cause):

- a PDF with no ``%%EOF`` in its last 1,024 bytes (a truncated file) or that `pypdf`_
  cannot parse: 422;
- an encrypted PDF: 422, unless it opens with the empty password (a PDF restricted by
  an owner password only opens so in every viewer, and is read);
- a PDF whose page tree *claims* more than ``max_pages`` pages (its ``/Count``), before
  the tree is walked; then one that *has* more: 413;
- a PDF in which no page has any text (a scan or images only): 422 saying to upload it
  with ``scanned`` (kept with an empty text, for :data:`OCR_MODEL` to read its pages);
- a DOCX (ZIP) with more than :data:`MAX_ZIP_ENTRIES` entries, entries that add up to
  more than :data:`MAX_UNCOMPRESSED_BYTES` once decompressed (413), or an entry over
  1 MiB compressed more than :data:`MAX_COMPRESSION_RATIO` to 1 (a zip bomb; 413): all
  from the sizes the archive declares, before anything is decompressed (Python's
  :mod:`zipfile` never returns more than an entry's declared size, and fails on a CRC
  mismatch);
- a DOCX that is encrypted, truncated or not a Word document inside: 422;
- more than ``max_pages`` pages or ``max_chars`` characters of text: 413, as soon as
  the extraction passes the bound;
- extraction that runs longer than :data:`EXTRACTION_BUDGET_S` seconds (checked between
  pages): 422.

pypdf bounds what one stream may decompress to (75 MB) and the work of parsing one
content stream; python-docx parses XML without resolving entities (no "billion laughs").

`pypdf` and `python-docx` are imported by the functions that use them, never at import.

.. _pypdf: https://pypdf.readthedocs.io
.. _python-docx: https://python-docx.readthedocs.io
"""

from __future__ import annotations

import io
import logging
import re
import struct
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiweb.errors import (
    AiwebError,
    DataFormatError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

#: an lxml element of the DOCX body (lxml ships no type information)
_Element = Any

__all__ = [
    "ACCEPTED",
    "DOCX",
    "EXTRACTION_BUDGET_S",
    "MAX_COMPRESSION_RATIO",
    "MAX_UNCOMPRESSED_BYTES",
    "MAX_ZIP_ENTRIES",
    "MEDIA_TYPES",
    "OCR_MODEL",
    "PDF",
    "TXT",
    "Extracted",
    "ExtractionLimits",
    "check_zip",
    "extract",
    "sniff",
]

log = logging.getLogger(__name__)

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TXT = "text/plain"
#: The media types read, in the order they are told apart.
MEDIA_TYPES = (PDF, DOCX, TXT)
#: What the error messages say is accepted.
ACCEPTED = "PDF, DOCX (Word 2007 or later) or UTF-8 plain text"
#: The file name suffix each type is stored under.
SUFFIXES = {PDF: "pdf", DOCX: "docx", TXT: "txt"}

#: What reads scanned (image-only) PDFs: the OCR model of DESIGN.md.
OCR_MODEL = "rapidocr"

#: Most entries a DOCX (ZIP) may hold.
MAX_ZIP_ENTRIES = 2_000
#: Most bytes a DOCX's entries may add up to once decompressed (as they declare).
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
#: Highest compression ratio of an entry larger than :data:`_RATIO_FLOOR` once decompressed.
MAX_COMPRESSION_RATIO = 100
_RATIO_FLOOR = 1024 * 1024
#: Longest an extraction may run, checked between pages (seconds).
EXTRACTION_BUDGET_S = 60.0

PAGES_SETTING = "AIWEB_LIMITS__MAX_DOCUMENT_PAGES"
CHARS_SETTING = "AIWEB_LIMITS__MAX_DOCUMENT_CHARS"

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

#: Binary formats recognised by their first bytes, to name them when refusing them.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (.doc, .xls, .ppt)"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS-Adobe", "a PostScript file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "an executable"),
)
#: Signatures that a text may start with too: they name the format only when a NUL byte
#: in the first 4 KB says the file is binary (else it is read as text).
_AMBIGUOUS_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "an executable"),
    (b"RIFF", "a RIFF file (WebP, WAV, AVI)"),
    (b"BZh", "a bzip2 archive"),
)


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on one document (from :class:`aiweb.config.LimitSettings`).

    Attributes:
        max_pages: most pages (``AIWEB_LIMITS__MAX_DOCUMENT_PAGES``).
        max_chars: most characters of text, all pages (``AIWEB_LIMITS__MAX_DOCUMENT_CHARS``).
        budget_s: longest the extraction may run, checked between pages.
    """

    max_pages: int = 50
    max_chars: int = 2_000_000
    budget_s: float = EXTRACTION_BUDGET_S


@dataclass(frozen=True)
class Extracted:
    """The text of a document.

    Attributes:
        media_type: one of :data:`MEDIA_TYPES`.
        pages: each page's text, in page order (page 1 first), cleaned (module docs);
            at least one page, and at least one page with text besides white space.
    """

    media_type: str
    pages: list[str]


def sniff(data: bytes) -> str:
    """The media type of a document, told by its bytes (module docs).

    Args:
        data: the whole file.

    Returns:
        :data:`PDF`, :data:`DOCX` or :data:`TXT` (the latter for anything that is not
        a known binary format: whether it is UTF-8 is checked when it is read).

    Raises:
        UnsupportedMediaTypeError: a known binary format, or a ZIP archive that is not a
            Word document (415).
        DataFormatError: a ZIP archive that cannot be read (truncated, malformed) (422).
    """
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        with _open_zip(data) as archive:
            if "word/document.xml" in set(archive.namelist()):
                return DOCX
        raise UnsupportedMediaTypeError(
            "the file is a ZIP archive but not a Word document (no word/document.xml); "
            f"upload a {ACCEPTED} file"
        )
    binary = b"\x00" in data[:4096]
    for signature, what in _BINARY_SIGNATURES + (_AMBIGUOUS_SIGNATURES if binary else ()):
        if data.startswith(signature):
            raise UnsupportedMediaTypeError(f"the file is {what}; upload a {ACCEPTED} file")
    return TXT


def extract(
    data: bytes, limits: ExtractionLimits | None = None, *, scanned: bool = False
) -> Extracted:
    """Tell the type of a document (:func:`sniff`) and read its text, page by page.

    Args:
        data: the whole file.
        limits: the bounds (defaults: 50 pages, 2,000,000 characters).
        scanned: take a PDF without a text layer (a scan, kept for OCR): its pages' texts
            are then empty strings, not a refusal.

    Returns:
        The media type and the pages' texts.

    Raises:
        UnsupportedMediaTypeError: not a PDF, DOCX or text file (415).
        PayloadTooLargeError: more pages or characters than ``limits`` allow, or a DOCX
            that decompresses to too much (413).
        DataFormatError: an encrypted, truncated or malformed file, invalid UTF-8, a
            document with no text (a scanned PDF), or an extraction over its time budget
            (422). Every message says what is wrong.
    """
    limits = limits or ExtractionLimits()
    media_type = sniff(data)
    if media_type == PDF:
        pages = _pdf_pages(data, limits, scanned=scanned)
    elif media_type == DOCX:
        pages = _docx_pages(data, limits)
    else:
        pages = _text_pages(data, limits)
    return Extracted(media_type, pages)


# -- shared ---------------------------------------------------------------------------


class _Budget:
    """Counts pages and characters against the limits, and the time spent."""

    def __init__(self, limits: ExtractionLimits, what: str, started: float | None = None) -> None:
        self.limits = limits
        self.what = what
        self.chars = 0
        self.started = time.monotonic() if started is None else started

    def pages(self, count: int, *, claimed: bool = False) -> None:
        if count > self.limits.max_pages:
            verb = "claims to have" if claimed else "has"
            raise PayloadTooLargeError(
                f"the {self.what} {verb} {count:,} pages; at most "
                f"{self.limits.max_pages:,} are read ({PAGES_SETTING})"
            )

    def add(self, chars: int) -> None:
        self.chars += chars
        if self.chars > self.limits.max_chars:
            raise PayloadTooLargeError(
                f"the {self.what} has more than {self.limits.max_chars:,} characters of "
                f"text ({CHARS_SETTING})"
            )

    def tick(self) -> None:
        if time.monotonic() - self.started > self.limits.budget_s:
            raise DataFormatError(
                f"reading the {self.what} took longer than {self.limits.budget_s:g} s; "
                "it is refused (a very complex or hostile file)"
            )


def _clean(text: str) -> str:
    """A page's text as it is kept (module docs)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text)


def _exception_text(exc: BaseException) -> str:
    message = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# -- PDF ------------------------------------------------------------------------------


def _pdf_pages(data: bytes, limits: ExtractionLimits, *, scanned: bool = False) -> list[str]:
    if b"%%EOF" not in data[-1024:]:
        raise DataFormatError(
            "the PDF is truncated or malformed: it does not end with the %%EOF marker"
        )
    budget = _Budget(limits, "PDF")
    try:
        pages = _read_pdf(data, budget)
    except AiwebError:
        raise
    except Exception as exc:  # pypdf raises many kinds on hostile input
        log.info("refused a malformed PDF: %s", _exception_text(exc))
        raise DataFormatError(
            f"the PDF is malformed and cannot be read ({_exception_text(exc)})"
        ) from None
    if not any(page.strip() for page in pages) and not scanned:
        raise DataFormatError(
            f"the PDF has no text layer on any of its {len(pages)} page(s): it is a scanned "
            "or image-only PDF. Upload it with scanned=true to keep it for OCR (the "
            f"{OCR_MODEL!r} model reads its pages), or upload a PDF with text"
        )
    return pages


def _read_pdf(data: bytes, budget: _Budget) -> list[str]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            opened = bool(reader.decrypt(""))
        except Exception:  # an unknown or unsupported security handler
            opened = False
        if not opened:
            raise DataFormatError(
                "the PDF is encrypted (password-protected); aiweb cannot read it. "
                "Upload a copy saved without a password"
            )
    budget.pages(_claimed_pages(reader), claimed=True)  # before the page tree is walked
    count = len(reader.pages)  # walks the tree
    budget.pages(count)
    if count == 0:
        raise DataFormatError("the PDF has no pages")
    texts: list[str] = []
    for page in reader.pages:
        budget.tick()
        text = _clean(page.extract_text() or "")
        budget.add(len(text))
        texts.append(text)
    return texts


def _claimed_pages(reader: Any) -> int:
    """The page count the PDF's root page tree states (``/Count``), 0 when it has none."""
    count = reader.trailer["/Root"]["/Pages"].get("/Count", 0)
    try:
        return max(0, int(count))
    except (TypeError, ValueError):
        return 0


# -- DOCX -----------------------------------------------------------------------------


_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record


def _declared_entries(data: bytes) -> int | None:
    """The number of entries a ZIP's end-of-central-directory record states, read
    before :mod:`zipfile` builds one object per entry; ``None`` when not found."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if at < 0 or at + _EOCD.size > len(data):
        return None
    fields = _EOCD.unpack_from(data, at)
    return int(fields[4])


def _open_zip(data: bytes) -> zipfile.ZipFile:
    entries = _declared_entries(data)
    if entries is not None and entries > MAX_ZIP_ENTRIES:
        raise PayloadTooLargeError(
            f"the ZIP archive has {entries:,} entries; a DOCX may have at most {MAX_ZIP_ENTRIES:,}"
        )
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise DataFormatError(
            f"the file looks like a ZIP archive (DOCX) but cannot be read: it is truncated "
            f"or malformed ({_exception_text(exc)})"
        ) from None


def check_zip(
    archive: zipfile.ZipFile,
    *,
    max_entries: int = MAX_ZIP_ENTRIES,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = MAX_COMPRESSION_RATIO,
    ratio_floor: int = _RATIO_FLOOR,
) -> None:
    """Refuse a ZIP archive that would decompress to too much, from the sizes its
    entries declare (nothing is decompressed).

    Args:
        archive: the open archive.
        max_entries: most entries.
        max_uncompressed_bytes: most bytes all entries may declare once decompressed.
        max_ratio: highest ratio of declared to compressed size of an entry that declares
            more than ``ratio_floor`` bytes.
        ratio_floor: entries declaring at most this many bytes are not ratio-checked.

    Raises:
        PayloadTooLargeError: too many entries, too many bytes, or an entry compressed
            beyond ``max_ratio`` (a zip bomb) (413).
        DataFormatError: an encrypted entry (422).
    """
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise PayloadTooLargeError(
            f"the DOCX (ZIP) has {len(infos):,} entries; at most {max_entries:,} are read"
        )
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise DataFormatError(
                "the DOCX is encrypted (password-protected); aiweb cannot read it. "
                "Upload a copy saved without a password"
            )
        total += info.file_size
        if info.file_size > ratio_floor and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise PayloadTooLargeError(
                f"the DOCX entry {info.filename[:100]!r} would decompress to "
                f"{info.file_size:,} bytes from {info.compress_size:,} ({ratio:,.0f} to 1; "
                f"at most {max_ratio:g} to 1): refused as a zip bomb"
            )
    if total > max_uncompressed_bytes:
        raise PayloadTooLargeError(
            f"the DOCX would decompress to {total:,} bytes; at most "
            f"{max_uncompressed_bytes:,} are read"
        )


def _docx_pages(data: bytes, limits: ExtractionLimits) -> list[str]:
    with _open_zip(data) as archive:
        check_zip(archive)
    budget = _Budget(limits, "DOCX")
    try:
        import docx

        document = docx.Document(io.BytesIO(data))
        pages = _DocxText(budget).read(document.element.body)
    except AiwebError:
        raise
    except Exception as exc:  # python-docx, lxml and zipfile errors on a bad package
        log.info("refused a malformed DOCX: %s", _exception_text(exc))
        raise DataFormatError(
            f"the DOCX is malformed and cannot be read ({_exception_text(exc)})"
        ) from None
    if not any(page.strip() for page in pages):
        raise DataFormatError(
            f"the DOCX has no text (images only?); OCR ({OCR_MODEL!r}) reads scanned PDFs, "
            "not DOCX: save it as a PDF and upload that with scanned=true"
        )
    return pages


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_P, _TBL, _TR, _TC = f"{_W}p", f"{_W}tbl", f"{_W}tr", f"{_W}tc"
_T, _TAB, _BR, _CR = f"{_W}t", f"{_W}tab", f"{_W}br", f"{_W}cr"
_NO_BREAK_HYPHEN = f"{_W}noBreakHyphen"
_PPR, _PAGE_BREAK_BEFORE = f"{_W}pPr", f"{_W}pageBreakBefore"
#: subtrees whose text is not the document's: properties, deleted text, field codes,
#: the fallback copy of a text box (its text is read from the first copy)
_SKIPPED = frozenset(
    {
        f"{_W}pPr",
        f"{_W}rPr",
        f"{_W}tblPr",
        f"{_W}trPr",
        f"{_W}tcPr",
        f"{_W}sectPr",
        f"{_W}del",
        f"{_W}delText",
        f"{_W}instrText",
        f"{_W}delInstrText",
        _MC_FALLBACK,
    }
)
_FALSE = {"0", "false", "off"}


class _DocxText:
    """The text of a DOCX body, split into pages at explicit page breaks."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.pages: list[list[str]] = [[]]  # each page's paragraphs
        self.line: list[str] = []  # the paragraph being read
        self.broke = False  # a page break in the paragraph being read

    def read(self, body: _Element) -> list[str]:
        for child in body:
            self._block(child)
        if self.line:
            self._end_paragraph()
        return ["\n".join(page) for page in self.pages]

    def _text(self, text: str) -> None:
        self.budget.add(len(text))
        self.line.append(text)

    def _end_paragraph(self) -> None:
        text = _clean("".join(self.line))
        if text or not self.broke:  # a paragraph holding only a page break adds no line
            self.pages[-1].append(text)
        self.line = []
        self.broke = False

    def _page_break(self) -> None:
        if self.line:
            self.pages[-1].append(_clean("".join(self.line)))
            self.line = []
        self.pages.append([])
        self.broke = True
        self.budget.pages(len(self.pages))
        self.budget.tick()

    def _block(self, element: _Element) -> None:
        tag = element.tag
        if tag == _P:
            self._paragraph(element)
        elif tag == _TBL:
            for row in self._table_rows(element):
                self._text(row)
                self._end_paragraph()
        elif isinstance(tag, str) and tag not in _SKIPPED:
            for child in element:  # content controls, custom XML, inserted blocks
                self._block(child)

    def _paragraph(self, paragraph: _Element) -> None:
        props = paragraph.find(_PPR)
        before = props.find(_PAGE_BREAK_BEFORE) if props is not None else None
        if (
            before is not None
            and before.get(f"{_W}val", "true") not in _FALSE
            and (self.pages[-1] or self.line)
        ):
            self._page_break()
            self.broke = False  # the paragraph itself holds text
        self._inline(paragraph, in_table=False)
        self._end_paragraph()

    def _inline(self, element: _Element, *, in_table: bool) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIPPED:
                continue
            if tag == _T:
                self._text(child.text or "")
            elif tag == _TAB:
                self._text("\t")
            elif tag == _BR:
                if child.get(f"{_W}type") == "page" and not in_table:
                    self._page_break()
                else:
                    self._text("\n")
            elif tag == _CR:
                self._text("\n")
            elif tag == _NO_BREAK_HYPHEN:
                self._text("-")
            elif tag == _P:  # a paragraph of a text box, where it is anchored
                self._text("\n")
                self._inline(child, in_table=in_table)
            elif tag == _TBL:  # a table in a text box
                for row in self._table_rows(child):
                    self._text("\n" + row)
            else:
                self._inline(child, in_table=in_table)

    def _table_rows(self, table: _Element) -> Iterator[str]:
        """Each row of ``table`` as one line: its cells' texts joined by a TAB."""
        for row in table.iter(_TR):
            if _nearest_table(row) is not table:
                continue  # a row of a nested table: read with its cell
            cells = []
            for cell in row.iterchildren(_TC):
                cells.append(self._cell_text(cell))
            yield "\t".join(cells)

    def _cell_text(self, cell: _Element) -> str:
        """A table cell's paragraphs (and nested tables' rows), one a line; its
        characters count when its row is added (own budget, same bounds and clock)."""
        budget = self.budget
        reader = _DocxText(_Budget(budget.limits, budget.what, budget.started))
        for child in cell:
            if child.tag == _P:
                reader._inline(child, in_table=True)
                reader._end_paragraph()
            elif child.tag == _TBL:
                for row in reader._table_rows(child):
                    reader._text(row)
                    reader._end_paragraph()
            elif isinstance(child.tag, str) and child.tag not in _SKIPPED:
                reader._inline(child, in_table=True)
                reader._end_paragraph()
        return "\n".join(p for p in reader.pages[0] if p)


def _nearest_table(element: _Element) -> _Element | None:
    parent = element.getparent()
    while parent is not None and parent.tag != _TBL:
        parent = parent.getparent()
    return parent


# -- text -----------------------------------------------------------------------------


def _text_pages(data: bytes, limits: ExtractionLimits) -> list[str]:
    if data.startswith(_UTF16_BOMS):
        raise DataFormatError(
            "the text is UTF-16 (it starts with a UTF-16 byte-order mark); save it as "
            f"UTF-8, or upload a {ACCEPTED} file"
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataFormatError(
            f"the file holds a NUL byte (at byte {nul:,}): it is not a text file; "
            f"upload a {ACCEPTED} file"
        )
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"the file is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at byte "
            f"{exc.start:,}); save it as UTF-8, or upload a {ACCEPTED} file"
        ) from None
    budget = _Budget(limits, "text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    pages = text.split("\f")
    budget.pages(len(pages))
    budget.add(len(text) - (len(pages) - 1))
    if not text.strip():
        raise DataFormatError("the text file is empty (or white space only)")
    return pages
