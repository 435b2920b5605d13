"""The ``index-documents`` job: embed and store a large batch of documents.

``POST /v1/collections/{name}/documents`` with more than ``search.sync_max_documents``
documents writes the batch (JSON lines) to the artifact store and submits this job. It
runs in ``aiweb serve`` (embedded runner) or an ``aiweb worker``: it embeds the batch in
chunks with the collection's embedding model version, writing each chunk in its own
transaction, and reports progress. Running it again (a retried attempt) writes the same
documents again: upserts are idempotent. The batch file is kept while an attempt may be
retried: it is removed by the handler itself once every document is written (before the
runner records ``succeeded``, so a client that reads ``succeeded`` never sees it), and
once the job failed or was cancelled for good.
"""

from __future__ import annotations

from typing import Any

import orjson

from aiweb.embeddings.runtime import load_embedder
from aiweb.errors import CollectionNotFound, InvalidInputError
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv
from aiweb.jobs.types import JobType
from aiweb.search.entities import Document
from aiweb.search.service import INDEX_JOB
from aiweb.search.store import SearchStore

#: documents embedded and written per step
CHUNK_DOCUMENTS = 256


def read_batch(data: bytes) -> list[Document]:
    """Parse a batch written by :meth:`SearchService.submit_index_job`."""
    docs = []
    for line in data.splitlines():
        if line.strip():
            raw = orjson.loads(line)
            docs.append(Document(id=raw["id"], text=raw["text"], metadata=raw["metadata"]))
    return docs


def index_documents(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
    """Embed and upsert the job's batch into its collection.

    Returns:
        ``{"collection", "upserted", "truncated": [ids], "revision"}``.

    Raises:
        InvalidInputError: the collection was deleted (or recreated) since submission, or
            the batch file is gone.
    """
    params = ctx.job.params
    store = SearchStore(env.engine)
    try:
        collection = store.get_collection(params["collection"])
    except CollectionNotFound:
        raise InvalidInputError(
            f"collection {params['collection']!r} was deleted before its documents were indexed"
        ) from None
    if collection.uid != params["collection_uid"]:
        raise InvalidInputError(
            f"collection {params['collection']!r} was deleted and created again before its "
            "documents were indexed"
        )
    ctx.when_finished(lambda: env.registry.artifacts.delete(params["batch_uri"]))
    try:
        documents = read_batch(env.registry.artifacts.read_bytes(params["batch_uri"]))
    except FileNotFoundError:
        raise InvalidInputError(f"the batch {params['batch_uri']} is gone") from None
    ctx.progress(0.0, "loading the embedding model")
    version = env.registry.get_version(collection.embedding_model, collection.embedding_version)
    embedder = load_embedder(env.registry, version, threads=env.settings.embeddings.threads)
    truncated: dict[str, bool] = {}
    revision = collection.revision
    for start in range(0, len(documents), CHUNK_DOCUMENTS):
        chunk = documents[start : start + CHUNK_DOCUMENTS]
        embeddings = embedder.embed([d.text for d in chunk])
        revision = store.upsert_documents(
            collection, chunk, embeddings.vectors, embeddings.truncated
        )
        truncated.update({d.id: bool(t) for d, t in zip(chunk, embeddings.truncated, strict=True)})
        done = start + len(chunk)
        ctx.progress(done / len(documents), f"indexed {done} of {len(documents)} documents")
    # every document is written: remove the batch now, before the runner records
    # ``succeeded`` (a ``when_finished`` cleanup runs only after that, so a client polling
    # the job could see ``succeeded`` while the file was still there)
    env.registry.artifacts.delete(params["batch_uri"])
    return {
        "collection": collection.name,
        "upserted": len(truncated),
        "truncated": [i for i, t in truncated.items() if t],
        "revision": revision,
    }


#: the jobs of search: only aiweb submits them (no body of ``POST /v1/jobs``)
JOB_TYPES: tuple[JobType, ...] = (JobType(INDEX_JOB, index_documents),)
