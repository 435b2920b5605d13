"""Database layer: SQLAlchemy 2.0 tables (``orm``), engines and sessions (``session``),
and Alembic migrations shipped inside the package (``migrate``; ``revisions`` tells
whether a database is current without importing Alembic)."""

__all__ = [
    "base",
    "migrate",
    "migrations",
    "orm",
    "revisions",
    "session",
]
