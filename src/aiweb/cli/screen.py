"""``aiweb screen --job-description FILE DOC…``: rank CVs against a job description, in
this process (no server), and print the ranking (docs/screening.md).

A ``DOC`` is a file (PDF, DOCX or text: uploaded first, as ``aiweb documents upload``
does, PII redacted unless ``--no-redact``) or the id (or a unique prefix of it) of an
uploaded document. The scoring is the ``screen`` job's
(:func:`aiweb.entities.screening.screen_documents`). The command joins the CLI through
:func:`register`; heavy imports (spaCy, scikit-learn) happen inside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    err,
    friendly_errors,
    id_column,
    load_settings,
    open_database,
    out,
    print_json,
)

__all__ = ["ranking_table", "register", "screen"]


def _skills(values: list[str], limit: int = 8) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit})" if len(values) > limit else "")


def ranking_table(result: dict[str, Any], names: dict[str, str]) -> Table:
    """The ranking of a screening result: rank, document, score, coverage, similarity,
    matched and missing skills."""
    skills = result["job_description_skills"]
    table = Table(
        "rank",
        id_column("document"),
        "score",
        "coverage",
        "similarity",
        "matched",
        "missing",
        title=f"ranking against {len(skills)} job-description skills "
        f"(similarity: {result['similarity_method']})",
    )
    for c in result["candidates"]:
        name = names.get(c["document_id"])
        document = c["document_id"] + (f"\n{escape(name)}" if name else "")
        table.add_row(
            str(c["rank"]),
            document,
            f"{c['score']:.3f}",
            f"{c['coverage']:.0%}",
            f"{c['similarity']:.3f}",
            escape(_skills(c["matched_skills"])),
            escape(_skills(c["missing_skills"])),
        )
    return table


@friendly_errors
def screen(
    documents: list[str] = typer.Argument(
        ..., help="CVs: files (PDF, DOCX, text; uploaded first) or uploaded document ids."
    ),
    job_description: Path = typer.Option(
        ...,
        "--job-description",
        exists=True,
        dir_okay=False,
        help="The job description: a text, PDF or DOCX file.",
    ),
    skills_model: str = typer.Option(
        "skills", "--skills-model", help="The token-classification model that finds skills."
    ),
    entities_model: str | None = typer.Option(
        None,
        "--entities-model",
        help="A token-classification model whose person entities are treated as PII.",
    ),
    no_redact: bool = typer.Option(
        False,
        "--no-redact",
        help="Keep PII in the result's snippets and in the files uploaded now.",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Rank CVs against a job description: skills matched (with evidence) and text
    similarity, score = 0.7 * coverage + 0.3 * similarity."""
    from pydantic import ValidationError

    from aiweb.cli.documents import resolve_document_id
    from aiweb.db.session import make_session_factory
    from aiweb.documents.extract import extract
    from aiweb.documents.service import DocumentService
    from aiweb.entities.screening import ScreeningRequest, screen_documents
    from aiweb.errors import InvalidInputError

    redact = not no_redact
    with open_database() as (registry, engine):
        service = DocumentService(
            make_session_factory(engine), registry.artifacts, load_settings(), registry.audit
        )
        with job_description.open("rb") as fh:
            description = "\n".join(extract(service.read_upload(fh), service.limits).pages)
        ids: list[str] = []
        names: dict[str, str] = {}
        for given in documents:
            path = Path(given)
            if path.is_file():
                with path.open("rb") as fh:
                    document = service.upload(fh, path.name, redact_pii=redact, actor="cli")
                err.print(
                    f"uploaded {escape(str(path))} as document {document.id}", highlight=False
                )
            else:
                document = service.get(resolve_document_id(service, given))
            ids.append(document.id)
            names[document.id] = document.name
        try:
            request = ScreeningRequest(
                job_description=description,
                document_ids=ids,
                skills_model=skills_model,
                entities_model=entities_model,
                redact_pii=redact,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidInputError(f"{where}: {first['msg']}") from None
        with err.status("screening …"):
            result = screen_documents(request, registry, service)
    if as_json:
        print_json(result)
        return
    out.print(ranking_table(result, names), highlight=False)
    for warning in result["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    err.print(
        f"score = {result['formula']['score']}; models: "
        + ", ".join(f"{k} {v}" for k, v in result["models"].items() if v),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``screen`` to the ``aiweb`` command line."""
    app.command("screen")(screen)
