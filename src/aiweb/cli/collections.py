"""``aiweb collections create|list|show|delete|import|search|calibrate``: search
collections from the command line, on the database and artifact store of the settings (as
``aiweb serve``)."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    _open_database,
    err,
    friendly_errors,
    out,
    print_json,
)
from aiweb.cli._common import id_column as _id_column  # `import --id-column` shadows it

if TYPE_CHECKING:
    from aiweb.search.entities import Collection
    from aiweb.search.service import SearchService

app = typer.Typer(
    help="Search collections: create, import documents, search.", no_args_is_help=True
)


@contextmanager
def open_service() -> Iterator[SearchService]:
    """A search service on the migrated database, with its own embedder pool."""
    from aiweb.config import get_settings
    from aiweb.embeddings.runtime import EmbedderPool
    from aiweb.errors import CollectionNotFound, InvalidInputError
    from aiweb.search.service import SearchService
    from aiweb.search.store import SearchStore

    settings = get_settings()
    with _open_database() as (registry, engine):
        store = SearchStore(
            engine,
            pgvector_m=settings.search.pgvector_m,
            pgvector_ef_construction=settings.search.pgvector_ef_construction,
        )
        try:
            yield SearchService(
                store, EmbedderPool(registry, settings.embeddings), registry, settings
            )
        except (CollectionNotFound, InvalidInputError) as exc:
            detail = cli_advice(exc.detail)
            if detail == exc.detail:
                raise
            raise type(exc)(detail, headers=exc.headers) from None


#: The HTTP advice of the search service's messages, and what to do from the CLI instead.
_HTTP_ADVICE = (
    (
        re.compile(r"create it with PUT /v1/collections/(\S+)"),
        r"create it with `aiweb collections create \1` (or `aiweb collections import \1 FILE`)",
    ),
    (
        re.compile(r"set metadata_fields with PUT /v1/collections/NAME"),
        "set them with `aiweb collections create NAME --field FIELD …`",
    ),
)


def cli_advice(detail: str) -> str:
    """A search-service message with its HTTP advice replaced by the CLI command that
    does the same (``PUT /v1/collections/books`` -> ``aiweb collections create books``)."""
    for pattern, replacement in _HTTP_ADVICE:
        detail = pattern.sub(replacement, detail)
    return detail


def _describe(collection: Collection) -> Table:
    table = Table("field", "value", title=f"collection {collection.name}", show_header=False)
    fields = collection.metadata_fields
    for name, value in (
        ("embedding model", collection.embedding_ref),
        ("dimension", str(collection.dim)),
        ("filterable fields", ", ".join(fields) if fields is not None else "all"),
        ("vector index", collection.vector_index),
        ("documents", str(collection.documents)),
        ("revision", str(collection.revision)),
        (
            "answer threshold",
            f"{collection.answer_threshold:.4f}"
            if collection.answer_threshold is not None
            else "not calibrated",
        ),
        ("created", f"{collection.created_at:%Y-%m-%d %H:%M} by {collection.created_by}"),
    ):
        table.add_row(name, value)
    return table


@app.command("create")
@friendly_errors
def create(
    name: str = typer.Argument(..., help="Collection name."),
    model: str | None = typer.Option(
        None, "--model", help="Embedding model: minilm, minilm@production, minilm:2."
    ),
    field: list[str] = typer.Option(
        [], "--field", help="A filterable metadata field (repeat); none given: every field."
    ),
) -> None:
    """Create a collection (or update its filterable fields)."""
    with open_service() as service:
        collection, created = service.put_collection(
            name,
            embedding_model=model,
            metadata_fields=field or None,
            fields_given=bool(field),
            actor="cli",
        )
        err.print(_describe(service.get_collection(name)))
    err.print(f"{'created' if created else 'updated'} collection {collection.name}")


@app.command("list")
@friendly_errors
def list_(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every collection with its document count."""
    with open_service() as service:
        collections = service.list_collections()
    if as_json:
        print_json([_collection_json(c) for c in collections])
        return
    table = Table(
        _id_column("name"), "embedding model", "vector index", "documents", "filterable fields"
    )
    for c in collections:
        fields = ", ".join(c.metadata_fields) if c.metadata_fields is not None else "all"
        table.add_row(c.name, c.embedding_ref, c.vector_index, str(c.documents), fields)
    out.print(table)


