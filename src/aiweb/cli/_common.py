"""Shared pieces of the CLI: consoles, error handling, opening the registry, id prefixes,
JSON output and tables that never cut an id.

Only light modules are imported here (typer, rich): ``aiweb --help`` imports every command
module, and each command imports what it needs when it runs.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column

if TYPE_CHECKING:  # heavy imports stay inside the commands
    from pydantic import BaseModel, ValidationError
    from rich.progress import Progress
    from sqlalchemy import Engine
    from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

    from aiweb.config import Settings
    from aiweb.dashboard.users import UserService
    from aiweb.registry.service import RegistryService
    from aiweb.security.keys import KeyService

P = ParamSpec("P")
R = TypeVar("R")

#: Human-facing output (progress, tables, messages) goes to stderr …
err = Console(stderr=True)
#: … and only results a script may capture go to stdout.
out = Console()

#: The help of every ``--json`` option.
JSON_HELP = "Print machine-readable JSON (stable keys) on stdout instead of a table."

#: The SQLite databases the running command created (see :func:`note_database`).
_created_databases: set[str] = set()


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (database, broker, artifact URLs)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///…`` URL (``None`` for other databases or in memory)."""
    head, sep, rest = url.partition(":///")
    if not sep or not head.startswith("sqlite"):
        return None
    path = rest.partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


def database_exists(settings: Settings) -> bool:
    """Whether the settings' database is there already (always true but for SQLite, whose
    file is created on first use)."""
    path = _sqlite_file(settings.resolved_database_url)
    return path is None or path.is_file()


def note_database(settings: Settings) -> None:
    """Call before a command opens the database: remember whether it creates it now, so
    a "not found" can say the database was empty (a wrong ``AIWEB_HOME`` does that)."""
    if not database_exists(settings):
        _created_databases.add(settings.resolved_database_url)


