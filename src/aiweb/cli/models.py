"""``aiweb models list|show|install|promote|rollback|delete``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    err,
    friendly_errors,
    id_column,
    iso,
    open_registry,
    out,
    print_json,
    where,
)

app = typer.Typer(help="The model registry: versions and aliases.", no_args_is_help=True)


@app.command("list")
@friendly_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Registered models, their aliases and newest version."""
    with open_registry() as registry:
        models = registry.list_models()
    if as_json:
        print_json(
            [
                {
                    "name": m.name,
                    "task": m.task,
                    "description": m.description,
                    "latest_version": m.latest_version,
                    "aliases": dict(sorted(m.aliases.items())),
                    "created_at": iso(m.created_at),
                    "updated_at": iso(m.updated_at),
                }
                for m in models
            ]
        )
        return
    table = Table(id_column("name"), "task", "latest", "aliases", title="models")
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, m.task, str(m.latest_version or "-"), aliases)
    out.print(table)
    if not models:  # an empty registry may be the wrong one: say which it is
        err.print(f"no models registered ({escape(where())})", highlight=False)


@app.command("show")
@friendly_errors
def show_cmd(name: str, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every version of NAME with status, aliases, data and quality."""
    with open_registry() as registry:
        model = registry.get_model(name)
        versions = registry.list_versions(name)
    if as_json:
        print_json(
            {
                "name": model.name,
                "task": model.task,
                "description": model.description,
                "latest_version": model.latest_version,
                "aliases": dict(sorted(model.aliases.items())),
                "created_at": iso(model.created_at),
                "versions": [
                    {
                        "version": v.version,
                        "status": v.status,
                        "aliases": list(v.aliases),
                        "labels": list(v.labels),
                        "artifact_format": v.artifact_format,
                        "artifact_sha256": v.artifact_sha256,
                        "lineage": v.lineage,
                        "evaluation": v.evaluation,
                        "created_at": iso(v.created_at),
                    }
                    for v in versions
                ],
            }
        )
        return
    table = Table(
        id_column("version"),
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


@app.command("install")
@friendly_errors
def install_cmd(
    names: list[str] = typer.Argument(
        ..., help="Built-in models to register: faces, people, ocr (one or more)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Register the built-in vision models NAMES (faces, people, ocr): each a version of
    the model of that name, production when it is the first, with lineage naming the
    library, its version and the model file's sha256. Nothing is downloaded: the models
    ship inside `pip install 'aiweb\\[vision]'` (OpenCV, rapidocr). Installing again
    registers nothing when the newest version holds the same model."""
    from aiweb.vision.builtin import install

    with open_registry() as registry:
        try:
            done = install(registry, names, actor="cli")
        except (ImportError, FileNotFoundError) as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}: pip install 'aiweb\\[vision]'")
            raise typer.Exit(1) from None
    if as_json:
        print_json(
            [
                {
                    "name": d.version.name,
                    "task": d.version.task,
                    "version": d.version.version,
                    "aliases": sorted(d.version.aliases),
                    "already_installed": d.already_installed,
                    "lineage": d.version.lineage,
                }
                for d in done
            ]
        )
        return
    table = Table(id_column("name"), "task", "version", "aliases", "library", "model sha256")
    for d in done:
        v = d.version
        library = f"{v.lineage.get('library', '')} {v.lineage.get('library_version', '')}"
        number = f"{v.version} (already installed)" if d.already_installed else str(v.version)
        table.add_row(
            v.name,
            v.task,
            number,
            ", ".join(sorted(v.aliases)),
            library.strip(),
            str(v.lineage.get("model_sha256", ""))[:16] + "…",
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


@app.command("delete")
@friendly_errors
def delete_cmd(
    name: str = typer.Argument(..., help="Registered model name."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="Delete only this version (no alias may point at it)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete model NAME (every version, alias, artifact file and its retraining schedule),
    or only its version V (--version V). Predictions it made stay in the log."""
    from aiweb.registry.entities import aliased_version_conflict

    with open_registry() as registry:
        if version is not None:
            found = registry.get_version(name, version)
            if found.aliases:  # the refusal of delete_version, before asking
                raise aliased_version_conflict(name, version, list(found.aliases))
            if not yes:
                typer.confirm(
                    f"Delete {name}:{version} and its artifact files? This cannot be undone.",
                    abort=True,
                    err=True,
                )
            registry.delete_version(name, version, actor="cli")
            err.print(f"deleted {name}:{version}", highlight=False)
            return
        model = registry.get_model(name)
        versions = registry.list_versions(name)
        if not yes:
            aliases = ", ".join(f"{a}→{v}" for a, v in sorted(model.aliases.items()))
            typer.confirm(
                f"Delete model {name} ({model.task}) with its {len(versions)} version(s)"
                + (f", aliases {aliases}" if aliases else "")
                + ", artifact files and retraining schedule? This cannot be undone.",
                abort=True,
                err=True,
            )
        deleted = registry.delete_model(name, actor="cli")
    numbers = ", ".join(str(v.version) for v in deleted.versions) or "none"
    err.print(
        f"deleted model {name} (versions: {numbers}"
        + ("; retraining schedule removed" if deleted.schedule_removed else "")
        + ")",
        highlight=False,
    )
