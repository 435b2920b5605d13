"""API shapes of ``/v1/collections``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiweb.api.openapi_facts import setting_bounds
from aiweb.names import REF_REGEX
from aiweb.search.entities import Collection, Document, Hit, StoredDocument
from aiweb.search.filters import FIELD_PATTERN

DocId = Field(..., min_length=1, max_length=255, description="Your id of the document.")


class CollectionIn(BaseModel):
    """``PUT /v1/collections/{name}``: every field is optional; ``{}`` creates a collection
    embedded with the default model (``minilm@production``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{}, {"embedding_model": "minilm@production", "metadata_fields": ["genre"]}]
        },
    )

    embedding_model: str | None = Field(
        None,
        min_length=1,
        max_length=130,
        json_schema_extra={"pattern": REF_REGEX},
        description="`minilm`, `minilm@production` or `minilm:2`: the registered "
        "feature-extraction model version every document and query is embedded with (resolved "
        "once, at creation). Omitted: the default embedder for a new collection, unchanged "
        "for an existing one.",
    )
    metadata_fields: (
        list[Annotated[str, Field(json_schema_extra={"pattern": FIELD_PATTERN.pattern})]] | None
    ) = Field(
        None,
        max_length=64,
        description="The metadata fields filters may use (1 to 64 letters, digits, `_`, `-`, "
        "not starting with `-`); "
        "null or omitted on creation: every field. Omitted on update: unchanged.",
    )


class CollectionOut(BaseModel):
    name: str
    embedding_model: str = Field(..., description="`name:version` documents are embedded with.")
    dim: int = Field(..., description="Embedding dimension.")
    metadata_fields: list[str] | None = Field(
        ..., description="Filterable metadata fields; null: every field."
    )
    vector_index: Literal["embedded", "pgvector"]
    documents: int | None = Field(None, description="Live documents.")
    revision: int = Field(..., description="Grows with every write to the documents.")
    answer_threshold: float | None = Field(
        None,
        description="The cosine similarity a top hit must reach to answer a question (an "
        "assistant's help collection); null until calibrated (POST …/calibrate).",
    )
    calibration: dict[str, Any] | None = Field(
        None,
        description="How answer_threshold was calibrated: questions, source (packaged or "
        "given), quantile, revision, documents, embedding_model, similarities, at.",
    )
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, collection: Collection) -> CollectionOut:
        return cls(
            name=collection.name,
            embedding_model=collection.embedding_ref,
            dim=collection.dim,
            metadata_fields=list(collection.metadata_fields)
            if collection.metadata_fields is not None
            else None,
            vector_index=collection.vector_index,
            documents=collection.documents,
            revision=collection.revision,
            answer_threshold=collection.answer_threshold,
            calibration=collection.calibration,
            created_by=collection.created_by,
            created_at=collection.created_at,
            updated_at=collection.updated_at,
        )


#: An off-topic question: 1 to 1,000 characters, not only blanks.
_Question = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]


class CalibrateIn(BaseModel):
    """Questions the collection should not answer, and the share of them to leave
    unanswered."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{}, {"quantile": 0.99}]},
    )

    questions: list[Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]] | None = (
        Field(
            None,
            min_length=20,
            max_length=2000,
            description="20 to 2,000 off-topic questions; null: aiweb's packaged ones "
            "(chit-chat, general knowledge, arithmetic, nonsense).",
        )
    )
    quantile: float = Field(
        0.95,
        ge=0.5,
        le=1.0,
        allow_inf_nan=False,
        description="The threshold is this quantile of the questions' top-1 similarities: "
        "0.95 leaves about 95% of such questions unanswered.",
    )


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class DocumentIn(BaseModel):
    """A document to insert or replace."""

    model_config = ConfigDict(extra="forbid")

    id: str = DocId
    text: str = Field(
        ...,
        description="What is embedded (its first 256 word pieces) and keyword-indexed (all "
        "of it); at most 100,000 characters (AIWEB_SEARCH__MAX_DOCUMENT_CHARS).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="A JSON object returned with hits; filters match its top-level fields.",
    )

    def to_document(self) -> Document:
        return Document(id=self.id, text=self.text, metadata=self.metadata)


class DocumentsIn(BaseModel):
    """``{"documents": [...]}``: 1 to 10,000 documents, upserted by ``id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "documents": [
                        {
                            "id": "b1",
                            "text": "The Adventures of Sherlock Holmes by Arthur Conan Doyle",
                            "metadata": {"year": 1892},
                        }
                    ]
                }
            ]
        },
    )

    documents: list[DocumentIn] = Field(..., min_length=1)


class UpsertOut(BaseModel):
    upserted: int = Field(..., description="Distinct documents written (a repeated id once).")
    truncated: list[str] = Field(
        ...,
        description="Ids of documents longer than the embedding model's 256 word pieces: "
        "their vector covers the beginning only (keyword search covers all of the text).",
    )
    revision: int = Field(..., description="The collection revision written.")


class DocumentOut(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    truncated: bool
    updated_at: datetime

    @classmethod
    def of(cls, doc: StoredDocument) -> DocumentOut:
        return cls(
            id=doc.id,
            text=doc.text,
            metadata=doc.metadata,
            truncated=doc.truncated,
            updated_at=doc.updated_at,
        )


class SearchIn(BaseModel):
    """``POST /v1/collections/{name}/search``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"query": "detective stories in Victorian London", "mode": "hybrid"}]
        },
    )

    query: str = Field(..., min_length=1, max_length=10_000, description="What to look for.")
    top_k: int = Field(
        10,
        ge=1,
        description="Hits wanted (at most AIWEB_SEARCH__MAX_TOP_K).",
        json_schema_extra=setting_bounds(maximum="AIWEB_SEARCH__MAX_TOP_K"),
    )
    filter: dict[str, Any] | None = Field(
        None,
        description='`{field: value | {"in": [values]}}` on metadata; every condition must '
        "hold. Values are strings, numbers or booleans.",
    )
    mode: Literal["vector", "keyword", "hybrid"] = Field(
        "hybrid",
        description="`vector` (cosine similarity of embeddings), `keyword` (BM25) or "
        "`hybrid` (reciprocal rank fusion of both).",
    )


class HitOut(BaseModel):
    id: str
    score: float = Field(
        ...,
        description="Higher is better. vector: cosine similarity; keyword: BM25 (SQLite) "
        "or ts_rank_cd (PostgreSQL); hybrid: the reciprocal-rank-fusion score.",
    )
    text: str
    metadata: dict[str, Any]

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        return cls(id=hit.id, score=hit.score, text=hit.text, metadata=hit.metadata)


class SearchOut(BaseModel):
    hits: list[HitOut]
    query_truncated: bool = Field(
        False,
        description="The query had more than 256 word pieces: only its beginning was embedded.",
    )
