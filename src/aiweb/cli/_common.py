"""Shared pieces of the CLI: consoles, error handling, opening the registry."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:  # heavy imports stay inside the commands
    from sqlalchemy import Engine

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


@contextmanager
def _open_database() -> Iterator[tuple[RegistryService, Engine]]:
    from aiweb.app import build_registry
    from aiweb.config import get_settings
    from aiweb.db.migrate import upgrade

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
