"""``/v1/documents``: upload a PDF, DOCX or text document, list, describe, read its text
page by page, delete (:mod:`aiweb.documents`; docs/documents.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from aiweb.api.deps import next_offset
from aiweb.api.problems import request_id
from aiweb.documents.extract import MEDIA_TYPES
from aiweb.documents.service import Document, DocumentService, Page
from aiweb.security.auth import actor, scoped

router = APIRouter(prefix="/v1/documents", tags=["documents"])


async def _documents(request: Request) -> DocumentService:
    service: DocumentService = request.app.state.documents
    return service


DocumentsDep = Annotated[DocumentService, Depends(_documents)]


class UploadedDocumentOut(BaseModel):
    """An uploaded document: what was read from it."""

    id: str
    name: str = Field(..., description="The uploaded file's name (PII redacted with redact_pii).")
    media_type: str = Field(
        ...,
        description="Told by the file's bytes: application/pdf, "
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document or text/plain.",
    )
    pages: int = Field(..., description="Pages of text (a DOCX: split at explicit page breaks).")
    chars: int = Field(..., description="Characters of extracted text, all pages.")
    sha256: str = Field(..., description="Hex digest of the uploaded bytes.")
    size_bytes: int
    redacted: bool = Field(
        ...,
        description="E-mail addresses, phone numbers and URLs were replaced by [EMAIL], "
        "[PHONE], [URL] before storing, and the original file was not kept.",
    )
    redactions: dict[str, int] | None = Field(
        ..., description="How many of each kind were replaced (email, phone, url); null if not."
    )
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, d: Document) -> UploadedDocumentOut:
        return cls(
            id=d.id,
            name=d.name,
            media_type=d.media_type,
            pages=d.pages,
            chars=d.chars,
            sha256=d.sha256,
            size_bytes=d.size_bytes,
            redacted=d.redacted,
            redactions=d.redactions,
            created_by=d.created_by,
            created_at=d.created_at,
        )


class UploadedDocumentList(BaseModel):
    documents: list[UploadedDocumentOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class UploadedDocumentPage(BaseModel):
    """One page of a document's text."""

    page: int = Field(..., description="The page number, from 1.")
    start: int = Field(
        ...,
        description="Offset of the page in the document's text (its pages joined by a "
        "form feed, U+000C): an offset o in the page is start + o in the document.",
    )
    end: int = Field(..., description="Offset just past the page's last character.")
    text: str

    @classmethod
    def of(cls, p: Page) -> UploadedDocumentPage:
        return cls(page=p.page, start=p.start, end=p.end, text=p.text)


class UploadedDocumentText(BaseModel):
    """The text of a document, page by page (redacted when it was uploaded so)."""

    id: str
    media_type: str
    redacted: bool
    chars: int
    pages: list[UploadedDocumentPage]


#: the upload's boolean form fields
_FLAGS = ("redact_pii", "scanned")


async def _strict_flags(request: Request) -> None:
    """Refuse (422) a boolean form field that is not the word ``true`` or ``false``, as
    the schema's ``boolean`` says: pydantic alone would also read 0/1, yes/no, on/off and
    t/f, and FastAPI reads an empty field as absent. The form is the one FastAPI parsed
    (Starlette keeps it on the request)."""
    form = await request.form()
    errors = [
        {
            "type": "bool_parsing",
            "loc": ("body", name),
            "msg": f"{name} is a boolean form field: send true or false (or leave it out)",
            "input": value[:40] if isinstance(value, str) else None,
        }
        for name in _FLAGS
        for value in form.getlist(name)
        if value not in ("true", "false")
    ]
    if errors:
        raise RequestValidationError(errors)


#: scanned=true with redact_pii=true is refused (422), so the schema says so
_NOT_SCANNED_AND_REDACTED = {
    "not": {
        "required": ["redact_pii", "scanned"],
        "properties": {"redact_pii": {"const": True}, "scanned": {"const": True}},
    }
}

_UPLOAD = scoped("train")
_UPLOAD["openapi_extra"] = {
    **_UPLOAD["openapi_extra"],
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": _NOT_SCANNED_AND_REDACTED,
                "encoding": {"file": {"contentType": ", ".join(MEDIA_TYPES)}},
            }
        }
    },
}
_UPLOAD["dependencies"] = [*_UPLOAD["dependencies"], Depends(_strict_flags)]
_UPLOAD["responses"] = {
    **_UPLOAD["responses"],
    413: {
        "description": "A file over AIWEB_LIMITS__MAX_DOCUMENT_BYTES, more pages than "
        "AIWEB_LIMITS__MAX_DOCUMENT_PAGES (also a PDF that only claims so), more text than "
        "AIWEB_LIMITS__MAX_DOCUMENT_CHARS, or a DOCX that would decompress to too much (a "
        "zip bomb)."
    },
    415: {"description": "Not a PDF, DOCX or text file (told by its bytes); names them."},
    422: {
        "description": "An empty, encrypted, truncated or malformed file, text that is not "
        "UTF-8 (or holds NUL bytes), a scanned (image-only) PDF without scanned=true, or "
        "scanned=true with redact_pii."
    },
}


