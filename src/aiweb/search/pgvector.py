"""The production vector index: pgvector's HNSW inside PostgreSQL.

Each collection gets a table ``search_vec_<collection id>`` (``key`` = document key,
``embedding vector(dim)``) with an HNSW index on ``vector_cosine_ops`` (pgvector's
implementation of Malkov & Yashunin's HNSW). Rows are written in the same transaction as
the documents, so every server process sees the same index with no syncing.

A search without a filter walks the HNSW index (``hnsw.ef_search`` from the settings).
pgvector applies a ``WHERE`` clause after its HNSW scan (up to version 0.7; 0.8 added
iterative scans), which can return fewer than ``k`` rows, so a filtered search is an
exact scan over the documents the filter admits (the index scan is switched off for that
query): a pre-filter, at the cost of a sequential scan.

Needs the ``vector`` extension (``CREATE EXTENSION vector``; see :func:`available`).
"""

from __future__ import annotations

import functools
import typing

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Table,
    TableClause,
    any_,
    bindparam,
    cast,
    column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import UserDefinedType

from aiweb.search.filters import Filter
from aiweb.search.index import Keys, Scores, Vectors
from aiweb.search.orm import SqlDocument

_DOCS = typing.cast(Table, SqlDocument.__table__)


class _Vector(UserDefinedType[str]):
    """pgvector's ``vector`` type, for casting a bound text literal."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "vector"


def table_name(collection_id: int) -> str:
    """The pgvector table of a collection."""
    return f"search_vec_{int(collection_id)}"


def available(engine: Engine) -> bool:
    """Whether ``engine`` is PostgreSQL with the ``vector`` extension installed or
    installable (this creates it when it is only available)."""
    if engine.dialect.name != "postgresql":
        return False
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first():
                return True
            if not conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            ).first():
                return False
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        return True
    except Exception:  # no privilege to create it, or a race with another process
        with engine.connect() as conn:
            return bool(
                conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
            )


def literal(vector: Vectors) -> str:
    """pgvector's text form of a float32 vector: ``[0.1,0.2,…]``."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, np.float32)) + "]"


def create(conn: Connection, collection_id: int, dim: int, *, m: int, ef_construction: int) -> None:
    """Create the collection's vector table and its HNSW index (caller's transaction),
    and the ``vector`` extension if the database lacks it."""
    name = table_name(collection_id)
    conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    conn.execute(
        text(
            f"CREATE TABLE {name} (key BIGINT PRIMARY KEY REFERENCES search_documents(id) "
            f"ON DELETE CASCADE, embedding vector({int(dim)}) NOT NULL)"
        )
    )
    conn.execute(
        text(
            f"CREATE INDEX {name}_hnsw ON {name} USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
        )
    )


def drop(conn: Connection, collection_id: int) -> None:
    """Drop the collection's vector table, if it exists."""
    conn.execute(text(f"DROP TABLE IF EXISTS {table_name(collection_id)}"))


def write(conn: Connection, collection_id: int, keys: Keys, vectors: Vectors) -> None:
    """Insert or replace ``keys`` (int64, (n,)) with ``vectors`` (float32, (n, dim))."""
    if len(keys) == 0:
        return
    conn.execute(
        text(
            f"INSERT INTO {table_name(collection_id)} (key, embedding) "  # noqa: S608 (table names come from integer ids)
            "VALUES (:k, CAST(:v AS vector)) "
            "ON CONFLICT (key) DO UPDATE SET embedding = EXCLUDED.embedding"
        ),
        [{"k": int(k), "v": literal(v)} for k, v in zip(keys, vectors, strict=True)],
    )


def remove(conn: Connection, collection_id: int, keys: Keys) -> None:
    """Delete ``keys`` (absent keys are ignored)."""
    if len(keys) == 0:
        return
    conn.execute(
        text(f"DELETE FROM {table_name(collection_id)} WHERE key = :k"),  # noqa: S608 (table names come from integer ids)
        [{"k": int(k)} for k in keys],
    )


def search(
    conn: Connection,
    collection_id: int,
    query: Vectors,
    k: int,
    *,
    ef_search: int,
    where: Filter | None = None,
    allowed: Keys | None = None,
) -> tuple[Keys, Scores]:
    """The ``k`` nearest keys by cosine similarity (``1 - (embedding <=> query)``).

    Runs in the caller's transaction (``SET LOCAL`` lasts until it ends).

    Args:
        query: float32, shape (dim,), L2-normalised.
        ef_search: HNSW candidate list size (``hnsw.ef_search``).
        where: a metadata filter (exact scan over the documents it admits).
        allowed: only these keys (exact scan), for callers holding a key list.
    """
    exact = where is not None or allowed is not None
    if exact:
        conn.execute(text("SET LOCAL enable_indexscan = off"))
    else:
        conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), int(k))}"))
    vec = _vector_table(collection_id)
    distance = vec.c.embedding.op("<=>", return_type=Float())(
        cast(bindparam("q", literal(query)), _Vector())
    )
    stmt = select(vec.c.key, (1.0 - distance).label("score"))
    if where is not None:
        stmt = stmt.join(_DOCS, _DOCS.c.id == vec.c.key).where(
            where.clause(_DOCS.c.metadata, "postgresql")
        )
    if allowed is not None:
        wanted = bindparam("allowed", [int(x) for x in allowed], type_=ARRAY(BigInteger()))
        stmt = stmt.where(vec.c.key == any_(wanted))
    stmt = stmt.order_by(distance, vec.c.key).limit(int(k))
    rows = conn.execute(stmt).all()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    scores = np.fromiter((r[1] for r in rows), dtype=np.float32, count=len(rows))
    return keys, scores


@functools.lru_cache(maxsize=1024)
def _vector_table(collection_id: int) -> TableClause:
    """The collection's vector table as a SQL expression, built once: its table and
    column objects reference each other, so one per search left reference cycles for the
    garbage collector (see :func:`aiweb.search.keyword._statement`)."""
    return table(table_name(collection_id), column("key"), column("embedding"))


class PgVectorIndex:
    """:class:`~aiweb.search.index.VectorIndex` over a collection's pgvector table, each
    call in its own transaction (the store writes documents and vectors together in one;
    this class serves searches and the backend contract tests).

    Args:
        engine: PostgreSQL with the ``vector`` extension.
        collection_id: the collection whose table this is.
        dim: vector dimension.
        ef_search: HNSW search candidate list size.
    """

    kind = "pgvector"

    def __init__(self, engine: Engine, collection_id: int, dim: int, *, ef_search: int) -> None:
        self.engine = engine
        self.collection_id = collection_id
        self.dim = dim
        self.ef_search = ef_search

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT count(*) FROM {table_name(self.collection_id)}")  # noqa: S608 (table names come from integer ids)
                ).scalar_one()
            )

    def add(self, keys: Keys, vectors: Vectors) -> None:
        with self.engine.begin() as conn:
            write(conn, self.collection_id, keys, vectors)

    def remove(self, keys: Keys) -> None:
        with self.engine.begin() as conn:
            remove(conn, self.collection_id, keys)

    def search(
        self, query: Vectors, k: int, allowed: Keys | None = None, where: Filter | None = None
    ) -> tuple[Keys, Scores]:
        with self.engine.begin() as conn:
            return search(
                conn,
                self.collection_id,
                query,
                k,
                ef_search=self.ef_search,
                where=where,
                allowed=allowed,
            )
