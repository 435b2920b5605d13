"""The blocking client: :class:`Client`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from aiweb.client import models as m
from aiweb.client._base import (
    Call,
    Calls,
    FileLike,
    Progress,
    RetryPolicy,
    _ignore,
    content_type_of,
    document_type_of,
    headers_for,
    open_upload,
    rewind,
    seg,
)
from aiweb.client.errors import TransportError, error_from_response

T = TypeVar("T")


class Client:
    """A blocking client of an aiweb server's ``/v1`` API, on :mod:`httpx`.

    ``Client("http://127.0.0.1:8000", api_key="aiw_…")``; use it as a context manager, or
    call :meth:`close`. Each method is named after the route it calls and returns the
    answer as a typed model of :mod:`aiweb.client.models`. An error answer raises the
    :mod:`aiweb.client.errors` class of its problem type (e.g. ``ModelNotFound``, 404).
    429 and 503 are retried after ``Retry-After`` (see :class:`RetryPolicy`). There is no
    ``send_message`` yet: the server has no assistant route.

    Args:
        base_url: the server's address, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <key>``.
        timeout: seconds per request (connect, read, write).
        retries: resends after the first attempt (0: none).
        max_retry_wait: longest wait honoured before a resend, in seconds; a longer
            ``Retry-After`` raises at once.
        transport: an :mod:`httpx` transport (tests, proxies, mounted apps).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = RetryPolicy(retries=retries, backoff=backoff, max_wait=max_retry_wait)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers_for(api_key),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # ---- the transport ------------------------------------------------------------------

    def _send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            rewind(call)
            request = self._http.build_request(
                call.method, call.path, params=call.params, json=call.json, files=call.files
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                wait = self.retry.wait_for_error(attempt, exc, call.idempotent)
                if wait is None:
                    raise TransportError(f"{call.method} {call.path}: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                response.read()
                response.close()
                wait = self.retry.wait_for_status(attempt, response)
                if wait is None:
                    raise error_from_response(response)
            time.sleep(wait)
            attempt += 1

    def _run(self, call: Call[T]) -> T:
        return call.parse(self._send(call))

    # ---- models -------------------------------------------------------------------------

    def predict(self, model: str, inputs: Sequence[str]) -> m.PredictResponse:
        """``POST /v1/models/{model}/predict``: one prediction per text, in order.

        ``model`` is a name, ``name@alias`` or ``name:version``. Raises ``ModelNotFound``
        (404), ``InvalidInputError`` (422), ``PayloadTooLargeError`` (413).
        """
        return self._run(Calls.predict(model, inputs))

    def explain(
        self, model: str, inputs: Sequence[str], target: str | None = None, top_k: int = 10
    ) -> m.ExplainResponse:
        """``POST /v1/models/{model}/explain``: why each text got its answer (or
        ``target``), the ``top_k`` largest contributions (0: all)."""
        return self._run(Calls.explain(model, inputs, target, top_k))

    def embed(self, model: str, inputs: Sequence[str]) -> m.EmbedResponse:
        """``POST /v1/models/{model}/embed``: one vector per text."""
        return self._run(Calls.embed(model, inputs))

    def models(self) -> list[m.ModelSummary]:
        """``GET /v1/models``: every model, its aliases and latest version."""
        return self._run(Calls.models())

    def model(self, name: str) -> m.ModelDetail:
        """``GET /v1/models/{name}``: the model and its versions (``ModelNotFound``)."""
        return self._run(Calls.model(name))

    def model_version(self, name: str, version: int) -> m.ModelVersion:
        """``GET /v1/models/{name}/versions/{version}``."""
        return self._run(Calls.model_version(name, version))

    def set_alias(self, name: str, alias: str, version: int) -> m.AliasEvent:
        """``PUT /v1/models/{name}/aliases/{alias}``: point ``alias`` at ``version``."""
        return self._run(Calls.set_alias(name, alias, version))

    def feedback(
        self,
        prediction_id: str,
        label: str | None = None,
        comment: str | None = None,
        *,
        value: float | None = None,
        entities: Sequence[Mapping[str, Any]] | None = None,
    ) -> m.Feedback:
        """``POST /v1/predictions/{prediction_id}/feedback``: the true label of a
        prediction, or (``value``) the true number of a predicted one, or (``entities``)
        the corrected list of spans ``[{"start", "end", "label"}, …]`` of a prediction of
        entities (the answer then has ``correct``: exact match, and ``counts``)
        (``PredictionNotFound`` when the id is unknown). Not resent on a broken
        connection."""
        return self._run(Calls.feedback(prediction_id, label, comment, value, entities))

    # ---- recommendations and search -----------------------------------------------------

    def recommend(
        self,
        user_id: str,
        n: int = 10,
        model: str | None = None,
        explain: bool = False,
        *,
        exclude_seen: bool = True,
        exclude: Sequence[str] | None = None,
        category: str | None = None,
        include: str | None = None,
    ) -> list[m.Recommended]:
        """``GET /v1/users/{user_id}/recommendations``: ``n`` items for the user, best
        first (``include="item"`` adds each item's summary; ``explain`` the reasons)."""
        return self._run(
            Calls.recommend(
                user_id,
                n=n,
                model=model,
                explain=explain,
                exclude_seen=exclude_seen,
                exclude=exclude,
                category=category,
                include=include,
            )
        )

    def similar(
        self,
        item_id: str,
        n: int = 10,
        model: str | None = None,
        explain: bool = False,
        *,
        category: str | None = None,
        include: str | None = None,
    ) -> list[m.SimilarItem]:
        """``GET /v1/items/{item_id}/similar``: ``n`` items like this one, best first."""
        return self._run(
            Calls.similar(
                item_id, n=n, model=model, explain=explain, category=category, include=include
            )
        )

    def search(
        self,
        collection: str,
        query: str,
        top_k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        mode: str | None = None,
    ) -> m.SearchResult:
        """``POST /v1/collections/{collection}/search``: the ``top_k`` best documents
        (``filter``: metadata equalities; ``mode``: ``hybrid``, the server's default)."""
        return self._run(Calls.search(collection, query, top_k=top_k, filter=filter, mode=mode))

    def collection(self, name: str) -> m.CollectionOut:
        """``GET /v1/collections/{name}``: a search collection (``CollectionNotFound``)."""
        return self._run(Calls.collection(name))

    # ---- datasets -----------------------------------------------------------------------

    def upload_dataset(self, path_or_file: FileLike, name: str | None = None) -> m.Dataset:
        """``POST /v1/datasets``: upload a CSV, JSONL or CoNLL file, streamed from disk.

        ``path_or_file``: a path or a binary file object (read from its start); ``name``:
        the file name the server records (default: the file's own). Raises
        ``InvalidInputError``/``DataFormatError`` (422) for a malformed file.
        """
        file, fname, owned = open_upload(path_or_file, name)
        try:
            return self._run(Calls.upload_dataset(file, fname, content_type_of(fname)))
        finally:
            if owned:
                file.close()

    def datasets(self, limit: int | None = None, offset: int | None = None) -> m.DatasetList:
        """``GET /v1/datasets``: a page of uploaded datasets, newest first."""
        return self._run(Calls.datasets(limit, offset))

    def dataset(self, dataset_id: str) -> m.Dataset:
        """``GET /v1/datasets/{dataset_id}``."""
        return self._run(Calls.dataset(dataset_id))

    # ---- documents ----------------------------------------------------------------------

    def upload_document(
        self, path_or_file: FileLike, name: str | None = None, *, redact_pii: bool = False
    ) -> m.Document:
        """``POST /v1/documents``: upload a PDF, DOCX or UTF-8 text file and read its text.

        ``path_or_file``: a path or a binary file object (read from its start); ``name``:
        the file name the server records (default: the file's own; the server tells the
        type by the bytes). ``redact_pii``: replace e-mail addresses, phone numbers and URLs
        before anything is stored, and keep no original. Raises ``PayloadTooLargeError``
        (413: too large, too many pages), ``UnsupportedMediaTypeError`` (415) and
        ``DataFormatError`` (422: encrypted, malformed, scanned …).
        """
        file, fname, owned = open_upload(path_or_file, name)
        try:
            return self._run(
                Calls.upload_document(file, fname, document_type_of(fname), redact_pii)
            )
        finally:
            if owned:
                file.close()

    def documents(self, limit: int | None = None, offset: int | None = None) -> m.DocumentList:
        """``GET /v1/documents``: a page of uploaded documents, newest first."""
        return self._run(Calls.documents(limit, offset))

    def document(self, document_id: str) -> m.Document:
        """``GET /v1/documents/{document_id}`` (``UploadedDocumentNotFound``)."""
        return self._run(Calls.document(document_id))

    def document_text(self, document_id: str) -> m.DocumentText:
        """``GET /v1/documents/{document_id}/text``: the text, page by page, each page
        with its offsets in the whole text."""
        return self._run(Calls.document_text(document_id))

    def delete_document(self, document_id: str) -> None:
        """``DELETE /v1/documents/{document_id}``: the document, its text and its file."""
        self._run(Calls.delete_document(document_id))

    # ---- jobs ---------------------------------------------------------------------------

    def submit_job(self, type: str, model: str, **spec: Any) -> m.Job:
        """``POST /v1/jobs``: submit a job, e.g. ``submit_job("train", "reviews",
        dataset_id=…)`` or ``submit_job("batch-predict", "reviews", dataset_id=…)``; the
        other fields of the job's spec as keywords (docs/architecture.md). Not resent on a
        broken connection (it could create the job twice)."""
        return self._run(Calls.submit_job({"type": type, "model": model, **spec}))

    def job(self, job_id: str) -> m.Job:
        """``GET /v1/jobs/{job_id}``: status, progress, result or error (``JobNotFound``)."""
        return self._run(Calls.job(job_id))

    def jobs(
        self,
        status: str | None = None,
        type: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> m.JobList:
        """``GET /v1/jobs``: a page of jobs, newest first."""
        return self._run(Calls.jobs(status, type, limit, offset))

    def cancel_job(self, job_id: str) -> m.Job:
        """``POST /v1/jobs/{job_id}/cancel``."""
        return self._run(Calls.cancel_job(job_id))

    def wait_job(
        self,
        job_id: str,
        progress: Progress | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.5,
    ) -> m.Job:
        """Poll ``GET /v1/jobs/{job_id}`` until the job ends; return it (check ``status``:
        ``succeeded``, ``failed`` or ``cancelled``).

        ``progress`` is called with the :class:`~aiweb.client.models.Job` whenever its
        status, progress or message changed. Raises :class:`TimeoutError` after
        ``timeout`` seconds (``None``: wait for ever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: tuple[str, float, str] | None = None
        while True:
            job = self.job(job_id)
            state = (job.status, job.progress, job.message)
            if progress is not None and state != seen:
                progress(job)
            seen = state
            if job.done:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(poll_interval)

    def iter_job_result(self, job_id: str, chunk_size: int = 65536) -> Iterator[bytes]:
        """``GET /v1/jobs/{job_id}/result``: the job's result file (a batch-predict job's
        CSV), in chunks as they arrive; a job that writes no file (a training, say)
        gives its result as JSON. Raises ``ConflictError`` (409) before the job
        succeeded."""
        response = self._send(Call("GET", f"/v1/jobs/{seg(job_id)}/result", _ignore), stream=True)
        try:
            yield from response.iter_bytes(chunk_size)
        finally:
            response.close()

    def download_job_result(self, job_id: str, dest: str | Path) -> Path:
        """Stream the job's result file to ``dest``; returns ``dest``."""
        path = Path(dest)
        with path.open("wb") as out:
            for chunk in self.iter_job_result(job_id):
                out.write(chunk)
        return path
