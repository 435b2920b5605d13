"""``aiweb datasets list|fetch|upload|uploads|show|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from aiweb.cli._common import JSON_HELP, err, friendly_errors, id_column, iso, out, print_json

if TYPE_CHECKING:
    from aiweb.datasets.service import Dataset

app = typer.Typer(
    help="Built-in datasets (where they come from, where they are) and uploaded files.",
    no_args_is_help=True,
)


@app.command("list")
@friendly_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The datasets aiweb knows, their labels, licence and caveats."""
    from aiweb import datasets

    if as_json:
        print_json(
            [
                {
                    "name": info.name,
                    "task": info.task,
                    "description": info.description,
                    "labels": list(info.labels),
                    "license": info.license,
                    "source": info.url,
                    "caveats": list(info.caveats),
                }
                for info in datasets.available()
            ]
        )
        return
    table = Table(id_column("name"), "task", "labels", "license", "source", title="datasets")
    for info in datasets.available():
        table.add_row(info.name, info.task, ", ".join(info.labels), info.license, info.url)
    out.print(table)


@app.command("fetch")
@friendly_errors
def fetch_cmd(name: str = typer.Argument(..., help="Dataset name, e.g. sst2 or sms_spam.")) -> None:
    """Find a dataset (AIWEB_DATA_HOME, then the cache) or download it from its publisher."""
    from aiweb import datasets
    from aiweb.config import get_settings

    path = datasets.fetch(name, get_settings())
    err.print(f"{name}: ready in {path}")
    out.print(str(path), highlight=False)


@app.command("upload")
@friendly_errors
def upload_cmd(
    file: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="A CSV, JSONL or CoNLL (.conll, .iob, .bio) file; a JSONL file whose lines are "
        '{"text": ..., "spans": [{"start", "end", "label"}]} is kept as a spans file.',
    ),
) -> None:
    """Check a CSV, JSONL (records or spans) or CoNLL file and keep it for jobs; prints its
    dataset id (stdout)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from aiweb.cli.jobs import open_jobs
    from aiweb.datasets.tables import FORMAT_NAMES

    size = file.stat().st_size
    with (
        open_jobs() as (env, _service),
        Progress(
            TextColumn("checking {task.fields[name]}"), BarColumn(), DownloadColumn(), console=err
        ) as bar,
    ):
        task = bar.add_task("", total=size, name=file.name)
        with file.open("rb") as fh:
            dataset = env.datasets.upload(
                fh,
                file.name,
                actor="cli",
                progress=lambda n: bar.update(task, completed=min(n, size)),
            )
    err.print(
        f"dataset [bold]{dataset.id}[/] ({FORMAT_NAMES.get(dataset.format, dataset.format)}): "
        f"{dataset.rows:,} rows, columns "
        f"{', '.join(dataset.columns)}",
        highlight=False,
    )
    out.print(dataset.id, highlight=False)


@app.command("uploads")
@friendly_errors
def uploads_cmd(
    limit: int = typer.Option(20, min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Uploaded datasets, newest first."""
    from aiweb.cli.jobs import open_jobs

    with open_jobs() as (env, _service):
        items, total = env.datasets.list(limit=limit)
    if as_json:
        print_json({"datasets": [dataset_json(d) for d in items], "total": total})
        return
    table = Table(
        id_column("id"),
        id_column("name"),
        "format",
        "rows",
        "columns",
        "created",
        title="uploaded datasets",
    )
    for d in items:
        table.add_row(
            d.id,
            d.name,
            d.format,
            f"{d.rows:,}",
            ", ".join(d.columns)[:60],
            f"{d.created_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)
    err.print(f"{len(items)} of {total}")


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    """An uploaded dataset as ``--json`` prints it (the keys of ``GET /v1/datasets/{id}``)."""
    return {
        "id": dataset.id,
        "name": dataset.name,
        "format": dataset.format,
        "rows": dataset.rows,
        "columns": list(dataset.columns),
        "sha256": dataset.sha256,
        "size_bytes": dataset.size_bytes,
        "created_by": dataset.created_by,
        "created_at": iso(dataset.created_at),
    }


@app.command("show")
@friendly_errors
def show_cmd(
    dataset_id: str = typer.Argument(..., help="Dataset id, or a unique prefix of it."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One uploaded dataset: name, format, rows, columns, checksum."""
    from aiweb.cli.jobs import open_jobs, resolve_dataset_id

    with open_jobs() as (env, _service):
        dataset = env.datasets.get(resolve_dataset_id(env, dataset_id))
    data = dataset_json(dataset)
    if as_json:
        print_json(data)
        return
    table = Table(id_column("field"), id_column("value"), title=f"dataset {dataset.id}")
    for key, value in data.items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    out.print(table, highlight=False)


@app.command("delete")
@friendly_errors
def delete_cmd(
    dataset_id: str = typer.Argument(..., help="Dataset id, or a unique prefix of it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an uploaded dataset and its stored file (refused while a pending or running
    job, or a retraining schedule, uses it)."""
    from aiweb.cli.jobs import open_jobs, resolve_dataset_id

    with open_jobs() as (env, _service):
        dataset = env.datasets.get(resolve_dataset_id(env, dataset_id))
        if not yes:
            typer.confirm(
                f"Delete dataset {dataset.id} ({dataset.name}, {dataset.rows:,} rows)? "
                "This cannot be undone.",
                abort=True,
                err=True,
            )
        gone = env.datasets.delete(dataset.id)
        env.registry.record(
            "cli",
            "dataset.delete",
            f"dataset:{gone.id}",
            before={"name": gone.name, "rows": gone.rows, "sha256": gone.sha256},
        )
    err.print(f"deleted dataset {gone.id} ({gone.name})", highlight=False)
