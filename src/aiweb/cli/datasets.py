"""``aiweb datasets list|fetch``."""

from __future__ import annotations

import typer
from rich.table import Table

from aiweb.cli._common import err, friendly_errors, out

app = typer.Typer(
    help="Demo datasets: where they come from and where they are.", no_args_is_help=True
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
