"""``aiweb assistants create|list|show|delete``: support assistants from the command line,
on the database and artifact store of the settings (as ``aiweb serve``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from aiweb.cli._common import JSON_HELP, err, friendly_errors, open_database, out, print_json

if TYPE_CHECKING:
    from aiweb.assistant.service import AssistantService
    from aiweb.assistant.store import AssistantRecord

app = typer.Typer(
    help="Support assistants: intents, slots, help-collection answers, handoff.",
    no_args_is_help=True,
)


@contextmanager
def open_service() -> Iterator[AssistantService]:
    """An assistant service on the migrated database (it checks configs against the
    registry and the search collections; it runs no turn)."""
    from aiweb.assistant.service import AssistantService
    from aiweb.assistant.store import AssistantStore
    from aiweb.config import get_settings
    from aiweb.db.session import make_session_factory
    from aiweb.embeddings.runtime import EmbedderPool
    from aiweb.search.service import SearchService
    from aiweb.search.store import SearchStore

    settings = get_settings()
    with open_database() as (registry, engine):
        search = SearchService(
            SearchStore(engine), EmbedderPool(registry, settings.embeddings), registry, settings
        )
        yield AssistantService(
            AssistantStore(make_session_factory(engine)), registry, search=search
        )


def _read_config(path: str) -> dict[str, Any]:
    from aiweb.errors import InvalidInputError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} must hold a JSON object (the assistant's config)")
    return data


def _config(data: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from aiweb.assistant.config import AssistantConfig
    from aiweb.cli._common import parameter_problems
    from aiweb.errors import InvalidInputError

    try:
        return AssistantConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid config: {parameter_problems(exc)}") from None


def _describe(record: AssistantRecord) -> Table:
    config = record.config
    table = Table("field", "value", title=f"assistant {record.name}", show_header=False)
    slots = {intent: ", ".join(s.name for s in slots) for intent, slots in config.slots.items()}
    handoff = config.handoff
    for name, value in (
        ("intents model", config.intents_model),
        ("help collection", config.faq_collection or "none"),
        ("entity model", config.entities_model or "none"),
        ("min confidence", f"{config.min_confidence:g}"),
        ("responses", ", ".join(sorted(config.responses)) or "none"),
        ("slots", "; ".join(f"{i}: {s}" for i, s in sorted(slots.items())) or "none"),
        (
            "handoff",
            f"intents {', '.join(handoff.intents) or 'none'}; after "
            f"{handoff.after_fallbacks if handoff.after_fallbacks is not None else 'no'} "
            f"fallbacks; webhook {handoff.webhook_url or 'none'}",
        ),
        ("revision", str(record.revision)),
        ("created", f"{record.created_at:%Y-%m-%d %H:%M} by {record.created_by}"),
    ):
        table.add_row(name, value)
    return table


@app.command("create")
@friendly_errors
def create(
    name: str = typer.Argument(..., help="Assistant name."),
    config: str = typer.Argument(
        ..., help="JSON file with the config (the body of PUT /v1/assistants/NAME); - is stdin."
    ),
) -> None:
    """Create an assistant, or replace its config; the config is checked against the
    registered models and collections first."""
    from aiweb.names import check_name

    check_name(name, "assistant name")
    parsed = _config(_read_config(config))
    with open_service() as service:
        record, created = service.put(name, parsed, actor="cli")
    err.print(_describe(record))
    err.print(f"{'created' if created else 'updated'} assistant {record.name}")
    if created:
        err.print(f"handoff webhook signing secret (shown once): {record.secret}", soft_wrap=True)


@app.command("list")
@friendly_errors
def list_(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every assistant."""
    with open_service() as service:
        records = service.store.assistants()
    if as_json:
        print_json([r.public() for r in records])
        return
    table = Table("name", "intents model", "help collection", "revision", "updated")
    for r in records:
        table.add_row(
            r.name,
            r.config.intents_model,
            r.config.faq_collection or "none",
            str(r.revision),
            f"{r.updated_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)


@app.command("show")
@friendly_errors
def show(
    name: str = typer.Argument(..., help="Assistant name."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One assistant and its config."""
    with open_service() as service:
        record = service.store.get(name)
    if as_json:
        print_json(record.public())
        return
    out.print(_describe(record))


@app.command("delete")
@friendly_errors
def delete(
    name: str = typer.Argument(..., help="Assistant name."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask."),
) -> None:
    """Delete an assistant with all its conversations."""
    if not yes:
        typer.confirm(f"delete assistant {name} and all its conversations?", abort=True)
    with open_service() as service:
        counts = service.delete(name)
    err.print(
        f"deleted assistant {name} ({counts['conversations']} conversations, "
        f"{counts['messages']} messages)"
    )
