"""Database layer: SQLAlchemy 2.0 tables (``orm``), engines and sessions (``session``),
and Alembic migrations shipped inside the package (``migrate``)."""

__all__ = [
    "base",
    "migrate",
    "migrations",
    "orm",
    "session",
]
