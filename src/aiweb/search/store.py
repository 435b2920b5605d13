"""Storage of search collections and documents (SQLite or PostgreSQL).

Writes commit before they return, so a 2xx answer means the data is durable. Every write
to a collection's documents runs in one transaction that bumps the collection's
``revision`` first (taking the row's lock on PostgreSQL, the database lock on SQLite),
stamps the written rows with it (``seq``), and updates the collection's keyword table and,
for a pgvector collection, its vector table. In-process indexes catch up with
:meth:`SearchStore.changes`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from aiweb.db.orm import utcnow
from aiweb.errors import CollectionNotFound, ConflictError, DocumentNotFound
from aiweb.search import keyword, pgvector
from aiweb.search.entities import (
    Changes,
    Collection,
    Document,
    StoredDocument,
)
from aiweb.search.filters import Filter
from aiweb.search.index import Keys, Scores, Vectors
from aiweb.search.orm import SqlCollection, SqlDocument

#: rows per INSERT statement (SQLite allows 32,766 bound variables)
CHUNK_ROWS = 500
#: rows per fetch while reading a collection's vectors
READ_CHUNK_ROWS = 5000
_DERIVED_PREFIXES = ("search_fts_", "search_kw_", "search_vec_")
_DOCS = cast(Table, SqlDocument.__table__)
_COLS = cast(Table, SqlCollection.__table__)

_BY_NAME = select(_COLS).where(_COLS.c.name == bindparam("name"))
#: by primary key only: with ``collection_id = ?`` in the WHERE clause SQLite's planner
#: walks the collection's index instead, reading every document of the collection
_FETCH = select(
    _DOCS.c.id,
    _DOCS.c.doc_id,
    _DOCS.c.text,
    _DOCS.c.metadata,
    _DOCS.c.collection_id,
    _DOCS.c.deleted,
).where(_DOCS.c.id.in_(bindparam("keys", expanding=True)))


def is_derived_table(name: str) -> bool:
    """Whether ``name`` is a per-collection keyword or vector table (derived from
    ``search_documents``, created and dropped with its collection, not in the ORM
    metadata; FTS5 also creates ``<table>_data``, ``_idx``, ``_content``, ``_docsize``
    and ``_config`` shadow tables)."""
    return name.startswith(_DERIVED_PREFIXES)


def to_bytes(vector: npt.NDArray[np.float32]) -> bytes:
    """float32 little-endian bytes of a vector (how ``search_documents.vector`` stores it)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def _collection(row: Any, documents: int | None = None) -> Collection:
    fields = row.metadata_fields
    return Collection(
        id=row.id,
        uid=row.uid,
        name=row.name,
        embedding_model=row.embedding_model,
        embedding_version=row.embedding_version,
        dim=row.dim,
        metadata_fields=tuple(fields) if fields is not None else None,
        vector_index=row.vector_index,
        revision=int(row.revision),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        documents=documents,
        answer_threshold=row.answer_threshold,
        calibration=row.calibration,
    )