@router.post("", status_code=201, **_UPLOAD)
async def upload_document(
    file: Annotated[
        UploadFile,
        File(description="A PDF, DOCX or UTF-8 text file (its type is told by its bytes)."),
    ],
    request: Request,
    response: Response,
    service: DocumentsDep,
    redact_pii: Annotated[
        bool,
        Form(
            description="Replace e-mail addresses, phone numbers and URLs by [EMAIL], "
            "[PHONE], [URL] in the text (and the file name) before anything is stored, and "
            "do not keep the original file."
        ),
    ] = False,
    scanned: Annotated[
        bool,
        Form(
            description="Keep a PDF without a text layer (a scan) for OCR: its text is "
            "empty and its file is kept, for an OCR job to read its pages "
            "(without it, such a PDF is refused with a 422)."
        ),
    ] = False,
) -> UploadedDocumentOut:
    """Upload a document (a CV, a job description …) and read its text, page by page.

    The type is told by the file's bytes, never by its name: a PDF (``%PDF-``), a DOCX (a
    ZIP holding ``word/document.xml``) or UTF-8 text (pages separated by form feeds).
    Text comes out with pypdf (per page) and python-docx (paragraphs and tables in body
    order; pages split at explicit page breaks). At most ``AIWEB_LIMITS__MAX_DOCUMENT_BYTES``
    (10 MB) and ``AIWEB_LIMITS__MAX_DOCUMENT_PAGES`` (50) pages (413). Encrypted,
    truncated or malformed files, and scanned PDFs without a text layer, get a 422 that
    says so (unless ``scanned``: a scan kept for OCR, with an empty text); other types a
    415. With ``redact_pii`` the original file is not kept, only
    the redacted text. Audited as ``document.upload``.
    """
    who = actor(request)
    document = await anyio.to_thread.run_sync(
        lambda: service.upload(
            file.file,
            file.filename,
            redact_pii=redact_pii,
            scanned=scanned,
            actor=who,
            request_id=request_id(request),
        )
    )
    response.headers["Location"] = f"/v1/documents/{document.id}"
    return UploadedDocumentOut.of(document)


@router.get("", **scoped("train"))
async def list_documents(
    service: DocumentsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> UploadedDocumentList:
    """Uploaded documents, newest first."""
    items, total = await anyio.to_thread.run_sync(lambda: service.list(limit=limit, offset=offset))
    return UploadedDocumentList(
        documents=[UploadedDocumentOut.of(d) for d in items],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=next_offset(offset, len(items), total),
    )


_ONE = scoped("train")
_ONE["responses"] = {**_ONE["responses"], 404: {"description": "No such document."}}


@router.get("/{document_id}", **_ONE)
async def get_document(
    document_id: Annotated[str, Path(max_length=64)], service: DocumentsDep
) -> UploadedDocumentOut:
    """One uploaded document."""
    return UploadedDocumentOut.of(await anyio.to_thread.run_sync(service.get, document_id))


@router.get("/{document_id}/text", **_ONE)
async def get_document_text(
    document_id: Annotated[str, Path(max_length=64)], service: DocumentsDep
) -> UploadedDocumentText:
    """A document's text, page by page, with each page's offsets in the whole text
    (redacted when it was uploaded with ``redact_pii``)."""

    def read() -> UploadedDocumentText:
        document = service.get(document_id)
        pages = service.pages(document)
        return UploadedDocumentText(
            id=document.id,
            media_type=document.media_type,
            redacted=document.redacted,
            chars=document.chars,
            pages=[UploadedDocumentPage.of(p) for p in pages],
        )

    return await anyio.to_thread.run_sync(read)


@router.delete("/{document_id}", status_code=204, **_ONE)
async def delete_document(
    document_id: Annotated[str, Path(max_length=64)],
    request: Request,
    service: DocumentsDep,
) -> Response:
    """Delete an uploaded document, its text and its file (audited as ``document.delete``)."""
    await anyio.to_thread.run_sync(
        lambda: service.delete(document_id, actor=actor(request), request_id=request_id(request))
    )
    return Response(status_code=204)
