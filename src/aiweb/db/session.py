"""Engines and sessions for SQLite (embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:  # the callers have built the settings
    from aiweb.config import DatabaseSettings, Settings

#: One writer lock per SQLite engine: :func:`transaction` takes it, so this process's
#: threads queue for SQLite's single write lock instead of polling for it (SQLite's busy
#: handler sleeps up to 100 ms between tries, which made a few writers wait a second
#: while others went; measured in docs/benchmarks.md).
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
#: How long a transaction waits for this process's writer lock before it goes on without
#: it (SQLite's own busy timeout then applies, as without the lock): never a deadlock.
WRITER_WAIT_S = 30.0


def make_engine(url: str, *, pool: DatabaseSettings | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url``.

    SQLite gets WAL journaling, a busy timeout and enforced foreign keys, and its
    directory is created; ``postgresql://`` URLs are routed to psycopg 3.

    Args:
        url: SQLAlchemy database URL.
        pool: the connection pool's size, overflow and wait (``AIWEB_DATABASE__*``),
            applied to PostgreSQL; SQLite keeps SQLAlchemy's own pool for it (these do not
            apply). ``None``: SQLAlchemy's defaults (5, 10, 30 s).
        **kwargs: passed to :func:`sqlalchemy.create_engine` (they win over ``pool``).

    Returns:
        The engine (connections are opened lazily).
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(parsed, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        _SQLITE_WRITERS[engine] = threading.RLock()
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if pool is not None:
        kwargs.setdefault("pool_size", pool.pool_size)
        kwargs.setdefault("max_overflow", pool.max_overflow)
        kwargs.setdefault("pool_timeout", pool.pool_timeout_s)
    return create_engine(parsed, **kwargs)


def engine_for(settings: Settings, **kwargs: Any) -> Engine:
    """The engine of ``settings``: its database URL with its pool settings
    (``settings.database``); see :func:`make_engine`."""
    return make_engine(settings.resolved_database_url, pool=settings.database, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Open a session, commit on success, roll back on error, always close.

    On SQLite the transaction first takes its engine's writer lock (re-entrant; see
    :data:`_SQLITE_WRITERS`), at most :data:`WRITER_WAIT_S` seconds.
    """
    bind = factory.kw.get("bind")
    lock = _SQLITE_WRITERS.get(bind) if isinstance(bind, Engine) else None
    held = lock is not None and lock.acquire(timeout=WRITER_WAIT_S)
    try:
        with factory() as session, session.begin():
            yield session
    finally:
        if held and lock is not None:
            lock.release()
