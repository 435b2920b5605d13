"""Tables of search collections and their documents.

They live on the project's declarative base, so Alembic and the migration test see them
once :mod:`aiweb.search.orm` is imported.

Each document row keeps its embedding (``vector``: float32 little-endian bytes), so every
vector index can be rebuilt from the database alone. The per-collection keyword and
pgvector tables (``search_fts_<id>``, ``search_kw_<id>``, ``search_vec_<id>``) are derived
data, created and dropped with their collection by :mod:`aiweb.search.store`; they are not
part of this metadata (see :func:`aiweb.search.store.is_derived_table`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from aiweb.db.base import BIGINT_PK, Base, UTCDateTime, utcnow

#: JSONB on PostgreSQL: metadata filters use its containment operator ``@>``.
_METADATA = JSON().with_variant(JSONB(), "postgresql")


class SqlCollection(Base):
    """A search collection: its embedding model version and its change counter.

    ``revision`` grows by one with every write to the collection's documents (in the
    same transaction, under the row's lock); each document records the revision that
    last wrote it (``seq``), so an in-process index at revision ``r`` catches up by
    reading the documents with ``seq > r``. ``uid`` names the collection's files on disk,
    so a collection deleted and created again never reuses a stale index file.
    """

    __tablename__ = "search_collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    embedding_model: Mapped[str] = mapped_column(String(63), nullable=False)
    embedding_version: Mapped[int] = mapped_column(Integer, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    #: the filterable metadata fields; ``None``: every field
    metadata_fields: Mapped[list[str] | None] = mapped_column(JSON)
    #: ``embedded`` (in-process exact / HNSW index) or ``pgvector``
    vector_index: Mapped[str] = mapped_column(String(16), nullable=False)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    #: the cosine similarity a top hit must reach to answer a question (an assistant's
    #: help collection), from :meth:`aiweb.search.service.SearchService.calibrate`;
    #: ``None``: not calibrated
    answer_threshold: Mapped[float | None] = mapped_column(Float)
    #: how it was calibrated: questions, quantile, revision, similarities
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SqlDocument(Base):
    """One document of a collection, keyed by the application's ``doc_id``.

    ``id`` is the document's key in every index (FTS5 rowid, HNSW key, pgvector key). A
    deleted document stays as a tombstone (``deleted``, text, metadata and vector
    cleared, ``seq`` bumped) so other processes' in-memory indexes see the deletion;
    upserting the id again revives the row under the same key.
    """

    __tablename__ = "search_documents"
    __table_args__ = (
        UniqueConstraint("collection_id", "doc_id", name="uq_search_documents_collection_doc"),
        Index("ix_search_documents_collection_seq", "collection_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("search_collections.id", ondelete="CASCADE"), nullable=False
    )
    doc_id: Mapped[str] = mapped_column(String(255), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    #: ``metadata`` is reserved by SQLAlchemy's declarative classes
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", _METADATA, nullable=False)
    #: float32 little-endian, L2-normalised; ``None`` for a tombstone
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    truncated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
