"""``aiweb datasets list|fetch|upload|uploads``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from aiweb.cli._common import err, friendly_errors, out

app = typer.Typer(
    help="Built-in datasets (where they come from, where they are) and uploaded files.",
    no_args_is_help=True,
)


@app.command("list")
@friendly_errors
def list_cmd() -> None:
    """The datasets aiweb knows, their labels, licence and caveats."""
    from aiweb import datasets

    table = Table("name", "task", "labels", "license", "source", title="datasets")
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
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A CSV or JSONL file."),
) -> None:
    """Check a CSV/JSONL file and keep it for jobs; prints its dataset id (stdout)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from aiweb.cli.jobs import open_jobs

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
        f"dataset [bold]{dataset.id}[/]: {dataset.rows:,} rows, columns "
        f"{', '.join(dataset.columns)}",
        highlight=False,
    )
    out.print(dataset.id, highlight=False)


@app.command("uploads")
@friendly_errors
def uploads_cmd(limit: int = typer.Option(20, min=1, max=500)) -> None:
    """Uploaded datasets, newest first."""
    from aiweb.cli.jobs import open_jobs

    with open_jobs() as (env, _service):
        items, total = env.datasets.list(limit=limit)
    table = Table("id", "name", "format", "rows", "columns", "created", title="uploaded datasets")
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
