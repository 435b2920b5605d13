"""``aiweb images upload|list|show|delete``: images (JPEG, PNG, WebP) in the local
database, as ``/v1/images`` keeps them (docs/images.md)."""

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
    from aiweb.images.service import ImageService, StoredImage

app = typer.Typer(
    help="Uploaded images (JPEG, PNG, WebP): checked against hostile files, kept as PNGs "
    "without metadata.",
    no_args_is_help=True,
)


@contextmanager
def open_images() -> Iterator[ImageService]:
    """The image service on the migrated database, artifact store and audit log of the
    environment's settings."""
    from aiweb.db.session import make_session_factory
    from aiweb.images.service import ImageService

    with open_database() as (registry, engine):
        sessions = make_session_factory(engine)
        yield ImageService(sessions, registry.artifacts, load_settings(), registry.audit)


def resolve_image_id(service: ImageService, given: str) -> str:
    """The image id that ``given`` (a full id or a unique prefix) names.

    Raises:
        InvalidInputError: ``given`` is a prefix of several image ids (listed).
    """
    from aiweb.cli._common import resolve_prefix
    from aiweb.db.orm import SqlImage

    return resolve_prefix(service.sessions, [SqlImage.id], given, "image")


def image_json(image: StoredImage) -> dict[str, Any]:
    """An image as ``--json`` prints it (the keys of ``GET /v1/images/{id}``)."""
    return {
        "id": image.id,
        "width": image.width,
        "height": image.height,
        "sha256": image.sha256,
        "format": image.format,
        "bytes": image.size_bytes,
        "created_at": iso(image.created_at),
    }


def _table(images: list[StoredImage], title: str) -> Table:
    table = Table(id_column("id"), "format", "width", "height", "bytes", "created", title=title)
    for i in images:
        table.add_row(
            i.id,
            i.format,
            f"{i.width:,}",
            f"{i.height:,}",
            f"{i.size_bytes:,}",
            f"{i.created_at:%Y-%m-%d %H:%M}",
        )
    return table


@app.command("upload")
@friendly_errors
def upload_cmd(
    files: list[Path] = typer.Argument(..., help="JPEG, PNG or WebP images."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Check and keep images: a table of those uploaded (stdout), an error line per file
    refused (stderr); exits 1 when any file was refused."""
    from aiweb.errors import AiwebError

    uploaded: list[StoredImage] = []
    failed = 0
    with open_images() as service:
        for path in files:
            try:
                if path.is_dir():
                    raise IsADirectoryError("a directory, not a file")
                if not path.exists():
                    raise FileNotFoundError("no such file")
                with path.open("rb") as fh:
                    data = service.read_upload(fh)
                image = service.upload(data, actor="cli")
            except (AiwebError, OSError) as exc:
                failed += 1
                reason = exc.detail if isinstance(exc, AiwebError) else exc.strerror or str(exc)
                err.print(
                    f"[bold red]error:[/] {escape(str(path))}: {escape(str(reason))}",
                    highlight=False,
                    soft_wrap=True,
                )
                continue
            uploaded.append(image)
    if as_json:
        print_json([image_json(i) for i in uploaded])
    elif uploaded:
        out.print(_table(uploaded, "uploaded images"), highlight=False)
    err.print(f"{len(uploaded)} uploaded, {failed} refused", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("list")
@friendly_errors
def list_cmd(
    limit: int = typer.Option(20, min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Uploaded images, newest first."""
    with open_images() as service:
        items, total = service.list(limit=limit)
    if as_json:
        print_json({"images": [image_json(i) for i in items], "total": total})
        return
    out.print(_table(items, "images"), highlight=False)
    err.print(f"{len(items)} of {total}")


@app.command("show")
@friendly_errors
def show_cmd(
    image_id: str = typer.Argument(..., help="Image id, or a unique prefix of it."),
    save: Path | None = typer.Option(
        None, "--save", help="Write the stored PNG (no metadata) to this file."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One image: format, size, checksum (and its stored PNG with --save)."""
    with open_images() as service:
        image = service.get(resolve_image_id(service, image_id))
        if save is not None:
            save.write_bytes(service.content(image))
    data = image_json(image)
    if as_json:
        print_json(data)
        return
    table = Table(id_column("field"), id_column("value"), title=f"image {image.id}")
    for key, value in data.items():
        table.add_row(key, escape(str(value)))
    out.print(table, highlight=False)
    if save is not None:
        err.print(f"saved {escape(str(save))}", highlight=False)


@app.command("delete")
@friendly_errors
def delete_cmd(
    image_id: str = typer.Argument(..., help="Image id, or a unique prefix of it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an image and its stored PNG."""
    with open_images() as service:
        image = service.get(resolve_image_id(service, image_id))
        if not yes:
            typer.confirm(
                f"Delete image {image.id} ({image.width} x {image.height} {image.format})? "
                "This cannot be undone.",
                abort=True,
                err=True,
            )
        gone = service.delete(image.id, actor="cli")
    err.print(f"deleted image {gone.id}", highlight=False)
