"""``aiweb documents upload|list|show|delete``: documents (PDF, DOCX, text) in the local
database, as ``/v1/documents`` keeps them (docs/documents.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    err,
    friendly_errors,
    id_column,
    iso,
    load_settings,
    open_database,
    out,
    print_json,
)

if TYPE_CHECKING:
    from aiweb.documents.service import Document, DocumentService

app = typer.Typer(
    help="Uploaded documents (PDF, DOCX, text): their text page by page, PII redacted if asked.",
    no_args_is_help=True,
)

#: Short names of the media types, for tables.
_KIND = {
    "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
    "text/plain": "text",
}


@contextmanager
def open_documents() -> Iterator[DocumentService]:
    """The document service on the migrated database, artifact store and audit log of
    the environment's settings."""
    from aiweb.db.session import make_session_factory
    from aiweb.documents.service import DocumentService

    with open_database() as (registry, engine):
        sessions = make_session_factory(engine)
        yield DocumentService(sessions, registry.artifacts, load_settings(), registry.audit)


def resolve_document_id(service: DocumentService, given: str) -> str:
    """The document id that ``given`` (a full id or a unique prefix) names.

    Raises:
        InvalidInputError: ``given`` is a prefix of several document ids (listed).
    """
    from aiweb.cli._common import resolve_prefix
    from aiweb.db.orm import SqlDocument

    return resolve_prefix(service.sessions, [SqlDocument.id], given, "document")


def document_json(document: Document) -> dict[str, Any]:
    """A document as ``--json`` prints it (the keys of ``GET /v1/documents/{id}``)."""
    return {
        "id": document.id,
        "name": document.name,
        "media_type": document.media_type,
        "pages": document.pages,
        "chars": document.chars,
        "sha256": document.sha256,
        "size_bytes": document.size_bytes,
        "redacted": document.redacted,
        "redactions": document.redactions,
        "created_by": document.created_by,
        "created_at": iso(document.created_at),
    }


def _table(documents: list[Document], title: str) -> Table:
    table = Table(
        id_column("id"),
        id_column("name"),
        "type",
        "pages",
        "chars",
        "redacted",
        "created",
        title=title,
    )
    for d in documents:
        table.add_row(
            d.id,
            escape(d.name),
            _KIND.get(d.media_type, d.media_type),
            f"{d.pages:,}",
            f"{d.chars:,}",
            "yes" if d.redacted else "no",
            f"{d.created_at:%Y-%m-%d %H:%M}",
        )
    return table


@app.command("upload")
@friendly_errors
def upload_cmd(
    files: list[Path] = typer.Argument(..., help="PDF, DOCX or UTF-8 text files."),
    redact_pii: bool = typer.Option(
        False,
        "--redact-pii",
        help="Replace e-mail addresses, phone numbers and URLs by [EMAIL], [PHONE], [URL] "
        "before storing, and do not keep the original files.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Read and keep documents: a table of those uploaded (stdout), an error line per
    file refused (stderr); exits 1 when any file was refused."""
    from aiweb.errors import AiwebError

    uploaded: list[Document] = []
    failed = 0
    with open_documents() as service:
        for path in files:
            try:
                if path.is_dir():
                    raise IsADirectoryError("a directory, not a file")
                if not path.exists():
                    raise FileNotFoundError("no such file")
                with path.open("rb") as fh:
                    document = service.upload(fh, path.name, redact_pii=redact_pii, actor="cli")
            except (AiwebError, OSError) as exc:
                failed += 1
                reason = exc.detail if isinstance(exc, AiwebError) else exc.strerror or str(exc)
                err.print(
                    f"[bold red]error:[/] {escape(str(path))}: {escape(str(reason))}",
                    highlight=False,
                    soft_wrap=True,
                )
                continue
            uploaded.append(document)
    if as_json:
        print_json([document_json(d) for d in uploaded])
    elif uploaded:
        out.print(_table(uploaded, "uploaded documents"), highlight=False)
    err.print(f"{len(uploaded)} uploaded, {failed} refused", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("list")
@friendly_errors
def list_cmd(
    limit: int = typer.Option(20, min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Uploaded documents, newest first."""
    with open_documents() as service:
        items, total = service.list(limit=limit)
    if as_json:
        print_json({"documents": [document_json(d) for d in items], "total": total})
        return
    out.print(_table(items, "documents"), highlight=False)
    err.print(f"{len(items)} of {total}")


@app.command("show")
@friendly_errors
def show_cmd(
    document_id: str = typer.Argument(..., help="Document id, or a unique prefix of it."),
    text: bool = typer.Option(False, "--text", help="Print its text, page by page."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One document: name, type, pages, characters, checksum, redaction (and its text)."""
    with open_documents() as service:
        document = service.get(resolve_document_id(service, document_id))
        pages = service.pages(document) if text else []
    data = document_json(document)
    if as_json:
        if text:
            data["text"] = [
                {"page": p.page, "start": p.start, "end": p.end, "text": p.text} for p in pages
            ]
        print_json(data)
        return
    table = Table(id_column("field"), id_column("value"), title=f"document {document.id}")
    for key, value in data.items():
        shown = (
            ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
        )
        table.add_row(key, escape(str(shown)))
    out.print(table, highlight=False)
    for page in pages:
        out.rule(f"page {page.page}", style="dim")
        out.print(escape(page.text), highlight=False, soft_wrap=True)


@app.command("delete")
@friendly_errors
def delete_cmd(
    document_id: str = typer.Argument(..., help="Document id, or a unique prefix of it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a document, its text and its stored file."""
    with open_documents() as service:
        document = service.get(resolve_document_id(service, document_id))
        if not yes:
            typer.confirm(
                f"Delete document {document.id} ({document.name}, {document.pages} pages)? "
                "This cannot be undone.",
                abort=True,
                err=True,
            )
        gone = service.delete(document.id, actor="cli")
    err.print(f"deleted document {gone.id} ({escape(gone.name)})", highlight=False)
