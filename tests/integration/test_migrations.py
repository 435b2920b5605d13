"""The packaged Alembic migrations build exactly the ORM schema, on every database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, insert, inspect, text

# the task tables join Base.metadata when their orm modules are imported (aiweb.tasks does)
import aiweb.recommendations.orm
import aiweb.search.orm
from aiweb import tasks
from aiweb.db import migrate, orm
from aiweb.db.base import Base
from aiweb.db.migrate import compare, current_revision, head_revision, upgrade
from aiweb.db.session import make_engine
from aiweb.search.store import is_derived_table

TABLES = {"registered_models", "model_versions", "model_aliases", "alias_events", "predictions"}


def test_upgrade_on_empty_database_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        diff = compare(engine, tasks.metadata(), tasks.is_derived_table)
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
        diff = compare(engine, tasks.metadata(), tasks.is_derived_table)
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


def test_the_metadata_holds_the_task_tables_once_imported() -> None:
    assert {"rec_items", "rec_interactions", "search_collections", "search_documents"} <= set(
        Base.metadata.tables
    )
    assert aiweb.recommendations.orm.SqlItem.metadata is Base.metadata
    assert aiweb.search.orm.SqlDocument.metadata is Base.metadata


def test_compare_sees_missing_task_tables_and_skips_derived_ones(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE rec_interactions"))
            conn.execute(text("CREATE TABLE search_kw_999 (id INTEGER PRIMARY KEY)"))
        assert is_derived_table("search_kw_999")
        diff = compare(engine, Base.metadata, is_derived_table)
        assert [(d[0], d[1].name) for d in diff if d[0] == "add_table"] == [
            ("add_table", "rec_interactions")
        ]
        assert not any(d[0] == "remove_table" for d in diff)
        unfiltered = compare(engine, Base.metadata)
        assert ("remove_table", "search_kw_999") in [
            (d[0], d[1].name) for d in unfiltered if d[0] == "remove_table"
        ]
    finally:
        engine.dispose()


def test_revision_autogenerates_from_the_given_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a copy of the packaged migrations, so the new file never lands in the source tree
    migrations = tmp_path / "migrations"
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(migrate.MIGRATIONS_DIR, migrations, ignore=skip)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations)
    # the given tables, not Base.metadata: all of them but rec_items
    wanted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        if table.name != "rec_items":
            table.to_metadata(wanted)
    engine = make_engine(f"sqlite:///{tmp_path / 'rev.db'}")
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE rec_interactions"))
            conn.execute(text("CREATE TABLE search_kw_999 (id INTEGER PRIMARY KEY)"))
        path = migrate.revision(engine, "interactions back", wanted, is_derived_table)
        assert path.parent == migrations / "versions"
        source = path.read_text()
        assert "interactions back" in source
        assert "op.create_table('rec_interactions'" in source
        assert "op.drop_table('rec_items')" in source
        assert "search_kw_999" not in source
    finally:
        engine.dispose()


def test_the_db_layer_imports_no_task() -> None:
    code = (
        "import sys, aiweb.db.orm, aiweb.db.migrate, aiweb.db.session\n"
        "tasks = {'classification', 'recommendations', 'search', 'embeddings'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in [['aiweb', t] for t in tasks]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_db_revision_writes_nothing_while_the_migrations_match_every_task_table() -> None:
    from typer.testing import CliRunner

    from aiweb.cli import app

    result = CliRunner().invoke(app, ["db", "revision", "no change"])
    assert result.exit_code == 0, result.output
    assert "nothing to write" in result.output
