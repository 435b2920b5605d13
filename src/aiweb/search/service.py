"""Collections in, hits out: what the routes, the CLI, the jobs and the tests call.

A search runs: look the collection up (one indexed query; it also tells whether this
process's embedded index is behind, in which case the changes are read and applied) →
embed the query with the collection's embedding model version (the process's
:class:`~aiweb.embeddings.runtime.EmbedderPool` holds it; see :meth:`SearchService._embed_query`
for why queries skip its micro-batcher) → rank:

* ``vector``: cosine similarity, from the collection's vector index (embedded exact or
  HNSW, or pgvector);
* ``keyword``: BM25 over the collection's full-text index (:mod:`aiweb.search.keyword`);
* ``hybrid``: reciprocal rank fusion (Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion
  outperforms Condorcet and individual Rank Learning Methods", SIGIR 2009) of the two
  lists, each ``max(top_k, hybrid_candidates)`` long: ``score(d) = Σ 1 / (k + rank(d))``
  with ``k = 60``;

with the metadata filter applied inside each ranking (exact pre-filter), then read the
hits' texts and metadata.

**Answer threshold.** A help collection answers a question only when its top hit is close
enough (an assistant's FAQ answers). Hybrid scores are ranks, not distances, so the
threshold is on the top hit's cosine similarity (:attr:`Hit.similarity`), and it is
calibrated per collection (:meth:`SearchService.calibrate`): the ``quantile`` (0.95) of
the top-1 similarities of questions the collection should not answer — aiweb's packaged
off-topic questions (``off_topic.txt``: chit-chat, general knowledge, arithmetic,
nonsense) or the caller's own — so about 5% of such questions would still get an answer.
It is the split-conformal recipe (Vovk et al., *Algorithmic Learning in a Random World*,
2005; Angelopoulos & Bates, "A Gentle Introduction to Conformal Prediction", 2021) with
off-topic questions as the calibration set. It holds for the documents and the embedding
model it was computed with: changing the model clears it; re-calibrate after large
changes of the documents (``calibration.revision`` says when it was computed).

This process's embedded indexes (creating, catching up, the background upkeep of their
HNSW graphs and files) are kept by an :class:`~aiweb.search.indexing.IndexKeeper`, which
the service holds as :attr:`SearchService.indexes`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
import orjson

from aiweb.config import Settings
from aiweb.db.base import utcnow
from aiweb.errors import (
    BrokerUnavailableError,
    CollectionNotFound,
    ConflictError,
    InvalidInputError,
    PayloadTooLargeError,
)
from aiweb.names import check_name
from aiweb.registry.entities import ModelVersion
from aiweb.search import pgvector
from aiweb.search.embedded import EmbeddedIndex
from aiweb.search.entities import (
    Collection,
    Document,
    Hit,
    Mode,
    StoredDocument,
)
from aiweb.search.filters import Filter, check_field
from aiweb.search.index import Keys, Scores
from aiweb.search.indexing import IndexKeeper, ann_params
from aiweb.search.store import SearchStore

if TYPE_CHECKING:
    from aiweb.embeddings.model import Embeddings, OnnxEmbedder
    from aiweb.embeddings.runtime import EmbedderPool
    from aiweb.jobs.entities import Job
    from aiweb.jobs.service import JobService
    from aiweb.registry.service import RegistryService

log = logging.getLogger("aiweb.search")

#: the job type that embeds and writes a large batch of documents
INDEX_JOB = "index-documents"
MAX_METADATA_FIELDS = 64


def _off_topic() -> tuple[str, ...]:
    text = (resources.files("aiweb.search") / "off_topic.txt").read_text(encoding="utf-8")
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


#: aiweb's packaged off-topic questions (``off_topic.txt``), the default calibration set.
OFF_TOPIC = _off_topic()
#: Fewest and most questions a calibration takes.
MIN_CALIBRATION, MAX_CALIBRATION = 20, 2000


@dataclass(frozen=True)
class UpsertResult:
    """What a synchronous upsert wrote: ``upserted`` distinct documents, the ids of those
    whose text was truncated to the embedding model's word-piece limit."""

    upserted: int
    truncated: list[str]
    revision: int


