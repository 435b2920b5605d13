"""``aiweb models list|show|promote|rollback``."""

from __future__ import annotations

import typer
from rich.table import Table

from aiweb.cli._common import err, friendly_errors, open_registry, out

app = typer.Typer(help="The model registry: versions and aliases.", no_args_is_help=True)


@app.command("list")
@friendly_errors
def list_cmd() -> None:
    """Registered models, their aliases and newest version."""
    with open_registry() as registry:
        models = registry.list_models()
    table = Table("name", "task", "latest", "aliases", title="models")
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, m.task, str(m.latest_version or "-"), aliases)
    out.print(table)


@app.command("show")
@friendly_errors
def show_cmd(name: str) -> None:
    """Every version of NAME with status, aliases, data and quality."""
    with open_registry() as registry:
        model = registry.get_model(name)
        versions = registry.list_versions(name)
    table = Table(
        "version",
        "status",
        "aliases",
        "dataset",
        "accuracy",
        "macro-F1",
        "created",
        title=f"{model.name} ({model.task})",
    )
    for v in versions:
        ev = v.evaluation
        table.add_row(
            str(v.version),
            v.status,
            ", ".join(v.aliases),
            str(v.lineage.get("dataset", "")),
            f"{ev['accuracy']:.4f}" if "accuracy" in ev else "",
            f"{ev['macro_f1']:.4f}" if "macro_f1" in ev else "",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@app.command("promote")
@friendly_errors
def promote_cmd(
    name: str,
    version: int,
    alias: str = typer.Option("production", help="Alias to move."),
) -> None:
    """Point ALIAS (default production) of NAME at VERSION."""
    with open_registry() as registry:
        event = registry.promote(name, version, alias, actor="cli")
    err.print(f"{name}@{alias}: {event.from_version or '-'} → {event.to_version}")


@app.command("rollback")
@friendly_errors
def rollback_cmd(
    name: str, alias: str = typer.Option("production", help="Alias to move back.")
) -> None:
    """Move ALIAS (default production) of NAME back to the version it pointed at before."""
    with open_registry() as registry:
        event = registry.rollback(name, alias, actor="cli")
    err.print(f"{name}@{alias}: {event.from_version} → {event.to_version} (rolled back)")
