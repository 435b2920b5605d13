"""``/v1/datasets``: upload a CSV, JSONL, JSONL spans or CoNLL file, list, describe and
delete uploads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from aiweb.api.deps import DatasetsDep, RegistryDep, next_offset
from aiweb.api.problems import request_id
from aiweb.datasets.service import Dataset
from aiweb.security.auth import actor, scoped

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


class DatasetOut(BaseModel):
    """An uploaded data file."""

    id: str
    name: str
    rows: int = Field(..., description="Data rows (the CSV header is not counted).")
    sha256: str
    columns: list[str]
    format: str = Field(
        ...,
        description="csv, jsonl, conll, or spans: a JSONL file of texts with span "
        'annotations ({"text", "spans": [{"start", "end", "label"}]} a line).',
    )
    size_bytes: int
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, d: Dataset) -> DatasetOut:
        return cls(
            id=d.id,
            name=d.name,
            rows=d.rows,
            sha256=d.sha256,
            columns=d.columns,
            format=d.format,
            size_bytes=d.size_bytes,
            created_by=d.created_by,
            created_at=d.created_at,
        )


class DatasetList(BaseModel):
    datasets: list[DatasetOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


#: the media types of the file part (the format when its name has no known suffix)
UPLOAD_MEDIA_TYPES = ("text/csv", "application/jsonl", "application/x-ndjson")

_UPLOAD = scoped("train")
_UPLOAD["openapi_extra"] = {
    **_UPLOAD["openapi_extra"],
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "encoding": {"file": {"contentType": ", ".join(UPLOAD_MEDIA_TYPES)}}
            }
        }
    },
}
_UPLOAD["responses"] = {
    **_UPLOAD["responses"],
    413: {"description": "A file over AIWEB_LIMITS__MAX_UPLOAD_BYTES."},
    422: {
        "description": "Not a CSV, JSONL or CoNLL file (by its name's suffix, else its part's "
        "Content-Type), not UTF-8, malformed (for a JSONL spans file: a span out of its text, "
        "offsets that are not integers, a label with whitespace …) or empty (no header or no "
        "data row), or more rows than AIWEB_LIMITS__MAX_UPLOAD_ROWS (the message names the "
        "line)."
    },
}


@router.post("", status_code=201, **_UPLOAD)
async def upload_dataset(
    file: Annotated[
        UploadFile,
        File(
            description="A CSV (with a header row), JSONL (scalar values; or span "
            'annotations: {"text", "spans": [{"start", "end", "label"}]} a line) or CoNLL '
            "(.conll, .iob, .bio: token and tag per line) file, UTF-8."
        ),
    ],
    request: Request,
    response: Response,
    service: DatasetsDep,
    registry: RegistryDep,
) -> DatasetOut:
    """Upload a data file for training or batch prediction.

    The file part is a CSV (a header row, then at least one data row), JSONL (one
    JSON object a line, at least one) or CoNLL (a token and its tag a line) file in UTF-8:
    its name's suffix (``.csv``, ``.jsonl``, ``.ndjson``, ``.conll``, ``.iob``, ``.bio``),
    else the part's ``Content-Type`` (``text/csv``, ``application/jsonl``,
    ``application/x-ndjson`` …), says which. A JSONL file whose first line has an array as
    its ``"spans"`` value is a spans file (format ``spans``, columns ``text`` and
    ``spans``): texts with span annotations, ``{"text": "…", "spans": [{"start": 0,
    "end": 5, "label": "PER"}]}`` a line, offsets in characters, ``end`` exclusive (the
    layout of spaCy's and Prodigy's span files). The file is checked whole before it is
    kept: another type, bad UTF-8, malformed rows (a spans file: a span outside its text,
    offsets that are not integers, a label holding whitespace …), no data row, or more
    rows than ``AIWEB_LIMITS__MAX_UPLOAD_ROWS`` get a 422 naming the line; a file over
    ``AIWEB_LIMITS__MAX_UPLOAD_BYTES`` gets a 413. Jobs say which formats they read: a
    spans or CoNLL file is refused at submit by jobs that read records (CSV, JSONL).
    """
    who = actor(request)
    dataset = await anyio.to_thread.run_sync(
        lambda: service.upload(file.file, file.filename, file.content_type, actor=who)
    )
    await anyio.to_thread.run_sync(
        lambda: registry.record(
            who,
            "dataset.upload",
            f"dataset:{dataset.id}",
            after={"name": dataset.name, "rows": dataset.rows, "sha256": dataset.sha256},
            request_id=request_id(request),
        )
    )
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetOut.of(dataset)


@router.get("", **scoped("train"))
async def list_datasets(
    service: DatasetsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DatasetList:
    """Uploaded datasets, newest first."""
    items, total = await anyio.to_thread.run_sync(lambda: service.list(limit=limit, offset=offset))
    return DatasetList(
        datasets=[DatasetOut.of(d) for d in items],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=next_offset(offset, len(items), total),
    )


@router.get("/{dataset_id}", **scoped("train"))
async def get_dataset(
    dataset_id: Annotated[str, Path(max_length=64)], service: DatasetsDep
) -> DatasetOut:
    """One uploaded dataset."""
    return DatasetOut.of(await anyio.to_thread.run_sync(service.get, dataset_id))


_DELETE = scoped("train")
_DELETE["responses"] = {
    **_DELETE["responses"],
    404: {"description": "No such dataset."},
    409: {"description": "A pending or running job, or a schedule, uses it (named)."},
}


@router.delete("/{dataset_id}", status_code=204, **_DELETE)
async def delete_dataset(
    dataset_id: Annotated[str, Path(max_length=64)],
    request: Request,
    service: DatasetsDep,
    registry: RegistryDep,
) -> Response:
    """Delete an uploaded dataset and its stored file (audited as ``dataset.delete``).

    The scope is the one that uploads (``train``). Refused (409) while a pending or
    running job, or a retraining schedule, names the dataset (``dataset_id``,
    ``eval_dataset_id``): wait for the job (or cancel it) and change the schedule first.
    Finished jobs and the models trained on it keep its id and sha256 in their lineage.
    """
    gone = await anyio.to_thread.run_sync(service.delete, dataset_id)
    await anyio.to_thread.run_sync(
        lambda: registry.record(
            actor(request),
            "dataset.delete",
            f"dataset:{gone.id}",
            before={"name": gone.name, "rows": gone.rows, "sha256": gone.sha256},
            request_id=request_id(request),
        )
    )
    return Response(status_code=204)
