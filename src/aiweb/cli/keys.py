"""``aiweb keys create|list|revoke``. ``create`` prints the secret alone on stdout."""

from __future__ import annotations

import typer
from rich.table import Table

from aiweb.cli._common import err, friendly_errors, open_keys, out

app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@app.command("create")
@friendly_errors
def create_cmd(
    name: str = typer.Argument(..., help="Key name, e.g. webshop."),
    scopes: str = typer.Option("predict", help="Comma-separated: predict, train, admin."),
    expires_in: str | None = typer.Option(None, help="Lifetime such as 90d or 12h."),
) -> None:
    """Create a key and print its secret once (alone on stdout, so scripts can capture it)."""
    from aiweb.security.keys import parse_duration

    expiry = parse_duration(expires_in) if expires_in else None
    with open_keys() as service:
        key, secret = service.create(name, scopes, expires_in=expiry, actor="cli")
    until = f", expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
    err.print(
        f"created API key [bold]{key.name}[/] (scopes: {', '.join(key.scopes)}{until}); "
        "the secret below is shown only now",
        highlight=False,
    )
    print(secret)


@app.command("list")
@friendly_errors
def list_cmd() -> None:
    """Every key with its scopes and state (never the secrets)."""
    with open_keys() as service:
        keys = service.list()
    table = Table("name", "prefix", "scopes", "state", "created", "expires", title="API keys")
    for k in keys:
        table.add_row(
            k.name,
            k.prefix,
            ", ".join(k.scopes),
            k.state(),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "never",
        )
    out.print(table)


@app.command("revoke")
@friendly_errors
def revoke_cmd(name: str = typer.Argument(..., help="Name of the key to revoke.")) -> None:
    """Revoke a key (running servers stop accepting it within seconds)."""
    with open_keys() as service:
        service.revoke(name, actor="cli")
    err.print(f"revoked API key {name}")
