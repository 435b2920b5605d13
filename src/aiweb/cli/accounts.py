"""``aiweb users create|list|passwd|disable``: logins of the web dashboard."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from aiweb.cli._common import (
    JSON_HELP,
    err,
    friendly_errors,
    id_column,
    iso,
    open_users,
    out,
    print_json,
)

app = typer.Typer(
    help="Dashboard users (username and password; passwords are stored as argon2id hashes).",
    no_args_is_help=True,
)

_STDIN_HELP = "Read the password from the first line of stdin instead of prompting."


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("create")
@friendly_errors
def create_cmd(
    username: str = typer.Argument(..., help="Login name, e.g. alice."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=_STDIN_HELP),
) -> None:
    """Create a dashboard user (at least 12 characters of password)."""
    password = _read_password(password_stdin)
    with open_users() as users:
        users.create(username, password, actor="cli")
    err.print(f"created dashboard user [bold]{username}[/]; log in at the server's / page")


@app.command("list")
@friendly_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Every dashboard user and their state (never the hashes)."""
    with open_users() as users:
        rows = users.list()
    if as_json:
        print_json(
            [
                {
                    "username": u.username,
                    "state": "active" if u.active else "disabled",
                    "created_at": iso(u.created_at),
                    "password_changed_at": iso(u.password_changed_at),
                    "last_login_at": iso(u.last_login_at),
                    "disabled_at": iso(u.disabled_at),
                }
                for u in rows
            ]
        )
        return
    table = Table(id_column("username"), "state", "created", "last login", title="dashboard users")
    for u in rows:
        table.add_row(
            u.username,
            "active" if u.active else "disabled",
            f"{u.created_at:%Y-%m-%d %H:%M}",
            f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never",
        )
    out.print(table)


@app.command("passwd")
@friendly_errors
def passwd_cmd(
    username: str = typer.Argument(..., help="Whose password to change."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=_STDIN_HELP),
) -> None:
    """Set a new password; the user's open dashboard sessions end."""
    password = _read_password(password_stdin)
    with open_users() as users:
        users.set_password(username, password, actor="cli")
    err.print(f"password of {username} changed")


@app.command("disable")
@friendly_errors
def disable_cmd(username: str = typer.Argument(..., help="Who may no longer log in.")) -> None:
    """Stop a user from logging in; their open sessions end at their next request."""
    with open_users() as users:
        users.disable(username, actor="cli")
    err.print(f"disabled dashboard user {username}")
