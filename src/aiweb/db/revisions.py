"""Whether a database is at the newest migration, without importing Alembic.

Importing Alembic (and through it Mako and its autogenerate machinery) costs more than
everything else a short command such as ``aiweb models list`` does. A database that is
already current needs none of it: :func:`is_current` reads the revision the database
records (Alembic's ``alembic_version`` table) and compares it with the newest revision
shipped in ``migrations/versions`` (:func:`head_revision`, read from the scripts' text).
Only when they differ does the caller run :func:`aiweb.db.migrate.upgrade`.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

VERSIONS_DIR = Path(__file__).with_name("migrations") / "versions"

_REVISION = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_DOWN_REVISION = re.compile(
    r"""^down_revision(?:\s*:[^=]+)?\s*=\s*(?:None|["']([^"']+)["'])""", re.MULTILINE
)


def head_revision(versions_dir: Path = VERSIONS_DIR) -> str | None:
    """The newest revision of the migration scripts in ``versions_dir``.

    Returns:
        The one revision no script revises; ``None`` when that is not a single one
        (several heads, a script that merges, or one this reader does not understand):
        then only Alembic can tell.
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in versions_dir.glob("*.py"):
        source = script.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        down = _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            revised.add(down.group(1))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def current_revisions(engine: Engine) -> list[str]:
    """The revisions the database behind ``engine`` records (empty when it was never
    migrated or cannot be read)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return [str(row) for row in rows]
    except SQLAlchemyError:
        return []


def is_current(engine: Engine) -> bool:
    """Whether the database behind ``engine`` is at the newest shipped revision (no
    migration to run). ``False`` when unsure: the caller then runs the migrations, which
    do nothing on a current schema."""
    head = head_revision()
    return head is not None and current_revisions(engine) == [head]
