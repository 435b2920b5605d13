"""Shared pieces of the CLI: consoles, error handling, opening the registry."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:  # heavy imports stay inside the commands
    from sqlalchemy import Engine

    from aiweb.dashboard.users import UserService
    from aiweb.registry.service import RegistryService
    from aiweb.security.keys import KeyService

P = ParamSpec("P")
R = TypeVar("R")

#: Human-facing output (progress, tables, messages) goes to stderr …
err = Console(stderr=True)
#: … and only results a script may capture go to stdout.
out = Console()


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn aiweb's own errors into one red line and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from aiweb.errors import AiwebError

        try:
            return fn(*args, **kwargs)
        except AiwebError as exc:
            err.print(f"[bold red]error:[/] {exc.detail}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def parse_key_values(pairs: list[str], option: str) -> dict[str, Any]:
    """``["C=4", "name=x"]`` -> ``{"C": 4, "name": "x"}``: values parsed as JSON when they
    are JSON, kept as strings otherwise.

    Raises:
        InvalidInputError: a pair without ``=`` or without a key.
    """
    import json

    from aiweb.errors import InvalidInputError

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{option} takes KEY=VALUE, not {pair!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


@contextmanager
def _open_database() -> Iterator[tuple[RegistryService, Engine]]:
    from aiweb.config import get_settings
    from aiweb.db.migrate import upgrade
    from aiweb.registry.factory import build_registry

    registry, engine = build_registry(get_settings())
    try:
        upgrade(engine)
        yield registry, engine
    finally:
        engine.dispose()


@contextmanager
def open_registry() -> Iterator[RegistryService]:
    """Settings from the environment, a migrated database, and the registry service."""
    with _open_database() as (registry, _engine):
        yield registry


@contextmanager
def open_keys() -> Iterator[KeyService]:
    """The API key service on the migrated database (audit log included)."""
    from aiweb.db.session import make_session_factory
    from aiweb.security.keys import KeyService

    with _open_database() as (registry, engine):
        yield KeyService(make_session_factory(engine), registry.audit)


@contextmanager
def open_users() -> Iterator[UserService]:
    """The dashboard user service on the migrated database (audit log included)."""
    from aiweb.dashboard.users import UserService
    from aiweb.db.session import make_session_factory

    with _open_database() as (registry, engine):
        assert registry.audit is not None
        yield UserService(make_session_factory(engine), registry.audit)