@app.command("show")
@friendly_errors
def show(
    name: str = typer.Argument(..., help="Collection name."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One collection."""
    with open_service() as service:
        collection = service.get_collection(name)
    if as_json:
        print_json(_collection_json(collection))
        return
    out.print(_describe(collection))


def _collection_json(collection: Collection) -> dict[str, Any]:
    """A collection as ``--json`` prints it (the keys of ``GET /v1/collections/{name}``)."""
    from aiweb.search.schemas import CollectionOut

    data: dict[str, Any] = CollectionOut.of(collection).model_dump(mode="json")
    return data


@app.command("delete")
@friendly_errors
def delete(
    name: str = typer.Argument(..., help="Collection name."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask."),
) -> None:
    """Delete a collection with all its documents."""
    if not yes:
        typer.confirm(f"delete collection {name} and all its documents?", abort=True)
    with open_service() as service:
        service.delete_collection(name, actor="cli")
    err.print(f"deleted collection {name}")


@app.command("import")
@friendly_errors
def import_(
    name: str = typer.Argument(..., help="Collection name (created with the default model)."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSON lines."),
    text_column: str = typer.Option(
        "text",
        "--text-column",
        help="Column with the text, or a template of columns: '{title} by {authors}'.",
    ),
    id_column: str = typer.Option("id", "--id-column", help="Column with the document id."),
    metadata_column: list[str] = typer.Option(
        [],
        "--metadata-column",
        help="A column copied into metadata (repeat); FIELD=COLUMN renames it.",
    ),
    metadata_columns: list[str] = typer.Option(
        [],
        "--metadata-columns",
        help="Comma-separated metadata columns, each COLUMN or FIELD=COLUMN: "
        "'year=original_publication_year,language=language_code'.",
    ),
    batch: int = typer.Option(256, min=1, max=10_000, help="Documents embedded per step."),
) -> None:
    """Embed and upsert every row of FILE as a document (id, text, metadata columns).

    Metadata cells that are numbers (`1892`, `4.5`, `2008.0`) are stored as JSON numbers,
    so filters match them by value; empty cells are left out.
    """
    from aiweb.datasets.tables import iter_table, table_format
    from aiweb.errors import CollectionNotFound, DataFormatError
    from aiweb.search.entities import Document

    text = TextSpec.parse(text_column)
    metadata = parse_metadata_columns([*metadata_column, *metadata_columns])
    fmt = table_format(file.name)
    started = time.perf_counter()
    upserted = 0
    truncated: list[str] = []
    with open_service() as service:
        try:
            service.store.get_collection(name)
        except CollectionNotFound:
            service.put_collection(
                name, embedding_model=None, metadata_fields=None, fields_given=False, actor="cli"
            )
        columns = list(dict.fromkeys([id_column, *text.columns, *(c for _, c in metadata)]))
        from rich.progress import (  # here, not at the top: `aiweb --help` start-up time
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            TextColumn("embedding"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        )
        with file.open("rb") as fh, progress:
            task = progress.add_task("docs", total=None)
            for chunk in iter_table(
                fh, fmt, name=file.name, columns=columns, chunk_rows=batch, required=columns
            ):
                docs = []
                for i in range(len(chunk.columns[id_column])):
                    doc_id = chunk.columns[id_column][i]
                    doc_text = text.render({c: chunk.columns[c][i] for c in text.columns})
                    if not doc_id or doc_text is None:
                        raise DataFormatError(
                            f"{file.name} row {chunk.start + i + 1}: no "
                            f"{id_column if not doc_id else 'text (' + text_column + ')'}"
                        )
                    fields = {f: metadata_value(chunk.columns[c][i]) for f, c in metadata}
                    docs.append(
                        Document(
                            id=doc_id,
                            text=doc_text,
                            metadata={f: v for f, v in fields.items() if v is not None},
                        )
                    )
                result = service.upsert_sync(name, docs)
                upserted += result.upserted
                truncated += result.truncated
                progress.update(task, advance=len(docs))
    err.print(
        f"upserted {upserted} documents into {name} in {time.perf_counter() - started:.1f} s"
        + (f"; {len(truncated)} truncated to 256 word pieces" if truncated else "")
    )


class TextSpec:
    """What ``--text-column`` names: one column, or a template of columns in braces
    (``'{title} by {authors}'``; ``{{`` and ``}}`` are literal braces).

    Attributes:
        columns: the columns the text is made of, in order of first use.
    """

    def __init__(self, parts: list[tuple[str, str | None]]) -> None:
        self._parts = parts
        self._single = len(parts) == 1 and parts[0][0] == "" and parts[0][1] is not None
        self.columns = list(dict.fromkeys(c for _, c in parts if c is not None))

    @classmethod
    def parse(cls, spec: str) -> TextSpec:
        """Read ``--text-column``.

        Raises:
            InvalidInputError: an empty spec, a malformed template, or a template naming
                no column or using a conversion or format (``{title!r}``, ``{year:4}``).
        """
        import string

        from aiweb.errors import InvalidInputError

        if not spec:
            raise InvalidInputError("--text-column needs a column name")
        if "{" not in spec and "}" not in spec:
            return cls([("", spec)])
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(spec))
        except ValueError as exc:
            raise InvalidInputError(f"--text-column {spec!r}: {exc}") from None
        for literal, field, fmt, conversion in parsed:
            if field is not None and (not field or fmt or conversion):
                raise InvalidInputError(
                    f"--text-column {spec!r}: write each column as {{name}}, without "
                    "a conversion or format"
                )
            parts.append((literal, field))
        if not any(field for _, field in parts):
            raise InvalidInputError(f"--text-column {spec!r} names no column in braces")
        return cls(parts)

    def render(self, values: dict[str, str | None]) -> str | None:
        """The text of one row (``values``: column -> cell); ``None`` when it is empty."""
        if self._single:
            return values[self.columns[0]]
        text = "".join(
            literal + ((values[field] or "") if field is not None else "")
            for literal, field in self._parts
        ).strip()
        return text or None


def parse_metadata_columns(specs: list[str]) -> list[tuple[str, str]]:
    """``--metadata-column``/``--metadata-columns`` values -> ``[(field, column)]``.

    Each value holds one or more comma-separated ``COLUMN`` or ``FIELD=COLUMN``.

    Raises:
        InvalidInputError: an empty field or column, or a field given twice.
    """
    from aiweb.errors import InvalidInputError

    pairs: list[tuple[str, str]] = []
    for spec in specs:
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            field, sep, column = (s.strip() for s in item.partition("="))
            column = column if sep else field
            if not field or not column:
                raise InvalidInputError(f"metadata column {item!r}: write COLUMN or FIELD=COLUMN")
            if any(field == f for f, _ in pairs):
                raise InvalidInputError(f"metadata field {field!r} is given twice")
            pairs.append((field, column))
    return pairs


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def metadata_value(cell: str | None) -> str | int | float | None:
    """A metadata cell as stored: ``None`` when empty, a number when it is one (``2008.0``
    -> ``2008``, ``4.34`` -> ``4.34``), else the string as written."""
    if cell is None or not cell.strip():
        return None
    raw = cell.strip()
    if not _NUMBER.fullmatch(raw):
        return cell
    if raw.lstrip("-").isdigit():
        return int(raw)
    number = float(raw)
    if not math.isfinite(number):  # 1e400
        return cell
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


@app.command("search")
@friendly_errors
def search(
    name: str = typer.Argument(..., help="Collection name."),
    query: str = typer.Argument(..., help="What to look for."),
    mode: str = typer.Option("hybrid", help="vector, keyword or hybrid."),
    top_k: int = typer.Option(10, "--top-k", min=1, help="Hits wanted."),
    filter_json: str | None = typer.Option(
        None, "--filter", help='Metadata filter as JSON, e.g. \'{"genre": "crime"}\'.'
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
) -> None:
    """Search a collection; hits best first."""
    import asyncio

    from aiweb.errors import InvalidInputError
    from aiweb.search.entities import MODES

    if mode not in MODES:
        raise InvalidInputError(f"--mode must be one of {', '.join(MODES)}")
    try:
        where = json.loads(filter_json) if filter_json else None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--filter is not JSON: {exc}") from None
    with open_service() as service:
        result = asyncio.run(service.search(name, query, top_k=top_k, filter=where, mode=mode))
    if as_json:
        out.print_json(
            data={
                "hits": [
                    {"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
                    for h in result.hits
                ],
                "query_truncated": result.query_truncated,
            }
        )
        return
    table = Table("#", _id_column("id"), "score", "text", title=f"{mode} search in {name}")
    for rank, hit in enumerate(result.hits, 1):
        table.add_row(str(rank), hit.id, f"{hit.score:.4g}", hit.text[:100])
    out.print(table)


@app.command("calibrate")
@friendly_errors
def calibrate(
    name: str = typer.Argument(..., help="Collection name."),
    questions: Path | None = typer.Option(
        None,
        "--questions",
        exists=True,
        dir_okay=False,
        help="A text file of off-topic questions, one per line (20 to 2,000); default: "
        "aiweb's packaged ones.",
    ),
    quantile: float = typer.Option(
        0.95, "--quantile", min=0.5, max=1.0, help="Share of off-topic questions left unanswered."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Calibrate the collection's answer threshold: the cosine similarity its top hit must
    reach to answer a question (an assistant's help collection)."""
    lines = None
    if questions is not None:
        text = questions.read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if line.strip()]
    with open_service() as service:
        collection = service.calibrate(name, lines, quantile=quantile)
    if as_json:
        print_json(_collection_json(collection))
        return
    calibration = collection.calibration or {}
    similarities = calibration.get("similarities", {})
    out.print(_describe(collection))
    err.print(
        f"answer threshold {collection.answer_threshold:.4f}: the {quantile:g} quantile of "
        f"the top-hit similarity of {calibration.get('questions')} "
        f"{calibration.get('source')} off-topic questions (median "
        f"{similarities.get('p50', 0):.4f}, max {similarities.get('max', 0):.4f})",
        soft_wrap=True,
    )
