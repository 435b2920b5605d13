"""Work-around for a bug in ``aiweb.db.migrate.alembic_config`` (see the report in
tests/integration/test_migrations.py::test_upgrade_accepts_url_with_percent_sign):

the shared ``database_url`` fixture selects the PostgreSQL schema with
``?options=-csearch_path%3D<schema>``; Alembic's ``Config.set_main_option`` treats ``%`` as
ConfigParser interpolation, so ``upgrade()`` raises ``ValueError`` for that URL. Here the
PostgreSQL URL is replaced by one for a throw-away role whose ``search_path`` is that
schema: same fresh, empty schema, no ``%`` in the URL. SQLite URLs pass through.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from aiweb.db.session import make_engine


@pytest.fixture
def database_url(database_url: str) -> Iterator[str]:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        yield database_url
        return
    schema = str(url.query["options"]).split("=", 1)[1]
    admin = make_engine(url.difference_update_query(["options"]))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{schema}" LOGIN'))
        conn.execute(text(f'GRANT ALL ON SCHEMA "{schema}" TO "{schema}"'))
        conn.execute(text(f'ALTER ROLE "{schema}" SET search_path = "{schema}"'))
    try:
        role_url = url.difference_update_query(["options"]).set(username=schema, password=None)
        yield role_url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE usename = :role AND pid <> pg_backend_pid()"
                ),
                {"role": schema},
            )
            conn.execute(text(f'DROP OWNED BY "{schema}" CASCADE'))
            conn.execute(text(f'DROP ROLE "{schema}"'))
        admin.dispose()
