"""Shared pieces of the CLI: consoles, error handling, opening the registry."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

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
def open_registry() -> Iterator[Any]:
    """Settings from the environment, a migrated database, and the registry service."""
    from aiweb.app import build_registry
    from aiweb.config import get_settings
    from aiweb.db.migrate import upgrade

    settings = get_settings()
    registry, engine = build_registry(settings)
    try:
        upgrade(engine)
        yield registry
    finally:
        engine.dispose()
