"""``aiweb collections create|list|show|delete|import|search``: search collections from the
command line, on the database and artifact store of the settings (as ``aiweb serve``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aiweb.cli._common import _open_database, err, friendly_errors, out

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
    from aiweb.search.service import SearchService
    from aiweb.search.store import SearchStore

    settings = get_settings()
    with _open_database() as (registry, engine):
        store = SearchStore(
            engine,
            pgvector_m=settings.search.pgvector_m,
            pgvector_ef_construction=settings.search.pgvector_ef_construction,
        )
        yield SearchService(store, EmbedderPool(registry, settings.embeddings), registry, settings)


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
def list_() -> None:
    """Every collection with its document count."""
    with open_service() as service:
        collections = service.list_collections()
    table = Table("name", "embedding model", "vector index", "documents", "filterable fields")
    for c in collections:
        fields = ", ".join(c.metadata_fields) if c.metadata_fields is not None else "all"
        table.add_row(c.name, c.embedding_ref, c.vector_index, str(c.documents), fields)
    out.print(table)


@app.command("show")
@friendly_errors
def show(name: str = typer.Argument(..., help="Collection name.")) -> None:
    """One collection."""
    with open_service() as service:
        out.print(_describe(service.get_collection(name)))


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
    text_column: str = typer.Option("text", help="Column with the text."),
    id_column: str = typer.Option("id", help="Column with the document id."),
    metadata_column: list[str] = typer.Option(
        [], "--metadata-column", help="A column copied into metadata (repeat)."
    ),
    batch: int = typer.Option(256, min=1, max=10_000, help="Documents embedded per step."),
) -> None:
    """Embed and upsert every row of FILE as a document (id, text, metadata columns)."""
    from aiweb.datasets.tables import iter_table, table_format
    from aiweb.errors import CollectionNotFound, DataFormatError
    from aiweb.search.entities import Document

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
        columns = [id_column, text_column, *metadata_column]
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
                fh, fmt, name=file.name, columns=columns, chunk_rows=batch, required=columns[:2]
            ):
                docs = []
                for i in range(len(chunk.columns[id_column])):
                    doc_id, text = chunk.columns[id_column][i], chunk.columns[text_column][i]
                    if not doc_id or text is None:
                        raise DataFormatError(
                            f"{file.name} row {chunk.start + i + 1}: no {id_column} or "
                            f"{text_column}"
                        )
                    metadata = {c: chunk.columns[c][i] for c in metadata_column}
                    docs.append(Document(id=doc_id, text=text, metadata=metadata))
                result = service.upsert_sync(name, docs)
                upserted += result.upserted
                truncated += result.truncated
                progress.update(task, advance=len(docs))
    err.print(
        f"upserted {upserted} documents into {name} in {time.perf_counter() - started:.1f} s"
        + (f"; {len(truncated)} truncated to 256 word pieces" if truncated else "")
    )


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
    table = Table("#", "id", "score", "text", title=f"{mode} search in {name}")
    for rank, hit in enumerate(result.hits, 1):
        table.add_row(str(rank), hit.id, f"{hit.score:.4g}", hit.text[:100])
    out.print(table)