@dataclass(frozen=True)
class SearchResult:
    """Hits best first, whether the query was truncated, and the collection as the
    search read it (its ``answer_threshold``, ``revision``)."""

    hits: list[Hit]
    query_truncated: bool
    collection: Collection | None = None


def reciprocal_rank_fusion(
    rankings: Sequence[Keys], k: int = 60, limit: int | None = None
) -> tuple[Keys, Scores]:
    """Fuse ranked key lists by reciprocal rank fusion (Cormack et al., SIGIR 2009).

    Args:
        rankings: int64 key arrays, each best first.
        k: the RRF constant (60 in the paper).
        limit: keep the best ``limit`` keys.

    Returns:
        ``(keys, scores)``: int64 and float32, by fused score ``Σ 1/(k + rank)`` (ranks
        from 1), ties broken by the best single rank, then by key.
    """
    score: dict[int, float] = {}
    best: dict[int, int] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking.tolist(), start=1):
            score[key] = score.get(key, 0.0) + 1.0 / (k + rank)
            best[key] = min(best.get(key, rank), rank)
    order = sorted(score, key=lambda key: (-score[key], best[key], key))[:limit]
    return (
        np.asarray(order, dtype=np.int64),
        np.asarray([score[key] for key in order], dtype=np.float32),
    )


