"""``aiweb keys create|list|revoke``. ``create`` prints the secret alone on stdout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    err,
    friendly_errors,
    id_column,
    iso,
    open_database,
    open_keys,
    out,
    print_json,
    resolve_prefix,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@app.command("create")
@friendly_errors
def create_cmd(
    name: str = typer.Argument(..., help="Key name, e.g. webshop."),
    scopes: str = typer.Option(
        "predict", help="Comma-separated: predict, train, admin; or chat alone."
    ),
    expires_in: str | None = typer.Option(None, help="Lifetime such as 90d or 12h."),
    assistants: str | None = typer.Option(
        None, help="A chat key's assistants, comma-separated (required with --scopes chat)."
    ),
    origins: str | None = typer.Option(
        None,
        help="The origins of the pages that may use a chat key, comma-separated, e.g. "
        "https://shop.example (required with --scopes chat).",
    ),
) -> None:
    """Create a key and print its secret once (alone on stdout, so scripts can capture it).

    A chat key is publishable — a web page's chat widget shows it — so it has scope chat
    alone, and works only for the assistants and from the origins it names:
    aiweb keys create site --scopes chat --assistants helpdesk --origins https://shop.example
    """
    from aiweb.security.keys import parse_duration

    expiry = parse_duration(expires_in) if expires_in else None
    with open_keys() as service:
        key, secret = service.create(
            name, scopes, expires_in=expiry, targets=assistants, origins=origins, actor="cli"
        )
    until = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
    if key.publishable:
        until += f"; assistants {', '.join(key.targets)}; origins {', '.join(key.origins)}"
    err.print(
        f"created API key [bold]{key.name}[/] (scopes: {', '.join(key.scopes)}{until}); "
        "the secret below is shown only now",
        highlight=False,
    )
    print(secret)


@app.command("list")
@friendly_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every key with its scopes and state (never the secrets)."""
    with open_keys() as service:
        keys = service.list()
    if as_json:
        print_json(
            [
                {
                    "name": k.name,
                    "prefix": k.prefix,
                    "scopes": list(k.scopes),
                    "state": k.state(),
                    "created_by": k.created_by,
                    "created_at": iso(k.created_at),
                    "expires_at": iso(k.expires_at),
                    "revoked_at": iso(k.revoked_at),
                    "assistants": list(k.targets),
                    "origins": list(k.origins),
                }
                for k in keys
            ]
        )
        return
    table = Table(
        id_column("name"),
        id_column("prefix"),
        "scopes",
        "state",
        "created",
        "expires",
        title="API keys",
    )
    for k in keys:
        table.add_row(
            k.name,
            k.prefix,
            ", ".join(k.scopes)
            + (f" ({', '.join(k.targets)} from {', '.join(k.origins)})" if k.publishable else ""),
            k.state(),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "never",
        )
    out.print(table)


@app.command("revoke")
@friendly_errors
def revoke_cmd(
    name: str = typer.Argument(
        ..., help="Name of the key to revoke, or a unique prefix of its name or of its prefix."
    ),
) -> None:
    """Revoke a key (running servers stop accepting it within seconds)."""
    from aiweb.db.session import make_session_factory
    from aiweb.security.keys import KeyService

    with open_database() as (registry, engine):
        sessions = make_session_factory(engine)
        service = KeyService(sessions, registry.audit)
        key = service.revoke(resolve_key_name(sessions, name), actor="cli")
    err.print(f"revoked API key {key.name} (prefix {key.prefix})")


def resolve_key_name(sessions: sessionmaker[Session], given: str) -> str:
    """The name of the key ``given`` names: its name, or a unique prefix of its name or
    of its public prefix (the ``prefix`` column of ``aiweb keys list``).

    Raises:
        InvalidInputError: several keys match (listed).
    """
    from aiweb.db.orm import SqlApiKey

    return resolve_prefix(sessions, [SqlApiKey.name, SqlApiKey.prefix], given, "key")
