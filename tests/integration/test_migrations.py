"""The packaged Alembic migrations build exactly the ORM schema, on every database."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, text

from aiweb.db import orm
from aiweb.db.base import Base
from aiweb.db.migrate import current_revision, head_revision, upgrade
from aiweb.db.session import make_engine

TABLES = {"registered_models", "model_versions", "model_aliases", "alias_events", "predictions"}


def test_upgrade_on_empty_database_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        head = head_revision(engine)
        assert head is not None
        assert current_revision(engine) == head
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(
                insert(orm.SqlRegisteredModel).values(
                    name="m", task="t", description="", created_at=now, updated_at=now
                )
            )
        upgrade(engine)
        assert current_revision(engine) == head
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM registered_models")).scalars().all() == ["m"]
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_upgrade_accepts_url_with_percent_sign() -> None:
    base = os.environ.get("AIWEB_TEST_DATABASE_URL")
    if not base:
        pytest.skip("AIWEB_TEST_DATABASE_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # the very URL form tests/conftest.py's ``database_url`` fixture yields
    sep = "&" if "?" in base else "?"
    engine = make_engine(f"{base}{sep}options=-csearch_path%3D{schema}")
    try:
        upgrade(engine)
        assert current_revision(engine) == head_revision(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