def where(settings: Settings | None = None) -> str:
    """Which home and database a command used, for its "not found" messages:
    ``home /x, database sqlite:////x/aiweb.db``, with a warning when the command created
    that database just now."""
    if settings is None:
        from aiweb.config import get_settings

        settings = get_settings()
    url = settings.resolved_database_url
    text = f"home {settings.home}, database {redact_url(url)}"
    if url in _created_databases:
        text += (
            "; that database did not exist and was created empty just now: "
            "check AIWEB_HOME (or AIWEB_DATABASE_URL)"
        )
    return text


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn aiweb's own errors into one red line and exit status 1 (no traceback).

    A "not found" also says which home and database the command looked in.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from aiweb.errors import AiwebError, NotFoundError

        _created_databases.clear()  # what this command creates, not an earlier one
        try:
            return fn(*args, **kwargs)
        except AiwebError as exc:
            detail = exc.detail
            # a missing thing (also one named inside a request: "dataset_id … does not
            # exist") may be a wrong AIWEB_HOME: say where the command looked
            if isinstance(exc, NotFoundError) or "does not exist" in detail:
                detail = f"{detail} ({where()})"
            # escaped: a message may hold brackets (``pip install 'aiweb[export]'``)
            # one line, however long: scripts read it (never wrapped at the console width)
            err.print(f"[bold red]error:[/] {escape(detail)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def parse_key_values(
    pairs: list[str], option: str, strings: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``["C=4", "name=x"]`` -> ``{"C": 4, "name": "x"}``: values parsed as JSON when they
    are JSON, kept as strings otherwise; the values of the keys in ``strings`` (ids and
    names, such as a dataset id prefix ``12345678`` or ``1e400000``) always stay strings.

    Raises:
        InvalidInputError: a pair without ``=`` or without a key.
    """
    from aiweb.errors import InvalidInputError

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{option} takes KEY=VALUE, not {pair!r}")
        if key in strings:
            values[key] = raw
            continue
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


# --------------------------------------------------------------------------- parameters


def type_name(annotation: Any) -> str:
    """A short, readable name of a parameter's type: ``int``, ``float | null``,
    ``'hashing' | 'tfidf'``."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if annotation is typing.Any:
        return "any"
    if isinstance(annotation, type) and origin is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def describe_parameters(model: type[BaseModel]) -> str:
    """Every parameter of ``model`` with its type and default, e.g. ``C (float, default
    2.0), vectorizer ('hashing' | 'tfidf', default 'hashing')``."""
    parts = []
    for name, field in model.model_fields.items():
        if field.is_required():
            parts.append(f"{name} ({type_name(field.annotation)}, required)")
        else:
            parts.append(f"{name} ({type_name(field.annotation)}, default {field.default!r})")
    return ", ".join(parts) or "none"


def parameter_problems(exc: ValidationError) -> str:
    """A pydantic error in words: ``unknown parameter 'X'``, ``C=-1: Input should be
    greater than 0`` (one per problem, ``;``-separated)."""
    problems = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            problems.append(f"unknown parameter {loc!r}")
        elif loc:
            problems.append(f"{loc}={e.get('input')!r}: {e['msg']}")
        else:
            problems.append(e["msg"])
    return "; ".join(problems)


# --------------------------------------------------------------------------- output


def id_column(header: str, **options: Any) -> Column:
    """A table column that never cuts its values: ids and names are copied from tables
    into the next command (not wrapped; folded onto a second line only when the
    terminal is too narrow for the table at all)."""
    return Column(header, no_wrap=True, overflow="fold", **options)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (datetimes in ISO 8601), for scripts."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def iso(value: datetime | None) -> str | None:
    """A timestamp in ISO 8601, or ``None``."""
    return value.isoformat() if value is not None else None


# --------------------------------------------------------------------------- id prefixes


def resolve_prefix(
    sessions: sessionmaker[Session],
    columns: Sequence[InstrumentedAttribute[str]],
    given: str,
    what: str,
) -> str:
    """The value of ``columns[0]`` of the one row that ``given`` names: exactly, or by a
    unique prefix of any of ``columns``.

    Args:
        sessions: sessions on the database.
        columns: the id column first, then other columns a prefix may match (a key's
            public prefix).
        given: what the user typed.
        what: the kind of thing, for the messages (``job``, ``dataset``).

    Returns:
        The full id; ``given`` itself when nothing matches (the caller's lookup then
        reports "not found" as it always did).

    Raises:
        InvalidInputError: ``given`` is a prefix of several ids (the message lists them).
    """
    from sqlalchemy import or_, select

    from aiweb.errors import InvalidInputError

    id_col = columns[0]
    if not given:
        return given
    with sessions() as session:
        if session.scalar(select(id_col).where(id_col == given)) is not None:
            return given
        rows = session.execute(
            select(*columns)
            .where(or_(*(c.startswith(given, autoescape=True) for c in columns)))
            .order_by(id_col)
            .limit(11)
        ).all()
    matches = list(dict.fromkeys(str(row[0]) for row in rows))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        return given
    shown = ", ".join(matches[:10]) + (", …" if len(matches) > 10 else "")
    raise InvalidInputError(
        f"{what} id prefix {given!r} is ambiguous: it matches {shown}; type more characters"
    )


# --------------------------------------------------------------------------- database


#: Set by the console entry point (:func:`aiweb.cli.main`): the process is the command's
#: own, so :func:`collector_paused` may exempt its start-up objects from the collector.
freeze_start_up = False


def training_progress() -> Progress:
    """The progress display of the ``aiweb train`` commands, on stderr: a spinner, the
    stage, a bar, the percentage and the time elapsed (rich imported on first use)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (when it was running).

    For start-up work: importing SQLAlchemy, pydantic and the tables creates some 80,000
    objects that live as long as the process, and the collector, run after every 700 new
    objects, ran some 190 times during ``aiweb models list`` (a tenth of its time) and
    found next to nothing to free. The collector runs again after the block; in the
    ``aiweb`` program (:data:`freeze_start_up`) what the block left alive is first moved
    out of its sight (:func:`gc.freeze`), else its next passes would scan it all the same.
    A process that runs commands in-process (the tests) keeps its collector as it was.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if freeze_start_up:
                gc.freeze()
            gc.enable()


def load_settings() -> Settings:
    """:func:`aiweb.config.get_settings`, with pydantic's plugins (none are installed with
    aiweb) not looked up while the settings' classes are first built: the look-up reads
    the entry points of every installed package (some 20 ms of ``aiweb models list``
    here). Typer builds its own pydantic adapters so too. Pydantic models built later
    (the API's) get the installed plugins as before."""
    if "aiweb.config" not in sys.modules:
        previous = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "1"
        try:
            import aiweb.config  # noqa: F401
        finally:
            if previous is None:
                del os.environ["PYDANTIC_DISABLE_PLUGINS"]
            else:
                os.environ["PYDANTIC_DISABLE_PLUGINS"] = previous
    from aiweb.config import get_settings

    return get_settings()


@contextmanager
def open_database() -> Iterator[tuple[RegistryService, Engine]]:
    """Settings from the environment, the migrated database, the registry and its engine
    (disposed afterwards)."""
    with collector_paused():  # imports and set-up; the command runs with it again
        from aiweb.db.revisions import is_current
        from aiweb.registry.factory import build_registry
        from aiweb.rollout.guard import guard_registry

        settings = load_settings()
        note_database(settings)
        registry, engine = build_registry(settings)
        guard_registry(registry)  # no deletion of what a running rollout serves
        from aiweb.assistant.guard import in_use

        registry.guard_deletions(in_use)  # nor of a model an assistant answers with
        try:
            if not is_current(engine):  # Alembic (slow to import) only when there is work
                from aiweb.db.migrate import upgrade

                upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
    try:
        yield registry, engine
    finally:
        engine.dispose()


#: The former name of :func:`open_database`, used by the command modules.
_open_database = open_database


@contextmanager
def open_registry() -> Iterator[RegistryService]:
    """Settings from the environment, a migrated database, and the registry service."""
    with open_database() as (registry, _engine):
        yield registry


@contextmanager
def open_keys() -> Iterator[KeyService]:
    """The API key service on the migrated database (audit log included)."""
    from aiweb.db.session import make_session_factory
    from aiweb.security.keys import KeyService

    with open_database() as (registry, engine):
        yield KeyService(make_session_factory(engine), registry.audit)


@contextmanager
def open_users() -> Iterator[UserService]:
    """The dashboard user service on the migrated database (audit log included)."""
    from aiweb.dashboard.users import UserService
    from aiweb.db.session import make_session_factory

    with open_database() as (registry, engine):
        assert registry.audit is not None
        yield UserService(make_session_factory(engine), registry.audit)
