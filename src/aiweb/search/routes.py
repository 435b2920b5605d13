"""``/v1/collections``: search collections, their documents, and search.

Mount with ``app.include_router(router)``; the service is the one the app's lifespan put
on ``app.state.search``. Writing (collections, documents) needs scope ``train``; reading
and searching need ``predict``.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Path, Request, Response

from aiweb.api.problems import request_id
from aiweb.jobs.schemas import JobOut
from aiweb.names import NAME_REGEX
from aiweb.search.schemas import (
    CalibrateIn,
    CollectionIn,
    CollectionList,
    CollectionOut,
    DocumentOut,
    DocumentsIn,
    SearchIn,
    SearchOut,
    UpsertOut,
)
from aiweb.search.service import SearchService, UpsertResult
from aiweb.security.auth import actor, scoped

router = APIRouter(prefix="/v1/collections", tags=["search"])


async def _service(request: Request) -> SearchService:
    service: SearchService = request.app.state.search
    return service


ServiceDep = Annotated[SearchService, Depends(_service)]
NamePath = Annotated[
    str,
    Path(
        description="Collection name (lower-case letters, digits, `_`, `-`).",
        max_length=63,
        pattern=NAME_REGEX,
    ),
]
DocPath = Annotated[str, Path(description="Document id.", min_length=1, max_length=255)]


_NOT_FOUND = {"description": "No such collection (or document)."}


@router.put(
    "/{name}",
    response_model=CollectionOut,
    **scoped(
        "train",
        {
            200: {"description": "The collection existed; updated."},
            201: {"description": "Created."},
            404: {"description": "The embedding model is not installed or does not exist."},
            409: {"description": "A new embedding model for a collection with documents."},
        },
    ),
)
async def put_collection(
    name: NamePath, body: CollectionIn, request: Request, response: Response, service: ServiceDep
) -> CollectionOut:
    """Create a collection (201), or update one (200). ``{}`` is enough: documents are then
    embedded with the default model (`minilm@production`, resolved to its version now and
    kept). ``metadata_fields`` names the fields filters may use."""
    collection, created = await anyio.to_thread.run_sync(
        lambda: service.put_collection(
            name,
            embedding_model=body.embedding_model,
            metadata_fields=body.metadata_fields,
            fields_given="metadata_fields" in body.model_fields_set,
            actor=actor(request),
            request_id=request_id(request),
        )
    )
    response.status_code = 201 if created else 200
    return CollectionOut.of(collection)


@router.get("", response_model=CollectionList, **scoped("predict"))
async def list_collections(service: ServiceDep) -> CollectionList:
    """Every collection with its document count, by name."""
    collections = await anyio.to_thread.run_sync(service.list_collections)
    return CollectionList(collections=[CollectionOut.of(c) for c in collections])


@router.get("/{name}", response_model=CollectionOut, **scoped("predict", {404: _NOT_FOUND}))
async def get_collection(name: NamePath, service: ServiceDep) -> CollectionOut:
    """One collection: its embedding model version, filterable fields, documents."""
    return CollectionOut.of(await anyio.to_thread.run_sync(service.get_collection, name))


@router.delete("/{name}", status_code=204, **scoped("train", {404: _NOT_FOUND}))
async def delete_collection(name: NamePath, request: Request, service: ServiceDep) -> Response:
    """Delete a collection with all its documents and indexes."""
    await anyio.to_thread.run_sync(
        lambda: service.delete_collection(
            name, actor=actor(request), request_id=request_id(request)
        )
    )
    return Response(status_code=204)


@router.post(
    "/{name}/calibrate",
    response_model=CollectionOut,
    **scoped(
        "train",
        {
            404: _NOT_FOUND,
            409: {"description": "The collection has no documents yet."},
        },
    ),
)
async def calibrate_collection(
    name: NamePath, service: ServiceDep, body: CalibrateIn | None = None
) -> CollectionOut:
    """Calibrate the collection's answer threshold: the cosine similarity its top hit must
    reach to answer a question (an assistant's help collection). It is the `quantile` of
    the top-1 similarities of questions the collection should not answer (aiweb's
    packaged off-topic questions, or `questions`). Run it again after large changes of
    the documents; changing the embedding model clears it."""
    given = body or CalibrateIn()
    collection = await anyio.to_thread.run_sync(
        lambda: service.calibrate(name, given.questions, quantile=given.quantile)
    )
    return CollectionOut.of(collection)


@router.post(
    "/{name}/documents",
    response_model=UpsertOut,
    **scoped(
        "train",
        {
            202: {
                "description": "A large batch: an `index-documents` job was submitted "
                "(the job record; follow its Location).",
                "model": JobOut,
            },
            404: _NOT_FOUND,
            413: {
                "description": "More documents than AIWEB_SEARCH__MAX_DOCUMENTS, or a body "
                "over AIWEB_LIMITS__MAX_BODY_BYTES."
            },
            503: {"description": "Large batch: the job broker is unreachable (nothing stored)."},
        },
    ),
)
async def upsert_documents(
    name: NamePath, body: DocumentsIn, request: Request, response: Response, service: ServiceDep
) -> UpsertOut | Response:
    """Insert or replace documents by ``id`` (a repeated id: the last wins). Up to
    ``AIWEB_SEARCH__SYNC_MAX_DOCUMENTS`` (128) documents are embedded and stored before
    the answer (200: stored, searchable at once); a larger batch becomes an
    ``index-documents`` background job (202 with the job and its ``Location``).
    ``truncated`` lists the documents longer than the embedding model's 256 word pieces."""
    outcome = await service.upsert(
        name,
        [d.to_document() for d in body.documents],
        actor=actor(request),
        request_id=request_id(request),
    )
    if isinstance(outcome, UpsertResult):
        return UpsertOut(
            upserted=outcome.upserted, truncated=outcome.truncated, revision=outcome.revision
        )
    job = JobOut.of(outcome)
    out = Response(job.model_dump_json(), status_code=202, media_type="application/json")
    out.headers.raw.extend(response.headers.raw)
    out.headers["Location"] = f"/v1/jobs/{outcome.id}"
    return out


@router.get(
    "/{name}/documents/{doc_id}", response_model=DocumentOut, **scoped("predict", {404: _NOT_FOUND})
)
async def get_document(name: NamePath, doc_id: DocPath, service: ServiceDep) -> DocumentOut:
    """One document as stored."""
    return DocumentOut.of(await anyio.to_thread.run_sync(service.get_document, name, doc_id))


@router.delete("/{name}/documents/{doc_id}", status_code=204, **scoped("train", {404: _NOT_FOUND}))
async def delete_document(name: NamePath, doc_id: DocPath, service: ServiceDep) -> Response:
    """Delete one document: no search returns it any more."""
    await anyio.to_thread.run_sync(service.delete_document, name, doc_id)
    return Response(status_code=204)


@router.post(
    "/{name}/search",
    response_model=SearchOut,
    **scoped(
        "predict",
        {
            404: _NOT_FOUND,
            422: {"description": "Invalid body, filter or top_k."},
            503: {"description": "Too many queries waiting for the embedding model."},
        },
    ),
)
async def search(
    name: NamePath, body: SearchIn, response: Response, service: ServiceDep
) -> Response:
    """The ``top_k`` documents best matching ``query``: by meaning (``vector``), by words
    (``keyword``, BM25) or both (``hybrid``, reciprocal rank fusion; the default), among
    the documents whose metadata matches ``filter``."""
    result = await service.search(
        name, body.query, top_k=body.top_k, filter=body.filter, mode=body.mode
    )
    content = orjson.dumps(
        {
            "hits": [
                {"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
                for h in result.hits
            ],
            "query_truncated": result.query_truncated,
        }
    )
    out = Response(content, media_type="application/json")
    out.headers.raw.extend(response.headers.raw)  # RateLimit-* set by the auth dependency
    return out
