"""Uploaded documents (``POST /v1/documents``, ``aiweb documents upload``): read, kept,
listed, deleted.

An upload is read whole (at most ``limits.max_document_bytes``), its type told by its
bytes and its text extracted page by page (:mod:`aiweb.documents.extract`); with
``redact_pii`` the e-mail addresses, phone numbers and URLs of every page (and of the file
name) are replaced (:mod:`aiweb.documents.pii`) before anything is stored. Then, in the
artifact store::

    documents/<id>/pages.json          the pages (always)
    documents/<id>/original.<suffix>   the uploaded bytes (pdf, docx, txt); not with redact_pii

and a row in ``documents`` (:class:`~aiweb.db.orm.SqlDocument`). The files are written
first and the row committed last; a failed commit removes the files. A process killed
between the two leaves a ``documents/<id>/`` directory that no row names: nothing reads
it, and it may be removed.

``pages.json`` is ``{"id", "media_type", "redacted", "pages": [{"page", "start", "end",
"text"}]}``: ``page`` counts from 1, and ``start``/``end`` are the page's offsets in the
document's text, its pages joined by a form feed (``"\\f".join(texts)``), so
``text[start:end]`` is the page. An offset ``o`` in a page is ``start + o`` in the
document.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import Settings
from aiweb.db.orm import SqlDocument
from aiweb.db.session import transaction
from aiweb.documents.extract import SUFFIXES, ExtractionLimits, extract
from aiweb.documents.pii import KINDS, redact
from aiweb.errors import (
    CorruptArtifactError,
    DataFormatError,
    InvalidInputError,
    PayloadTooLargeError,
    UploadedDocumentNotFound,
)

if TYPE_CHECKING:
    from aiweb.registry.artifacts import ArtifactStore
    from aiweb.security.audit import AuditLog

__all__ = [
    "PAGE_SEPARATOR",
    "Document",
    "DocumentService",
    "Page",
    "document_dir",
    "paginate",
    "safe_name",
]

log = logging.getLogger(__name__)

#: What joins the pages into the document's text (``start``/``end`` count it).
PAGE_SEPARATOR = "\f"
BYTES_SETTING = "AIWEB_LIMITS__MAX_DOCUMENT_BYTES"

_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")


@dataclass(frozen=True)
class Document:
    """An uploaded document.

    Attributes:
        id: UUID string.
        name: the uploaded file name (sanitised; PII redacted with ``redact_pii``).
        media_type: ``application/pdf``, the DOCX type, or ``text/plain``.
        pages: pages of extracted text.
        chars: characters of extracted text, all pages (the separators not counted).
        sha256: hex digest of the uploaded bytes.
        size_bytes: size of the uploaded file.
        redacted: whether PII was replaced before storing (and the original not kept).
        redactions: how many of each kind were replaced (``{"email", "phone", "url"}``),
            ``None`` when not redacted.
        original_uri: the uploaded file in the artifact store, ``None`` when redacted.
        text_uri: the pages in the artifact store (``documents/<id>/pages.json``).
        created_by: who uploaded it (the key's name, ``cli``).
        created_at: when.
    """

    id: str
    name: str
    media_type: str
    pages: int
    chars: int
    sha256: str
    size_bytes: int
    redacted: bool
    redactions: dict[str, int] | None
    original_uri: str | None
    text_uri: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Page:
    """One page of a document's text.

    Attributes:
        page: its number, from 1.
        start: offset of its first character in the document's text (module docs).
        end: offset just past its last character (``end - start == len(text)``).
        text: the page's text.
    """

    page: int
    start: int
    end: int
    text: str


def _to_document(row: SqlDocument) -> Document:
    return Document(
        id=row.id,
        name=row.name,
        media_type=row.media_type,
        pages=row.pages,
        chars=row.chars,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        redacted=row.redacted,
        redactions=dict(row.redactions) if row.redactions is not None else None,
        original_uri=row.original_uri,
        text_uri=row.text_uri,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def document_dir(document_id: str) -> str:
    """The URI of a document's directory in the artifact store: ``documents/<id>``."""
    return f"documents/{document_id}"


def safe_name(filename: str | None) -> str:
    """The base name of an uploaded file, without path parts or odd characters
    (at most 200 characters; ``upload`` when nothing is left)."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE_NAME.sub("_", base).strip(" .")[:200]
    return base or "upload"


def paginate(texts: list[str]) -> list[Page]:
    """The pages of a text split in pages, with their offsets (module docs)."""
    pages: list[Page] = []
    at = 0
    for number, text in enumerate(texts, start=1):
        pages.append(Page(number, at, at + len(text), text))
        at += len(text) + len(PAGE_SEPARATOR)
    return pages


class DocumentService:
    """Upload, describe, read back and delete documents.

    Args:
        session_factory: sessions on the aiweb database.
        artifacts: where the files are kept.
        settings: the bounds (``limits.max_document_bytes``, ``max_document_pages``,
            ``max_document_chars``).
        audit: where uploads and deletions are recorded (``document.upload``,
            ``document.delete``), or ``None``.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        artifacts: ArtifactStore,
        settings: Settings,
        audit: AuditLog | None = None,
    ) -> None:
        self.sessions = session_factory
        self.artifacts = artifacts
        self.settings = settings
        self.audit = audit

    @property
    def limits(self) -> ExtractionLimits:
        """The extraction bounds of the settings."""
        limits = self.settings.limits
        return ExtractionLimits(
            max_pages=limits.max_document_pages, max_chars=limits.max_document_chars
        )

    def read_upload(self, fileobj: IO[bytes]) -> bytes:
        """The bytes of an uploaded file, read whole (at most the document limit).

        Raises:
            PayloadTooLargeError: more than ``limits.max_document_bytes`` (413).
            DataFormatError: an empty file (422).
        """
        limit = self.settings.limits.max_document_bytes
        data = fileobj.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"the document is larger than {limit:,} bytes ({BYTES_SETTING})"
            )
        if not data:
            raise DataFormatError("the file is empty")
        return data

    def upload(
        self,
        fileobj: IO[bytes],
        filename: str | None,
        *,
        redact_pii: bool = False,
        scanned: bool = False,
        actor: str = "",
        request_id: str | None = None,
    ) -> Document:
        """Read, check and keep an uploaded document (module docs).

        Nothing is stored when it is refused.

        Args:
            fileobj: the file's bytes (read once, at most the document limit).
            filename: the client's file name (only recorded; the type is told by the bytes).
            redact_pii: replace e-mail addresses, phone numbers and URLs in the text (and
                the name) before storing, and do not keep the original file.
            scanned: keep a PDF without a text layer (a scan) for OCR: its text is empty,
                its file is kept (so not with ``redact_pii``).
            actor: who uploads it.
            request_id: the request's id, for the audit event.

        Raises:
            PayloadTooLargeError: over ``limits.max_document_bytes``, ``max_document_pages``
                or ``max_document_chars``, or a DOCX that would decompress to too much (413).
            UnsupportedMediaTypeError: not a PDF, DOCX or UTF-8 text (415).
            DataFormatError: empty, encrypted, truncated or malformed, not UTF-8, no text
                (a scanned PDF) (422); the message says which.
        """
        if scanned and redact_pii:
            raise InvalidInputError(
                "a scanned PDF kept for OCR cannot be redacted: its text is in its images, "
                "and redact_pii does not keep the file OCR reads"
            )
        data = self.read_upload(fileobj)
        extracted = extract(data, self.limits, scanned=scanned)
        base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
        texts = extracted.pages
        redactions: dict[str, int] | None = None
        if redact_pii:
            redactions = dict.fromkeys(KINDS, 0)
            redacted_texts = []
            for text in texts:
                done = redact(text)
                redacted_texts.append(done.text)
                for kind, n in done.counts.items():
                    redactions[kind] += n
            texts = redacted_texts
            base = redact(base).text  # before the name is sanitised: '@' goes then
        name = safe_name(base)
        pages = paginate(texts)
        document_id = str(uuid.uuid4())
        directory = document_dir(document_id)
        text_uri = f"{directory}/pages.json"
        original_uri = (
            None if redact_pii else f"{directory}/original.{SUFFIXES[extracted.media_type]}"
        )
        body = {
            "id": document_id,
            "media_type": extracted.media_type,
            "redacted": redact_pii,
            "pages": [
                {"page": p.page, "start": p.start, "end": p.end, "text": p.text} for p in pages
            ],
        }
        row = SqlDocument(
            id=document_id,
            name=name,
            media_type=extracted.media_type,
            pages=len(pages),
            chars=sum(len(p.text) for p in pages),
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            redacted=redact_pii,
            redactions=redactions,
            original_uri=original_uri,
            text_uri=text_uri,
            created_by=actor,
        )
        try:
            self.artifacts.write_bytes(
                text_uri, json.dumps(body, ensure_ascii=False).encode("utf-8")
            )
            if original_uri is not None:
                self.artifacts.write_bytes(original_uri, data)
            with transaction(self.sessions) as s:
                s.add(row)
        except BaseException:
            # no row: nothing names the files (a kill here leaves them, see the module docs)
            with contextlib.suppress(Exception):
                self.artifacts.delete_tree(directory)
            raise
        document = _to_document(row)
        if self.audit is not None:
            self.audit.record(
                actor,
                "document.upload",
                f"document:{document.id}",
                after={
                    "name": document.name,
                    "media_type": document.media_type,
                    "pages": document.pages,
                    "sha256": document.sha256,
                    "redacted": document.redacted,
                },
                request_id=request_id,
            )
        return document

    def get(self, document_id: str) -> Document:
        """The document ``document_id``.

        Raises:
            UploadedDocumentNotFound: no such document (404).
        """
        with self.sessions() as s:
            row = s.get(SqlDocument, document_id)
            if row is None:
                raise UploadedDocumentNotFound(f"document {document_id[:64]!r} does not exist")
            return _to_document(row)

    def pages(self, document: Document) -> list[Page]:
        """The extracted (redacted, when it was asked) pages of ``document``.

        Raises:
            CorruptArtifactError: its pages are missing from the artifact store, or
                unreadable (500: the server's state).
        """
        try:
            raw: Any = json.loads(self.artifacts.read_bytes(document.text_uri))
            return [
                Page(int(p["page"]), int(p["start"]), int(p["end"]), str(p["text"]))
                for p in raw["pages"]
            ]
        except FileNotFoundError:
            raise CorruptArtifactError(
                f"the text of document {document.id} is missing from the artifact store"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptArtifactError(
                f"the text of document {document.id} is unreadable ({type(exc).__name__})"
            ) from None

    def delete(
        self, document_id: str, *, actor: str = "", request_id: str | None = None
    ) -> Document:
        """Remove the document ``document_id``: its row, then its files (audited as
        ``document.delete`` by ``actor``).

        Returns:
            The document as it was.

        Raises:
            UploadedDocumentNotFound: no such document (404).
        """
        with transaction(self.sessions) as s:
            row = s.get(SqlDocument, document_id)
            if row is None:
                raise UploadedDocumentNotFound(f"document {document_id[:64]!r} does not exist")
            gone = _to_document(row)
            s.execute(delete(SqlDocument).where(SqlDocument.id == document_id))
            s.expunge(row)
        self.artifacts.delete_tree(document_dir(document_id))
        if self.audit is not None:
            self.audit.record(
                actor,
                "document.delete",
                f"document:{gone.id}",
                before={"name": gone.name, "media_type": gone.media_type, "sha256": gone.sha256},
                request_id=request_id,
            )
        return gone

    def list(self, *, limit: int = 50, offset: int = 0) -> tuple[list[Document], int]:
        """Documents, newest first, and how many there are in all."""
        with self.sessions() as s:
            rows = s.scalars(
                select(SqlDocument)
                .order_by(SqlDocument.created_at.desc(), SqlDocument.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = s.scalar(select(func.count()).select_from(SqlDocument)) or 0
            return [_to_document(r) for r in rows], int(total)
