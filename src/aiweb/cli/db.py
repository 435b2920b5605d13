"""``aiweb db upgrade``."""

from __future__ import annotations

import typer

from aiweb.cli._common import err, friendly_errors

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
@friendly_errors
def upgrade_cmd() -> None:
    """Migrate the database (AIWEB_DATABASE_URL, default SQLite in AIWEB_HOME) to the newest
    schema."""
    from aiweb.config import get_settings
    from aiweb.db.migrate import current_revision, upgrade
    from aiweb.db.session import make_engine

    settings = get_settings()
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        err.print(f"database {url} is up to date (revision {after})")
    else:
        err.print(f"database {url} migrated from {before or 'empty'} to {after}")