class SearchStore:
    """Collections and documents on a database.

    Args:
        engine: a migrated database (revision 0007 or later).
        pgvector_m, pgvector_ef_construction: HNSW build parameters of pgvector tables.
    """

    def __init__(
        self, engine: Engine, *, pgvector_m: int = 16, pgvector_ef_construction: int = 64
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.pgvector_m = pgvector_m
        self.pgvector_ef_construction = pgvector_ef_construction

    # ------------------------------------------------------------------ collections

    def create_collection(
        self,
        name: str,
        *,
        embedding_model: str,
        embedding_version: int,
        dim: int,
        metadata_fields: Sequence[str] | None,
        vector_index: str,
        actor: str,
    ) -> Collection:
        """Create a collection with its keyword (and pgvector) table.

        Raises:
            ConflictError: a collection of that name exists.
        """
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                cid = conn.execute(
                    _COLS.insert()
                    .values(
                        uid=uuid.uuid4().hex,
                        name=name,
                        embedding_model=embedding_model,
                        embedding_version=embedding_version,
                        dim=dim,
                        metadata_fields=list(metadata_fields)
                        if metadata_fields is not None
                        else None,
                        vector_index=vector_index,
                        revision=0,
                        created_by=actor,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(_COLS.c.id)
                ).scalar_one()
                keyword.create(conn, cid)
                if vector_index == "pgvector":
                    pgvector.create(
                        conn,
                        cid,
                        dim,
                        m=self.pgvector_m,
                        ef_construction=self.pgvector_ef_construction,
                    )
        except IntegrityError:
            raise ConflictError(f"collection {name!r} exists already") from None
        return self.get_collection(name)

    def update_collection(
        self,
        collection: Collection,
        *,
        metadata_fields: Sequence[str] | None,
        embedding: tuple[str, int, int] | None = None,
    ) -> Collection:
        """Change a collection's filterable fields, and (when it has no documents) its
        embedding model ``(name, version, dim)``.

        Raises:
            CollectionNotFound: it was deleted meanwhile.
            ConflictError: a new embedding model for a collection that has documents.
        """
        values: dict[str, Any] = {
            "metadata_fields": list(metadata_fields) if metadata_fields is not None else None,
            "updated_at": utcnow(),
        }
        with self.engine.begin() as conn:
            if embedding is not None:
                if self._count(conn, collection.id):
                    raise ConflictError(
                        f"collection {collection.name!r} has documents embedded with "
                        f"{collection.embedding_ref}; delete the collection to change its "
                        "embedding model"
                    )
                name, version, dim = embedding
                # another model's similarities: the calibration no longer holds
                values.update(
                    embedding_model=name,
                    embedding_version=version,
                    dim=dim,
                    answer_threshold=None,
                    calibration=None,
                )
                if collection.vector_index == "pgvector" and dim != collection.dim:
                    pgvector.drop(conn, collection.id)
                    pgvector.create(
                        conn,
                        collection.id,
                        dim,
                        m=self.pgvector_m,
                        ef_construction=self.pgvector_ef_construction,
                    )
            done = conn.execute(
                update(_COLS)
                .where(_COLS.c.id == collection.id, _COLS.c.uid == collection.uid)
                .values(**values)
            )
            if done.rowcount == 0:
                raise CollectionNotFound(f"no collection {collection.name!r}")
        return self.get_collection(collection.name)

    def set_calibration(
        self, collection: Collection, threshold: float, calibration: dict[str, Any]
    ) -> Collection:
        """Store a collection's answer threshold and how it was calibrated.

        Raises:
            CollectionNotFound: it was deleted (or recreated) meanwhile.
        """
        with self.engine.begin() as conn:
            done = conn.execute(
                update(_COLS)
                .where(_COLS.c.id == collection.id, _COLS.c.uid == collection.uid)
                .values(answer_threshold=threshold, calibration=calibration)
            )
            if done.rowcount == 0:
                raise CollectionNotFound(f"no collection {collection.name!r}")
        return self.get_collection(collection.name, count=True)

    def get_collection(self, name: str, *, count: bool = False) -> Collection:
        """One collection (with its live document count when ``count``).

        Raises:
            CollectionNotFound: no such collection.
        """
        with self.engine.connect() as conn:
            row = conn.execute(_BY_NAME, {"name": name}).first()
            if row is None:
                raise CollectionNotFound(
                    f"no collection {name!r}: create it with PUT /v1/collections/{name}"
                )
            return _collection(row, self._count(conn, row.id) if count else None)

    def list_collections(self) -> list[Collection]:
        """Every collection with its live document count, by name."""
        with self.engine.connect() as conn:
            counts: dict[int, int] = dict(
                conn.execute(
                    select(_DOCS.c.collection_id, func.count())
                    .where(_DOCS.c.deleted.is_(False))
                    .group_by(_DOCS.c.collection_id)
                ).all()
            )
            rows = conn.execute(select(_COLS).order_by(_COLS.c.name)).all()
        return [_collection(r, int(counts.get(r.id, 0))) for r in rows]

    def revisions(self) -> dict[int, tuple[str, int]]:
        """``{collection id: (uid, revision)}`` of every collection (one query)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_COLS.c.id, _COLS.c.uid, _COLS.c.revision)).all()
        return {r.id: (r.uid, int(r.revision)) for r in rows}

    def delete_collection(self, collection: Collection) -> None:
        """Delete a collection, its documents and its index tables.

        Raises:
            CollectionNotFound: it does not exist (any more).
        """
        with self.engine.begin() as conn:
            keyword.drop(conn, collection.id)
            pgvector.drop(conn, collection.id)
            conn.execute(_DOCS.delete().where(_DOCS.c.collection_id == collection.id))
            done = conn.execute(
                _COLS.delete().where(_COLS.c.id == collection.id, _COLS.c.uid == collection.uid)
            )
            if done.rowcount == 0:
                raise CollectionNotFound(f"no collection {collection.name!r}")

    @staticmethod
    def _count(conn: Connection, collection_id: int) -> int:
        return int(
            conn.execute(
                select(func.count())
                .select_from(_DOCS)
                .where(_DOCS.c.collection_id == collection_id, _DOCS.c.deleted.is_(False))
            ).scalar_one()
        )

    def _bump(self, conn: Connection, collection: Collection) -> int:
        """Take the collection's write lock and its next revision.

        Raises:
            CollectionNotFound: it was deleted (or deleted and created again).
        """
        revision = conn.execute(
            update(_COLS)
            .where(_COLS.c.id == collection.id, _COLS.c.uid == collection.uid)
            .values(revision=_COLS.c.revision + 1, updated_at=utcnow())
            .returning(_COLS.c.revision)
        ).scalar_one_or_none()
        if revision is None:
            raise CollectionNotFound(f"no collection {collection.name!r}")
        return int(revision)

    # ------------------------------------------------------------------ documents

    def upsert_documents(
        self,
        collection: Collection,
        documents: Sequence[Document],
        vectors: Vectors,
        truncated: Sequence[bool],
    ) -> int:
        """Insert or replace ``documents`` (by id; a later duplicate in the list wins)
        with their ``vectors`` (float32, (n, dim), L2-normalised), in one transaction.

        Returns:
            The collection revision written.

        Raises:
            CollectionNotFound: the collection was deleted meanwhile.
        """
        latest = {d.id: i for i, d in enumerate(documents)}
        order = sorted(latest.values())
        now = utcnow()
        with self.engine.begin() as conn:
            revision = self._bump(conn, collection)
            for lo in range(0, len(order), CHUNK_ROWS):
                picked = order[lo : lo + CHUNK_ROWS]
                rows = [
                    {
                        "collection_id": collection.id,
                        "doc_id": documents[i].id,
                        "text": documents[i].text,
                        "metadata": documents[i].metadata,
                        "vector": to_bytes(vectors[i]),
                        "truncated": bool(truncated[i]),
                        "deleted": False,
                        "seq": revision,
                        "updated_at": now,
                    }
                    for i in picked
                ]
                insert = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(
                    _DOCS
                )
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=["collection_id", "doc_id"],
                        set_={
                            c: getattr(insert.excluded, c)
                            for c in (
                                "text",
                                "metadata",
                                "vector",
                                "truncated",
                                "deleted",
                                "seq",
                                "updated_at",
                            )
                        },
                    ),
                    rows,
                )
                ids = [documents[i].id for i in picked]
                key_of = dict(
                    conn.execute(
                        select(_DOCS.c.doc_id, _DOCS.c.id).where(
                            _DOCS.c.collection_id == collection.id, _DOCS.c.doc_id.in_(ids)
                        )
                    ).all()
                )
                keys = [int(key_of[d]) for d in ids]
                keyword.write(conn, collection.id, keys, [documents[i].text for i in picked])
                if collection.vector_index == "pgvector":
                    pgvector.write(conn, collection.id, np.asarray(keys, np.int64), vectors[picked])
        return revision

    def delete_document(self, collection: Collection, doc_id: str) -> int:
        """Delete one document (a tombstone is kept for other processes' indexes).

        Returns:
            The collection revision written.

        Raises:
            DocumentNotFound: no such live document.
            CollectionNotFound: the collection was deleted meanwhile.
        """
        with self.engine.begin() as conn:
            revision = self._bump(conn, collection)
            key = conn.execute(
                update(_DOCS)
                .where(
                    _DOCS.c.collection_id == collection.id,
                    _DOCS.c.doc_id == doc_id,
                    _DOCS.c.deleted.is_(False),
                )
                .values(
                    deleted=True,
                    text="",
                    metadata={},
                    vector=None,
                    truncated=False,
                    seq=revision,
                    updated_at=utcnow(),
                )
                .returning(_DOCS.c.id)
            ).scalar_one_or_none()
            if key is None:  # raising rolls the revision bump back
                raise DocumentNotFound(f"no document {doc_id!r} in collection {collection.name!r}")
            keyword.remove(conn, collection.id, [int(key)])
            if collection.vector_index == "pgvector":
                pgvector.remove(conn, collection.id, np.asarray([key], np.int64))
        return revision

    def get_document(self, collection: Collection, doc_id: str) -> StoredDocument:
        """One live document.

        Raises:
            DocumentNotFound: no such live document.
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_DOCS).where(
                    _DOCS.c.collection_id == collection.id,
                    _DOCS.c.doc_id == doc_id,
                    _DOCS.c.deleted.is_(False),
                )
            ).first()
        if row is None:
            raise DocumentNotFound(f"no document {doc_id!r} in collection {collection.name!r}")
        return StoredDocument(
            id=row.doc_id,
            text=row.text,
            metadata=row.metadata,
            truncated=row.truncated,
            updated_at=row.updated_at,
        )

    def fetch(
        self, collection: Collection, keys: Sequence[int]
    ) -> dict[int, tuple[str, str, dict[str, Any]]]:
        """``{key: (doc_id, text, metadata)}`` of those ``keys`` that are live documents of
        the collection."""
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(_FETCH, {"keys": [int(k) for k in keys]}).all()
        return {int(r[0]): (r[1], r[2], r[3]) for r in rows if r[4] == collection.id and not r[5]}

    # ------------------------------------------------------------------ index feeds

    def changes(self, collection: Collection, since: int, *, deleted: bool = True) -> Changes:
        """The documents written after revision ``since``, up to the current revision.

        Args:
            since: the revision an index is at (0: everything).
            deleted: include tombstones (a fresh index with no ANN file needs none).

        Raises:
            CollectionNotFound: the collection was deleted (or recreated).
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_COLS.c.revision).where(
                    _COLS.c.id == collection.id, _COLS.c.uid == collection.uid
                )
            ).first()
            if row is None:
                raise CollectionNotFound(f"no collection {collection.name!r}")
            revision = int(row[0])  # read first: every row with seq <= revision is committed
            stmt = (
                select(_DOCS.c.id, _DOCS.c.seq, _DOCS.c.deleted, _DOCS.c.vector)
                .where(
                    _DOCS.c.collection_id == collection.id,
                    _DOCS.c.seq > since,
                    _DOCS.c.seq <= revision,
                )
                .order_by(_DOCS.c.seq, _DOCS.c.id)
            )
            if not deleted:
                stmt = stmt.where(_DOCS.c.deleted.is_(False))
            keys: list[int] = []
            seqs: list[int] = []
            dead: list[bool] = []
            blobs: list[bytes] = []
            for chunk in _partitions(conn.execution_options(yield_per=READ_CHUNK_ROWS), stmt):
                for key, seq, is_deleted, blob in chunk:
                    keys.append(key)
                    seqs.append(seq)
                    dead.append(bool(is_deleted))
                    if not is_deleted:
                        blobs.append(blob)
        vectors = (
            np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(len(blobs), -1)
            if blobs
            else np.zeros((0, collection.dim), dtype=np.float32)
        )
        return Changes(
            revision=revision,
            keys=np.asarray(keys, dtype=np.int64),
            seqs=np.asarray(seqs, dtype=np.int64),
            deleted=np.asarray(dead, dtype=bool),
            vectors=vectors,
        )

    def filter_keys(self, collection: Collection, where: Filter) -> Keys:
        """Keys of the live documents ``where`` admits (int64, sorted)."""
        with self.engine.connect() as conn:
            keys = (
                conn.execute(
                    select(_DOCS.c.id)
                    .where(
                        _DOCS.c.collection_id == collection.id,
                        _DOCS.c.deleted.is_(False),
                        where.clause(_DOCS.c.metadata, self.dialect),
                    )
                    .order_by(_DOCS.c.id)
                )
                .scalars()
                .all()
            )
        return np.asarray(keys, dtype=np.int64)

    def keyword_search(
        self, collection: Collection, query: str, k: int, where: Filter | None
    ) -> tuple[Keys, Scores]:
        """See :func:`aiweb.search.keyword.search`."""
        with self.engine.connect() as conn:
            return keyword.search(conn, collection.id, query, k, where)

    def pgvector_search(
        self, collection: Collection, query: Vectors, k: int, where: Filter | None, ef_search: int
    ) -> tuple[Keys, Scores]:
        """See :func:`aiweb.search.pgvector.search`."""
        with self.engine.begin() as conn:
            return pgvector.search(conn, collection.id, query, k, ef_search=ef_search, where=where)


def _partitions(conn: Connection, stmt: Any) -> Iterator[Sequence[Any]]:
    result = conn.execute(stmt)
    yield from result.partitions()
