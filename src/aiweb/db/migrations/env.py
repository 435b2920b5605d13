"""Alembic environment: runs against the connection (or URL) given by aiweb.db.migrate."""

from __future__ import annotations

from alembic import context

from aiweb.db import orm  # noqa: F401  (registers the tables)
from aiweb.db.base import Base
from aiweb.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the per-collection search tables (keyword, pgvector; derived data created
    with each collection, not in the ORM) out of autogenerate's comparison."""
    from aiweb.search.store import is_derived_table

    return not (type_ == "table" and name is not None and is_derived_table(name))


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            include_name=include_name,
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
            include_name=include_name,
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
