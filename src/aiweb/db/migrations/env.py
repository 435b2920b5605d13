"""Alembic environment: runs against the connection (or URL) given by aiweb.db.migrate.

Autogenerate compares the database with ``config.attributes["target_metadata"]`` and
filters with ``config.attributes["include_name"]`` / ``["include_object"]`` when the
caller passes them (:func:`aiweb.db.migrate.revision` does, with every installed task's
tables and its derived-table rule); otherwise with the core tables and no filter. This
module imports no task: only the caller knows which are installed.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from aiweb.db import orm  # noqa: F401  (registers the core tables)
from aiweb.db.base import Base
from aiweb.db.session import make_engine

config = context.config
target_metadata = config.attributes.get("target_metadata", Base.metadata)
#: the comparison filters passed by the caller (only those it passed)
filters: dict[str, Any] = {
    key: config.attributes[key]
    for key in ("include_name", "include_object")
    if config.attributes.get(key) is not None
}


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            **filters,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=True,
            **filters,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover - we never generate SQL scripts offline
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
