"""Declarative base with a constraint naming convention (stable Alembic diffs), and the
column types and helpers every table module shares.

Every table, the core ones (:mod:`aiweb.db.orm`) and each task's own (in the task
package's ``orm`` module), lives on :attr:`Base.metadata`: a task's tables join it when
the task's ``orm`` module is imported. This module imports no other aiweb module, so
a task's tables never need the core tables' module.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: ``BIGINT`` auto-increment key; SQLite makes only ``INTEGER PRIMARY KEY`` an
#: auto-incrementing rowid, so there it is an ``INTEGER``.
BIGINT_PK: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Base class of every ``Sql*`` table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always reads back timezone-aware UTC.

    SQLite keeps no offset, so its values come back naive; every value aiweb writes is
    UTC (:func:`utcnow`), so a naive value read back is UTC too.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
