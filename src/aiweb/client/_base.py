"""What :class:`~aiweb.client.Client` and :class:`~aiweb.client.AsyncClient` share: the
calls (method, path, body, parser), the retry rule and the error mapping."""

from __future__ import annotations

import email.utils
import functools
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from aiweb._version import __version__
from aiweb.client import models as m

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: Statuses retried for every call: the server did not act on the request.
RETRY_STATUSES = frozenset({429, 503})
USER_AGENT = f"aiweb-client/{__version__}"
#: What ``upload_dataset`` and ``upload_document`` accept: a path, or a binary file object.
FileLike = str | os.PathLike[str] | IO[bytes]
#: ``wait_job``'s progress callback: called with the job after each poll that changed it.
Progress = Callable[[m.Job], object]


def seg(value: object) -> str:
    """``value`` as one URL path segment (``/`` and the rest escaped)."""
    return quote(str(value), safe="")


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda r: cls.model_validate_json(r.content)


@functools.cache
def _list_adapter(cls: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[cls])  # type: ignore[valid-type]


def _list(cls: type[M], key: str | None = None) -> Callable[[httpx.Response], list[M]]:
    def parse(r: httpx.Response) -> list[M]:
        data = r.json()
        result: list[M] = _list_adapter(cls).validate_python(data[key] if key else data)
        return result

    return parse


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request, whether resending it is harmless, and its parser."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotent: bool = True
    files: Mapping[str, Any] | None = field(default=None)


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class Calls:
    """The calls of the API, as :class:`Call` values (no I/O)."""

    @staticmethod
    def predict(model: str, inputs: Sequence[str]) -> Call[m.PredictResponse]:
        return Call(
            "POST",
            f"/v1/models/{seg(model)}/predict",
            _model(m.PredictResponse),
            json={"inputs": list(inputs)},
        )

    @staticmethod
    def explain(
        model: str, inputs: Sequence[str], target: str | None, top_k: int
    ) -> Call[m.ExplainResponse]:
        body: dict[str, Any] = {"inputs": list(inputs), "top_k": top_k}
        if target is not None:
            body["target"] = target
        return Call(
            "POST", f"/v1/models/{seg(model)}/explain", _model(m.ExplainResponse), json=body
        )

    @staticmethod
    def embed(model: str, inputs: Sequence[str]) -> Call[m.EmbedResponse]:
        return Call(
            "POST",
            f"/v1/models/{seg(model)}/embed",
            _model(m.EmbedResponse),
            json={"inputs": list(inputs)},
        )

    @staticmethod
    def recommend(
        user_id: str,
        *,
        n: int,
        model: str | None,
        explain: bool,
        exclude_seen: bool,
        exclude: Sequence[str] | None,
        category: str | None,
        include: str | None,
    ) -> Call[list[m.Recommended]]:
        params = _clean(
            {
                "n": n,
                "model": model,
                "explain": "true" if explain else None,
                "exclude_seen": None if exclude_seen else "false",
                "exclude": list(exclude) if exclude else None,
                "category": category,
                "include": include,
            }
        )
        return Call(
            "GET",
            f"/v1/users/{seg(user_id)}/recommendations",
            _list(m.Recommended),
            params=params,
        )

    @staticmethod
    def similar(
        item_id: str,
        *,
        n: int,
        model: str | None,
        explain: bool,
        category: str | None,
        include: str | None,
    ) -> Call[list[m.SimilarItem]]:
        params = _clean(
            {
                "n": n,
                "model": model,
                "explain": "true" if explain else None,
                "category": category,
                "include": include,
            }
        )
        return Call("GET", f"/v1/items/{seg(item_id)}/similar", _list(m.SimilarItem), params=params)

    @staticmethod
    def search(
        collection: str,
        query: str,
        *,
        top_k: int,
        filter: Mapping[str, Any] | None,
        mode: str | None,
    ) -> Call[m.SearchResult]:
        body: dict[str, Any] = {"query": query, "top_k": top_k}
        if filter is not None:
            body["filter"] = dict(filter)
        if mode is not None:
            body["mode"] = mode
        return Call(
            "POST",
            f"/v1/collections/{seg(collection)}/search",
            _model(m.SearchResult),
            json=body,
        )

    @staticmethod
    def collection(name: str) -> Call[m.CollectionOut]:
        return Call("GET", f"/v1/collections/{seg(name)}", _model(m.CollectionOut))

    @staticmethod
    def upload_dataset(file: IO[bytes], name: str, content_type: str) -> Call[m.Dataset]:
        return Call(
            "POST",
            "/v1/datasets",
            _model(m.Dataset),
            files={"file": (name, file, content_type)},
            idempotent=False,
        )

    @staticmethod
    def datasets(limit: int | None, offset: int | None) -> Call[m.DatasetList]:
        params = _clean({"limit": limit, "offset": offset})
        return Call("GET", "/v1/datasets", _model(m.DatasetList), params=params)

    @staticmethod
    def dataset(dataset_id: str) -> Call[m.Dataset]:
        return Call("GET", f"/v1/datasets/{seg(dataset_id)}", _model(m.Dataset))

    @staticmethod
    def upload_document(
        file: IO[bytes], name: str, content_type: str, redact_pii: bool
    ) -> Call[m.Document]:
        files: dict[str, Any] = {"file": (name, file, content_type)}
        if redact_pii:
            files["redact_pii"] = (None, b"true")  # a form field, not a file
        return Call("POST", "/v1/documents", _model(m.Document), files=files, idempotent=False)

    @staticmethod
    def documents(limit: int | None, offset: int | None) -> Call[m.DocumentList]:
        params = _clean({"limit": limit, "offset": offset})
        return Call("GET", "/v1/documents", _model(m.DocumentList), params=params)

    @staticmethod
    def document(document_id: str) -> Call[m.Document]:
        return Call("GET", f"/v1/documents/{seg(document_id)}", _model(m.Document))

    @staticmethod
    def document_text(document_id: str) -> Call[m.DocumentText]:
        return Call("GET", f"/v1/documents/{seg(document_id)}/text", _model(m.DocumentText))

    @staticmethod
    def delete_document(document_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/documents/{seg(document_id)}", _ignore)

    @staticmethod
    def submit_job(spec: Mapping[str, Any]) -> Call[m.Job]:
        return Call("POST", "/v1/jobs", _model(m.Job), json=dict(spec), idempotent=False)

    @staticmethod
    def job(job_id: str) -> Call[m.Job]:
        return Call("GET", f"/v1/jobs/{seg(job_id)}", _model(m.Job))

    @staticmethod
    def jobs(
        status: str | None, type: str | None, limit: int | None, offset: int | None
    ) -> Call[m.JobList]:
        params = _clean({"status": status, "type": type, "limit": limit, "offset": offset})
        return Call("GET", "/v1/jobs", _model(m.JobList), params=params)

    @staticmethod
    def cancel_job(job_id: str) -> Call[m.Job]:
        return Call("POST", f"/v1/jobs/{seg(job_id)}/cancel", _model(m.Job))

    @staticmethod
    def feedback(
        prediction_id: str,
        label: str | None,
        comment: str | None,
        value: float | None = None,
        entities: Sequence[Mapping[str, Any]] | None = None,
    ) -> Call[m.Feedback]:
        body: dict[str, Any]
        if entities is not None:
            body = {"entities": [dict(e) for e in entities]}
        elif value is not None:
            body = {"value": value}
        else:
            body = {"label": label}
        if comment is not None:
            body["comment"] = comment
        return Call(
            "POST",
            f"/v1/predictions/{seg(prediction_id)}/feedback",
            _model(m.Feedback),
            json=body,
            idempotent=False,
        )

    @staticmethod
    def models() -> Call[list[m.ModelSummary]]:
        return Call("GET", "/v1/models", _list(m.ModelSummary, "models"))

    @staticmethod
    def model(name: str) -> Call[m.ModelDetail]:
        return Call("GET", f"/v1/models/{seg(name)}", _model(m.ModelDetail))

    @staticmethod
    def model_version(name: str, version: int) -> Call[m.ModelVersion]:
        return Call(
            "GET", f"/v1/models/{seg(name)}/versions/{int(version)}", _model(m.ModelVersion)
        )

    @staticmethod
    def set_alias(name: str, alias: str, version: int) -> Call[m.AliasEvent]:
        return Call(
            "PUT",
            f"/v1/models/{seg(name)}/aliases/{seg(alias)}",
            _model(m.AliasEvent),
            json={"version": int(version)},
        )


def open_upload(path_or_file: FileLike, name: str | None) -> tuple[IO[bytes], str, bool]:
    """The file object to send, its file name, and whether the caller must close it."""
    if isinstance(path_or_file, str | os.PathLike):
        path = Path(path_or_file)
        return path.open("rb"), name or path.name, True
    fname = name or Path(str(getattr(path_or_file, "name", "") or "data.csv")).name
    return path_or_file, fname, False


def content_type_of(name: str) -> str:
    """The upload's media type, from its suffix (the server reads CSV, JSONL and CoNLL)."""
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "application/jsonl"
    if lower.endswith((".conll", ".iob", ".bio")):
        return "text/x-conll"
    return "text/csv"


def document_type_of(name: str) -> str:
    """A document upload's media type, from its suffix (the server goes by the bytes)."""
    lower = name.lower()
    if lower.endswith(".pdf"):
        return "application/pdf"
    if lower.endswith(".docx"):
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    return "text/plain"


def retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta seconds or an HTTP date), else ``None``."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a call again.

    ``retries``: resends after the first attempt. 429 and 503 are retried for every call
    (the server did not act on it), after ``Retry-After`` when the answer has one, and not
    at all when it asks for more than ``max_wait`` seconds. A connection that could not be
    opened is retried for every call; one that broke after the request was sent, only for
    idempotent calls. Without ``Retry-After`` the wait is ``backoff * 2**attempt`` with
    jitter, at most ``max_wait``.
    """

    retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def wait_for_status(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before resending after ``response``, or ``None``: do not."""
        if attempt >= self.retries or response.status_code not in RETRY_STATUSES:
            return None
        after = retry_after_s(response)
        if after is None:
            return self.backoff_s(attempt)
        return after if after <= self.max_wait else None

    def wait_for_error(
        self, attempt: int, exc: httpx.TransportError, idempotent: bool
    ) -> float | None:
        """Seconds to wait before resending after a transport error, or ``None``."""
        if attempt >= self.retries:
            return None
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        if not (unsent or idempotent):
            return None
        return self.backoff_s(attempt)

    def backoff_s(self, attempt: int) -> float:
        base = self.backoff * (2**attempt)
        return float(min(self.max_wait, base * (0.5 + random.random() / 2)))  # noqa: S311


def headers_for(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def rewind(call: Call[Any]) -> None:
    """Seek an upload's file back to where it started, before a resend."""
    if call.files:
        for value in call.files.values():
            f = value[1]
            if hasattr(f, "seek"):
                f.seek(0)


def _ignore(response: httpx.Response) -> None:
    """A parser for calls whose answer is read otherwise (streamed)."""
    return
