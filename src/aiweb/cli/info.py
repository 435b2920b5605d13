"""``aiweb info`` and ``aiweb --version``: what this installation is and where it keeps
its data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    database_exists,
    friendly_errors,
    id_column,
    open_registry,
    out,
    print_json,
    redact_url,
)

if TYPE_CHECKING:
    from aiweb.config import Settings


def show_version(value: bool) -> None:
    """``--version``: print ``aiweb <version>`` on stdout and exit."""
    if value:
        from aiweb import __version__

        typer.echo(f"aiweb {__version__}")
        raise typer.Exit()


def _models(settings: Settings) -> tuple[list[dict[str, Any]], str | None]:
    """The registered models, or an empty list and why there are none to read."""
    from sqlalchemy.exc import SQLAlchemyError

    if not database_exists(settings):
        return [], "the database does not exist yet (the first command that needs it creates it)"
    try:
        with open_registry() as registry:
            models = registry.list_models()
    except SQLAlchemyError as exc:
        return [], f"the database cannot be read: {str(exc).splitlines()[0]}"
    return [
        {
            "name": m.name,
            "task": m.task,
            "latest_version": m.latest_version,
            "production_version": m.aliases.get("production"),
            "aliases": dict(sorted(m.aliases.items())),
        }
        for m in models
    ], None


def collect(settings: Settings) -> dict[str, Any]:
    """Everything ``aiweb info`` reports, as its ``--json`` prints it.

    Keys: ``version``, ``home``, ``database``, ``database_exists``, ``artifact_store``,
    ``broker`` (``null``: ``aiweb serve`` runs the jobs), ``tasks`` (installed task
    names), ``models`` (``name``, ``task``, ``latest_version``, ``production_version``,
    ``aliases``) and ``models_error`` (``null``, or why the models could not be read).
    """
    from aiweb import __version__, tasks

    models, problem = _models(settings)
    return {
        "version": __version__,
        "home": str(settings.home),
        "database": redact_url(settings.resolved_database_url),
        "database_exists": database_exists(settings),
        "artifact_store": (
            redact_url(settings.artifacts_url)
            if settings.artifacts_url
            else str(settings.resolved_artifacts_dir)
        ),
        "broker": redact_url(settings.broker_url) if settings.broker_url else None,
        "tasks": [task.name for task in tasks.installed()],
        "models": models,
        "models_error": problem,
    }


@friendly_errors
def info(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Version, home, database, artifact store, broker, installed tasks and registered
    models (with their production versions): where this command line reads and writes."""
    from aiweb.config import get_settings

    data = collect(get_settings())
    if as_json:
        print_json(data)
        return
    table = Table(id_column("setting"), id_column("value"), title="aiweb", show_header=False)
    table.add_row("version", data["version"])
    table.add_row("home (AIWEB_HOME)", escape(data["home"]))
    database = data["database"] + ("" if data["database_exists"] else " (does not exist yet)")
    table.add_row("database", escape(database))
    table.add_row("artifact store", escape(data["artifact_store"]))
    table.add_row(
        "broker",
        escape(data["broker"] or "none: `aiweb serve` runs the jobs (AIWEB_BROKER_URL unset)"),
    )
    table.add_row("installed tasks", ", ".join(data["tasks"]))
    out.print(table, highlight=False)
    if data["models_error"]:
        out.print(f"models: none ({escape(data['models_error'])})", highlight=False)
        return
    if not data["models"]:
        out.print("models: none registered", highlight=False)
        return
    models = Table(
        id_column("model"), "task", "production", "latest", "aliases", title="registered models"
    )
    for m in data["models"]:
        models.add_row(
            m["name"],
            m["task"],
            str(m["production_version"] or "-"),
            str(m["latest_version"] or "-"),
            ", ".join(f"{a}→{v}" for a, v in m["aliases"].items()),
        )
    out.print(models, highlight=False)