class SearchService:
    """Search collections on one database, with this process's embedded indexes.

    Args:
        store: collections and documents.
        embedders: the process's embedder pool.
        registry: embedding model versions, the artifact store (job batches), audit log.
        settings: ``settings.search`` limits and index parameters; ``settings.home`` for
            index files.
        jobs: submits large upserts as jobs (``None``: every upsert is synchronous).
        on_query: hook ``(model, version, batch_size, seconds)`` after each query
            embedding (the app passes the inference metrics).
        on_loaded: called after the upkeep thread loaded the indexes of every
            collection at start (the app freezes them out of the garbage collector's
            scans with :func:`aiweb.serving.gc.tune_after_load`).

    Attributes:
        indexes: this process's embedded indexes and their upkeep.
        root: where index files live (``<home>/search``).
        params: HNSW parameters and thresholds (from ``settings.search``).
    """

    def __init__(
        self,
        store: SearchStore,
        embedders: EmbedderPool,
        registry: RegistryService,
        settings: Settings,
        jobs: JobService | None = None,
        *,
        on_query: Callable[[str, int, int, float], None] | None = None,
        on_loaded: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.embedders = embedders
        self.registry = registry
        self.settings = settings
        self.config = settings.search
        self.jobs = jobs
        self.indexes = IndexKeeper(
            store,
            settings.home / "search",
            ann_params(self.config),
            interval_s=self.config.upkeep_interval_s,
            on_loaded=on_loaded,
        )
        self.root = self.indexes.root
        self.params = self.indexes.params
        self._seen: dict[str, Collection] = {}
        self._on_query = on_query
        self._query_slots = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
        self._pgvector: bool | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background upkeep thread (catch-up and HNSW builds)."""
        self.indexes.start()

    def close(self) -> None:
        """Stop the upkeep thread (a graph being built is abandoned)."""
        self.indexes.close()

    def upkeep(self, *, load_all: bool = False) -> dict[str, str]:
        """One round of index upkeep (see :meth:`IndexKeeper.upkeep`).

        Args:
            load_all: also load the indexes of collections this process has not searched
                yet (done once at start).

        Returns:
            ``{collection name: what upkeep did}`` (see :meth:`EmbeddedIndex.upkeep`).
        """
        return self.indexes.upkeep(load_all=load_all)

    def embedded_index(self, name: str) -> EmbeddedIndex:
        """The caught-up embedded index of collection ``name`` (tests, benchmarks).

        Raises:
            CollectionNotFound: no such collection.
            InvalidInputError: the collection uses pgvector.
        """
        collection = self.store.get_collection(name)
        if collection.vector_index != "embedded":
            raise InvalidInputError(f"collection {name!r} uses {collection.vector_index}")
        return self.indexes.index(collection)

    def _record(
        self,
        actor: str,
        action: str,
        target: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        """Write an audit event (no-op without an audit log)."""
        if self.registry.audit is not None:
            self.registry.audit.record(
                actor, action, target, before=before, after=after, request_id=request_id
            )

    # ------------------------------------------------------------------ collections

    def _vector_index_kind(self) -> str:
        wanted = self.config.vector_index
        if wanted == "embedded":
            return "embedded"
        if self._pgvector is None:
            self._pgvector = pgvector.available(self.store.engine)
        if self._pgvector:
            return "pgvector"
        if wanted == "pgvector":
            raise InvalidInputError(
                "AIWEB_SEARCH__VECTOR_INDEX=pgvector, but the database is not PostgreSQL with "
                "the vector extension (CREATE EXTENSION vector)"
            )
        return "embedded"

    def _embedding_version(self, ref: str | None) -> tuple[ModelVersion, int]:
        version = self.embedders.resolve(ref)
        if version.status != "ready":
            raise InvalidInputError(
                f"{version.name}:{version.version} is {version.status}, not ready"
            )
        return version, self.embedders.get(version).dim

    def put_collection(
        self,
        name: str,
        *,
        embedding_model: str | None,
        metadata_fields: Sequence[str] | None,
        fields_given: bool,
        actor: str,
        request_id: str | None = None,
    ) -> tuple[Collection, bool]:
        """Create collection ``name``, or update it.

        Args:
            embedding_model: ``minilm``, ``minilm@production``, ``minilm:2``; ``None``: the
                default embedder for a new collection, unchanged for an existing one.
            metadata_fields: the filterable fields (``None``: all).
            fields_given: whether ``metadata_fields`` was sent (else an existing
                collection keeps its own).

        Returns:
            ``(collection, created)``.

        Raises:
            InvalidInputError: a bad name, field or model reference; a model of another
                task (422).
            EmbeddingModelNotInstalled, ModelNotFound, AliasNotFound: the model (404).
            ConflictError: a different embedding model for a collection with documents.
        """
        check_name(name, "collection name")
        fields = _check_fields(metadata_fields)
        try:
            current = self.store.get_collection(name)
        except CollectionNotFound:
            current = None
        if current is None:
            version, dim = self._embedding_version(embedding_model)
            try:
                collection = self.store.create_collection(
                    name,
                    embedding_model=version.name,
                    embedding_version=version.version,
                    dim=dim,
                    metadata_fields=fields,
                    vector_index=self._vector_index_kind(),
                    actor=actor,
                )
            except ConflictError:  # created concurrently: update it instead
                return self.put_collection(
                    name,
                    embedding_model=embedding_model,
                    metadata_fields=metadata_fields,
                    fields_given=fields_given,
                    actor=actor,
                    request_id=request_id,
                )
            self._record(
                actor,
                "collection.create",
                f"collection:{name}",
                after=_audit(collection),
                request_id=request_id,
            )
            return dataclasses.replace(collection, documents=0), True
        embedding = None
        if embedding_model is not None:
            version, dim = self._embedding_version(embedding_model)
            if (version.name, version.version) != (
                current.embedding_model,
                current.embedding_version,
            ):
                embedding = (version.name, version.version, dim)
        collection = self.store.update_collection(
            current,
            metadata_fields=fields if fields_given else current.metadata_fields,
            embedding=embedding,
        )
        if embedding is not None or collection.metadata_fields != current.metadata_fields:
            self._record(
                actor,
                "collection.update",
                f"collection:{name}",
                before=_audit(current),
                after=_audit(collection),
                request_id=request_id,
            )
        return self.store.get_collection(name, count=True), False

    def get_collection(self, name: str) -> Collection:
        """One collection with its document count. Raises CollectionNotFound."""
        return self.store.get_collection(name, count=True)

    def list_collections(self) -> list[Collection]:
        """Every collection with its document count."""
        return self.store.list_collections()

    def delete_collection(self, name: str, *, actor: str, request_id: str | None = None) -> None:
        """Delete a collection, its documents, its index tables and files.

        Raises:
            CollectionNotFound: no such collection.
        """
        collection = self.store.get_collection(name)
        self.store.delete_collection(collection)
        self._seen.pop(name, None)
        self.indexes.remove(collection)
        self._record(
            actor,
            "collection.delete",
            f"collection:{name}",
            before=_audit(collection),
            request_id=request_id,
        )

    # ------------------------------------------------------------------ documents

    def check_documents(self, collection: Collection, documents: Sequence[Document]) -> None:
        """Check sizes of a batch of documents.

        Raises:
            PayloadTooLargeError: more than ``max_documents``.
            InvalidInputError: a text or metadata object over its limit.
        """
        if len(documents) > self.config.max_documents:
            raise PayloadTooLargeError(
                f"{len(documents)} documents in one request; at most "
                f"{self.config.max_documents} (AIWEB_SEARCH__MAX_DOCUMENTS)"
            )
        for i, doc in enumerate(documents):
            if len(doc.text) > self.config.max_document_chars:
                raise InvalidInputError(
                    f"documents[{i}] ({doc.id!r}): text of {len(doc.text)} characters; at most "
                    f"{self.config.max_document_chars} (AIWEB_SEARCH__MAX_DOCUMENT_CHARS)"
                )
            size = len(orjson.dumps(doc.metadata))
            if size > self.config.max_metadata_bytes:
                raise InvalidInputError(
                    f"documents[{i}] ({doc.id!r}): metadata of {size} bytes as JSON; at most "
                    f"{self.config.max_metadata_bytes} (AIWEB_SEARCH__MAX_METADATA_BYTES)"
                )

    def model_version(self, collection: Collection) -> ModelVersion:
        """The collection's embedding model version (from the embedder pool's version
        cache once its embedder is loaded)."""
        name, number = collection.embedding_model, collection.embedding_version
        version = self.embedders.loaded_version(name, number)
        return version if version is not None else self.registry.get_version(name, number)

    async def upsert(
        self,
        name: str,
        documents: Sequence[Document],
        *,
        actor: str,
        request_id: str | None = None,
    ) -> UpsertResult | Job:
        """Embed and store ``documents`` (insert or replace by id): at once when there are
        at most ``sync_max_documents`` (or no job service), else as an
        ``index-documents`` job, which is returned.

        Raises:
            CollectionNotFound (404), PayloadTooLargeError (413), InvalidInputError (422),
            BrokerUnavailableError (503, no job created).
        """
        collection = await anyio.to_thread.run_sync(self.store.get_collection, name)
        self.check_documents(collection, documents)
        if self.jobs is not None and len(documents) > self.config.sync_max_documents:
            return await anyio.to_thread.run_sync(
                lambda: self.submit_index_job(
                    collection, documents, actor=actor, request_id=request_id
                )
            )
        version = await anyio.to_thread.run_sync(self.model_version, collection)
        _, embeddings = await self.embedders.embed(version, [d.text for d in documents])
        revision = await anyio.to_thread.run_sync(
            self.store.upsert_documents,
            collection,
            documents,
            embeddings.vectors,
            embeddings.truncated,
        )
        return _result(documents, embeddings.truncated, revision)

    def upsert_sync(self, name: str, documents: Sequence[Document]) -> UpsertResult:
        """Embed and store ``documents`` in this thread (CLI, jobs); see :meth:`upsert`."""
        collection = self.store.get_collection(name)
        self.check_documents(collection, documents)
        embedder = self.embedders.get(self.model_version(collection))
        embeddings = embedder.embed([d.text for d in documents])
        revision = self.store.upsert_documents(
            collection, documents, embeddings.vectors, embeddings.truncated
        )
        return _result(documents, embeddings.truncated, revision)

    def submit_index_job(
        self,
        collection: Collection,
        documents: Sequence[Document],
        *,
        actor: str,
        request_id: str | None = None,
    ) -> Job:
        """Write the batch to the artifact store and submit an ``index-documents`` job.

        Raises:
            BrokerUnavailableError: the broker is unreachable; nothing is left behind.
        """
        import uuid

        assert self.jobs is not None
        uri = f"search-batches/{collection.uid}/{uuid.uuid4().hex}.jsonl"
        lines = b"".join(
            orjson.dumps({"id": d.id, "text": d.text, "metadata": d.metadata}) + b"\n"
            for d in documents
        )
        self.registry.artifacts.write_bytes(uri, lines)
        params = {
            "collection": collection.name,
            "collection_uid": collection.uid,
            "batch_uri": uri,
            "documents": len(documents),
        }
        job = self.jobs.store.create(
            INDEX_JOB,
            params,
            submitted_by=actor,
            max_attempts=self.settings.jobs.max_attempts,
        )
        try:
            self.jobs.dispatcher.dispatch(job.id)
        except BrokerUnavailableError:
            self.jobs.store.delete(job.id)
            self.registry.artifacts.delete(uri)
            raise
        self._record(
            actor,
            "job.submitted",
            f"job:{job.id}",
            after={"type": INDEX_JOB, "params": params},
            request_id=request_id,
        )
        return job

    def delete_document(self, name: str, doc_id: str) -> None:
        """Delete one document. Raises CollectionNotFound, DocumentNotFound."""
        collection = self.store.get_collection(name)
        self.store.delete_document(collection, doc_id)

    def get_document(self, name: str, doc_id: str) -> StoredDocument:
        """One document. Raises CollectionNotFound, DocumentNotFound."""
        return self.store.get_document(self.store.get_collection(name), doc_id)

    # ------------------------------------------------------------------ search

    async def search(
        self,
        name: str,
        query: str,
        *,
        top_k: int = 10,
        filter: dict[str, Any] | None = None,
        mode: Mode = "hybrid",
    ) -> SearchResult:
        """Search collection ``name`` (see the module docs for the modes).

        Args:
            query: the text searched for.
            top_k: hits wanted, 1 to ``max_top_k``.
            filter: ``{field: value | {"in": [values]}}`` on metadata.
            mode: ``vector``, ``keyword`` or ``hybrid``.

        Returns:
            Hits best first (fewer than ``top_k`` when fewer documents match), and whether
            the query was truncated to the embedding model's word-piece limit.

        Raises:
            CollectionNotFound (404), InvalidInputError (422: bad filter or top_k),
            QueueFullError (503).
        """
        if not 1 <= top_k <= self.config.max_top_k:
            raise InvalidInputError(
                f"top_k must be 1 to {self.config.max_top_k} (AIWEB_SEARCH__MAX_TOP_K)"
            )
        # the collection as last seen by this process tells which embedding model to load
        # without a database round trip; _search_current re-reads the row (one indexed
        # query, in the same worker thread as the embedding and the ranking) and says
        # when it changed
        collection = self._seen.get(name)
        if collection is None:
            collection = await anyio.to_thread.run_sync(self.store.get_collection, name)
        for _ in range(3):
            Filter.parse(filter, collection.metadata_fields)  # a bad filter fails fast
            embedder = None
            if mode != "keyword":
                embedder = await self._query_embedder(collection)
            current, result = await anyio.to_thread.run_sync(
                self._search_current, name, collection, query, embedder, top_k, filter, mode
            )
            if result is not None:
                return result
            collection = current  # recreated, or another embedding model: embed again
        raise ConflictError(f"collection {name!r} keeps changing its embedding model; retry")

    async def _query_embedder(self, collection: Collection) -> OnnxEmbedder:
        """The pool's loaded embedder of the collection's model version (the pool's
        version cache holds it; loaded on first use)."""
        name, number = collection.embedding_model, collection.embedding_version
        embedder = self.embedders.loaded_embedder(name, number)
        if embedder is None:
            embedder = await anyio.to_thread.run_sync(self.embedders.pinned, name, number)
        return embedder

    def _embed_query(
        self, collection: Collection, embedder: OnnxEmbedder, query: str
    ) -> Embeddings:
        """Embed one query in this (worker) thread, at most one query per core at a time.

        Not through the pool's micro-batcher: it runs one batch at a time, and
        all-MiniLM-L6-v2 (int8 or fp32) costs as much per short text in a batch of 4 as
        alone on this CPU, so queued queries only waited (at concurrency 4 and 16 direct
        calls answered 1.2-1.7x the searches per second, with a lower p99; see
        docs/benchmarks.md). Documents, embedded in bulk, still go through the batcher.
        """
        with self._query_slots:
            started = time.perf_counter()
            embeddings = embedder.embed([query])
            seconds = time.perf_counter() - started
        if self._on_query is not None:
            self._on_query(collection.embedding_model, collection.embedding_version, 1, seconds)
        return embeddings

    def _search_current(
        self,
        name: str,
        seen: Collection,
        query: str,
        embedder: OnnxEmbedder | None,
        top_k: int,
        filter: dict[str, Any] | None,
        mode: Mode,
    ) -> tuple[Collection, SearchResult | None]:
        """Embed the query, re-read the collection, catch its embedded index up and rank;
        ``None`` when the query was embedded for a collection that is no longer the
        current one (deleted and recreated, or another embedding model)."""
        embeddings = self._embed_query(seen, embedder, query) if embedder is not None else None
        try:
            current = self.store.get_collection(name)
        except CollectionNotFound:
            self._seen.pop(name, None)
            raise
        self._seen[name] = current
        same = (current.uid, current.embedding_model, current.embedding_version) == (
            seen.uid,
            seen.embedding_model,
            seen.embedding_version,
        )
        if not same and mode != "keyword":
            return current, None
        where = Filter.parse(filter, current.metadata_fields)
        if current.vector_index == "embedded" and mode != "keyword":
            self.indexes.index(current)
        query_vector = embeddings.vectors[0] if embeddings is not None else None
        hits = self._rank(current, query, query_vector, top_k, where, mode)
        truncated = bool(embeddings.truncated[0]) if embeddings and embeddings.truncated else False
        return current, SearchResult(hits, truncated, current)

    def calibrate(
        self, name: str, questions: Sequence[str] | None = None, *, quantile: float = 0.95
    ) -> Collection:
        """Calibrate and store collection ``name``'s answer threshold (see the module
        docstring): the ``quantile`` of the top-1 cosine similarities of ``questions``
        (``None``: :data:`OFF_TOPIC`), none of which the collection should answer.

        Args:
            questions: 20 to 2,000 off-topic questions, each 1 to 1,000 characters.
            quantile: in [0.5, 1.0]; the share of such questions left unanswered.

        Returns:
            The collection with ``answer_threshold`` and ``calibration`` set.

        Raises:
            CollectionNotFound (404); ConflictError (409): no documents yet;
                InvalidInputError (422): too few or too many questions, a bad quantile.
        """
        if not 0.5 <= quantile <= 1.0:
            raise InvalidInputError("quantile must be 0.5 to 1.0")
        given = questions is not None
        texts = [q.strip() for q in (questions if questions is not None else OFF_TOPIC)]
        texts = [q for q in texts if q]
        if not MIN_CALIBRATION <= len(texts) <= MAX_CALIBRATION:
            raise InvalidInputError(
                f"calibration needs {MIN_CALIBRATION} to {MAX_CALIBRATION} questions, "
                f"{len(texts)} given"
            )
        if any(len(q) > 1000 for q in texts):
            raise InvalidInputError("a calibration question has more than 1,000 characters")
        collection = self.store.get_collection(name, count=True)
        if not collection.documents:
            raise ConflictError(
                f"collection {name!r} has no documents: add the help articles, then calibrate"
            )
        embedder = self.embedders.pinned(collection.embedding_model, collection.embedding_version)
        top = []
        for text in texts:
            # one at a time, as a search embeds its query: the int8 model's outputs move
            # a little with the padding of a batch
            vector = embedder.embed([text]).vectors[0]
            _, scores = self.vector_search(collection, vector, 1, None)
            top.append(float(scores[0]) if len(scores) else -1.0)
        similarities = np.asarray(top, dtype=np.float64)
        threshold = float(np.quantile(similarities, quantile, method="higher"))
        calibration = {
            "questions": len(texts),
            "source": "given" if given else "packaged",
            "quantile": quantile,
            "revision": collection.revision,
            "documents": collection.documents,
            "embedding_model": collection.embedding_ref,
            "similarities": {
                "p50": round(float(np.quantile(similarities, 0.5)), 6),
                "p95": round(float(np.quantile(similarities, 0.95)), 6),
                "max": round(float(similarities.max()), 6),
            },
            "at": utcnow().isoformat(),
        }
        log.info("collection %s: answer threshold %.4f (%s)", name, threshold, calibration)
        return self.store.set_calibration(collection, round(threshold, 6), calibration)

    def vector_search(
        self, collection: Collection, query: np.ndarray[Any, Any], k: int, where: Filter | None
    ) -> tuple[Keys, Scores]:
        """The ``k`` nearest documents of a query vector (float32 (dim,), L2-normalised)."""
        if collection.vector_index == "pgvector":
            return self.store.pgvector_search(
                collection, query, k, where, self.config.pgvector_ef_search
            )
        index = self.indexes.index(collection)
        allowed = self.store.filter_keys(collection, where) if where is not None else None
        return index.search(query, k, allowed)

    def _rank(
        self,
        collection: Collection,
        query: str,
        query_vector: np.ndarray[Any, Any] | None,
        top_k: int,
        where: Filter | None,
        mode: Mode,
    ) -> list[Hit]:
        similarity: dict[int, float] = {}
        if mode == "vector":
            assert query_vector is not None
            keys, scores = self.vector_search(collection, query_vector, top_k, where)
            similarity = dict(zip(keys.tolist(), scores.tolist(), strict=True))
        elif mode == "keyword":
            keys, scores = self.store.keyword_search(collection, query, top_k, where)
        else:
            assert query_vector is not None
            depth = max(top_k, self.config.hybrid_candidates)
            by_vector, cosine = self.vector_search(collection, query_vector, depth, where)
            similarity = dict(zip(by_vector.tolist(), cosine.tolist(), strict=True))
            by_keyword, _ = self.store.keyword_search(collection, query, depth, where)
            keys, scores = reciprocal_rank_fusion(
                [by_vector, by_keyword], k=self.config.rrf_k, limit=top_k
            )
        docs = self.store.fetch(collection, keys.tolist())
        hits = []
        for key, score in zip(keys.tolist(), scores.tolist(), strict=True):
            found = docs.get(key)
            if found is not None:  # deleted since the index was read
                doc_id, text, metadata = found
                cos = similarity.get(key)
                hits.append(
                    Hit(
                        id=doc_id,
                        score=float(score),
                        text=text,
                        metadata=metadata,
                        similarity=float(cos) if cos is not None else None,
                    )
                )
        return hits


def _check_fields(fields: Sequence[str] | None) -> list[str] | None:
    if fields is None:
        return None
    if len(fields) > MAX_METADATA_FIELDS:
        raise InvalidInputError(f"metadata_fields: at most {MAX_METADATA_FIELDS} fields")
    return list(dict.fromkeys(check_field(f) for f in fields))


def _audit(collection: Collection) -> dict[str, Any]:
    return {
        "embedding_model": collection.embedding_ref,
        "metadata_fields": list(collection.metadata_fields)
        if collection.metadata_fields is not None
        else None,
        "vector_index": collection.vector_index,
    }


def _result(
    documents: Sequence[Document], truncated: Sequence[bool], revision: int
) -> UpsertResult:
    cut = {d.id: bool(t) for d, t in zip(documents, truncated, strict=True)}  # last wins
    return UpsertResult(
        upserted=len(cut), truncated=[i for i, t in cut.items() if t], revision=revision
    )
