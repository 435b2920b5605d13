"""Storage-free entities of search: collections, documents, hits, index changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

#: ``vector``: cosine similarity of embeddings; ``keyword``: BM25 (SQLite FTS5) or
#: ``ts_rank_cd`` (PostgreSQL); ``hybrid``: reciprocal rank fusion of the two.
Mode = Literal["vector", "keyword", "hybrid"]
MODES: tuple[Mode, ...] = ("vector", "keyword", "hybrid")
VectorIndexKind = Literal["embedded", "pgvector"]


@dataclass(frozen=True)
class Collection:
    """A search collection.

    Attributes:
        id: database id (names the per-collection index tables).
        uid: 32 hex characters, unique forever (names the index files on disk).
        name: the URL name.
        embedding_model, embedding_version: the registered model version every document
            and every query of the collection is embedded with.
        dim: embedding dimension.
        metadata_fields: the filterable metadata fields, or ``None`` for all.
        vector_index: ``embedded`` (in-process exact/HNSW index, persisted under
            ``AIWEB_HOME``) or ``pgvector``.
        revision: grows by one with every write to the documents.
        documents: live documents, when counted (``None`` otherwise).
        answer_threshold: the cosine similarity a top hit must reach to count as the
            answer to a question, or ``None`` before calibration.
        calibration: how ``answer_threshold`` was calibrated (``questions``,
            ``quantile``, ``revision``, ``similarities``, ``at``), or ``None``.
    """

    id: int
    uid: str
    name: str
    embedding_model: str
    embedding_version: int
    dim: int
    metadata_fields: tuple[str, ...] | None
    vector_index: str
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    documents: int | None = None
    answer_threshold: float | None = None
    calibration: dict[str, Any] | None = None

    @property
    def embedding_ref(self) -> str:
        """``name:version`` of the embedding model version."""
        return f"{self.embedding_model}:{self.embedding_version}"


@dataclass(frozen=True)
class Document:
    """A document as the application sends it: its id, text and metadata (JSON)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredDocument:
    """A document as stored: ``truncated`` when its text had more word pieces than the
    embedding model reads (the vector covers the beginning only; keyword search covers
    all of it)."""

    id: str
    text: str
    metadata: dict[str, Any]
    truncated: bool
    updated_at: datetime


@dataclass(frozen=True)
class Hit:
    """One search result. ``score``: higher is better; its scale depends on the mode.
    ``similarity``: the cosine similarity of the query and the document, when the vector
    ranking saw it (every ``vector`` hit; a ``hybrid`` hit among the vector candidates),
    else ``None``."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    similarity: float | None = None


@dataclass(frozen=True)
class Changes:
    """Document changes of one collection after some revision, for in-process indexes.

    Attributes:
        revision: the collection revision these changes bring an index up to.
        keys: int64 (m,) document keys, changed or deleted.
        seqs: int64 (m,) the revision that last wrote each key.
        deleted: bool (m,) True for a deleted document.
        vectors: float32 (number of live keys, dim): the live keys' vectors, in the
            order of ``keys[~deleted]``.
    """

    revision: int
    keys: npt.NDArray[np.int64]
    seqs: npt.NDArray[np.int64]
    deleted: npt.NDArray[np.bool_]
    vectors: npt.NDArray[np.float32]
