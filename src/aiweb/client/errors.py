"""The errors :mod:`aiweb.client` raises: the server's :mod:`aiweb.errors` tree, on the client.

A problem answer (RFC 9457 ``application/problem+json``) becomes the exception whose
server class has the problem's ``type`` slug (``/problems/model-not-found`` →
:class:`ModelNotFound`). Each class here subclasses both the server's class of the same
name and this module's parent class, so ``except aiweb.client.errors.NotFoundError``,
``except aiweb.errors.ModelNotFound`` and ``except aiweb.client.AiwebError`` all catch it.

Each exception carries ``status`` (the HTTP status answered), ``detail``, ``problem``
(the problem body as a dict: ``type``, ``title``, ``status``, ``detail``, ``instance``,
``request_id``, and e.g. ``errors`` for a request validation failure) and ``headers``
(the response's headers, e.g. ``Retry-After``). A problem type the client does not know,
or an answer that is not a problem, gives the class of its status (404 →
:class:`NotFoundError`, 422 → :class:`InvalidInputError` …), else :class:`AiwebError`.
"""

from __future__ import annotations

from typing import Any

import httpx

from aiweb import errors as server

__all__ = [
    "AiwebError",
    "AliasNotFound",
    "AssistantNotFound",
    "BrokerUnavailableError",
    "CollectionNotFound",
    "ConflictError",
    "ConversationNotFound",
    "CorruptArtifactError",
    "DataFormatError",
    "DatasetNotFound",
    "DatasetUnavailableError",
    "DocumentNotFound",
    "EmbeddingModelNotInstalled",
    "ExportCheckError",
    "ExportUnavailableError",
    "ForbiddenError",
    "ImageError",
    "ImageNotFound",
    "ImageTooLarge",
    "InsecureConfigurationError",
    "InvalidInputError",
    "InvalidRowError",
    "ItemNotFound",
    "JobFileNotFound",
    "JobNotFound",
    "KeyNotFound",
    "ModelNotFound",
    "ModelNotReadyError",
    "ModelVersionNotFound",
    "NotFittedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PredictionNotFound",
    "QueueFullError",
    "RateLimitedError",
    "RolloutNotFound",
    "ScheduleNotFound",
    "ServiceUnavailableError",
    "StaleConversation",
    "TransportError",
    "UnauthorizedError",
    "UnsafeArtifactError",
    "UnsafeArtifactPath",
    "UnsupportedImageFormat",
    "UnsupportedMediaTypeError",
    "UploadedDocumentNotFound",
    "UserNotFound",
    "error_from_response",
]


class AiwebError(server.AiwebError):
    """Base of the errors the client raises: an error answer of the server.

    Attributes:
        status: the HTTP status answered.
        detail: the problem's ``detail`` (or the body's text, when not a problem).
        problem: the problem body (``{}`` when the answer was not a problem).
        headers: the answer's headers.
    """

    problem: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


class NotFoundError(server.NotFoundError, AiwebError):
    """``/problems/not-found`` (404)."""


class ModelNotFound(server.ModelNotFound, NotFoundError):
    """``/problems/model-not-found`` (404)."""


class EmbeddingModelNotInstalled(server.EmbeddingModelNotInstalled, ModelNotFound):
    """``/problems/embedding-model-not-installed`` (404)."""


class ModelVersionNotFound(server.ModelVersionNotFound, NotFoundError):
    """``/problems/model-version-not-found`` (404)."""


class AliasNotFound(server.AliasNotFound, NotFoundError):
    """``/problems/alias-not-found`` (404)."""


class DatasetNotFound(server.DatasetNotFound, NotFoundError):
    """``/problems/dataset-not-found`` (404)."""


class JobNotFound(server.JobNotFound, NotFoundError):
    """``/problems/job-not-found`` (404)."""


class JobFileNotFound(server.JobFileNotFound, NotFoundError):
    """``/problems/job-file-not-found`` (404)."""


class ScheduleNotFound(server.ScheduleNotFound, NotFoundError):
    """``/problems/schedule-not-found`` (404)."""


class PredictionNotFound(server.PredictionNotFound, NotFoundError):
    """``/problems/prediction-not-found`` (404)."""


class KeyNotFound(server.KeyNotFound, NotFoundError):
    """``/problems/key-not-found`` (404)."""


class UserNotFound(server.UserNotFound, NotFoundError):
    """``/problems/user-not-found`` (404)."""


class ItemNotFound(server.ItemNotFound, NotFoundError):
    """``/problems/item-not-found`` (404)."""


class CollectionNotFound(server.CollectionNotFound, NotFoundError):
    """``/problems/collection-not-found`` (404)."""


class DocumentNotFound(server.DocumentNotFound, NotFoundError):
    """``/problems/document-not-found`` (404)."""


class UploadedDocumentNotFound(server.UploadedDocumentNotFound, NotFoundError):
    """``/problems/uploaded-document-not-found`` (404)."""


class ImageNotFound(server.ImageNotFound, NotFoundError):
    """``/problems/image-not-found`` (404)."""


class RolloutNotFound(server.RolloutNotFound, NotFoundError):
    """``/problems/rollout-not-found`` (404)."""


class AssistantNotFound(server.AssistantNotFound, NotFoundError):
    """``/problems/assistant-not-found`` (404)."""


class ConversationNotFound(server.ConversationNotFound, NotFoundError):
    """``/problems/conversation-not-found`` (404)."""


class UnsafeArtifactError(server.UnsafeArtifactError, AiwebError):
    """``/problems/unsafe-artifact`` (500)."""


class CorruptArtifactError(server.CorruptArtifactError, AiwebError):
    """``/problems/corrupt-artifact`` (500)."""


class NotFittedError(server.NotFittedError, AiwebError):
    """``/problems/not-fitted`` (500)."""


class ConflictError(server.ConflictError, AiwebError):
    """``/problems/conflict`` (409)."""


class StaleConversation(server.StaleConversation, ConflictError):
    """``/problems/conversation-changed`` (409)."""


class InvalidInputError(server.InvalidInputError, AiwebError):
    """``/problems/invalid-input`` (422)."""


class DataFormatError(server.DataFormatError, InvalidInputError):
    """``/problems/data-format`` (422)."""


class InvalidRowError(server.InvalidRowError, DataFormatError):
    """``/problems/invalid-row`` (422): a tabular row its model refuses; the detail names
    the row and the column."""


class ImageError(server.ImageError, InvalidInputError):
    """``/problems/invalid-image`` (422): an empty, truncated, corrupt or animated image,
    or a polyglot."""


class UnsafeArtifactPath(server.UnsafeArtifactPath, InvalidInputError):
    """``/problems/unsafe-artifact-path`` (422)."""


class PayloadTooLargeError(server.PayloadTooLargeError, AiwebError):
    """``/problems/payload-too-large`` (413)."""


class ImageTooLarge(server.ImageTooLarge, PayloadTooLargeError):
    """``/problems/image-too-large`` (413): over the image byte or pixel limit."""


class UnsupportedMediaTypeError(server.UnsupportedMediaTypeError, AiwebError):
    """``/problems/unsupported-media-type`` (415)."""


class UnsupportedImageFormat(server.UnsupportedImageFormat, UnsupportedMediaTypeError):
    """``/problems/unsupported-image-format`` (415): not a JPEG, PNG or WebP image."""


class RateLimitedError(server.RateLimitedError, AiwebError):
    """``/problems/rate-limited`` (429)."""


class ServiceUnavailableError(server.ServiceUnavailableError, AiwebError):
    """``/problems/service-unavailable`` (503)."""


class ModelNotReadyError(server.ModelNotReadyError, ServiceUnavailableError):
    """``/problems/model-not-ready`` (503)."""


class QueueFullError(server.QueueFullError, ServiceUnavailableError):
    """``/problems/queue-full`` (503)."""


class BrokerUnavailableError(server.BrokerUnavailableError, ServiceUnavailableError):
    """``/problems/broker-unavailable`` (503)."""


class ExportUnavailableError(server.ExportUnavailableError, AiwebError):
    """``/problems/export-unavailable`` (503)."""


class ExportCheckError(server.ExportCheckError, AiwebError):
    """``/problems/export-check-failed`` (500)."""


class DatasetUnavailableError(server.DatasetUnavailableError, AiwebError):
    """``/problems/dataset-unavailable`` (502)."""


class InsecureConfigurationError(server.InsecureConfigurationError, AiwebError):
    """``/problems/insecure-configuration`` (500)."""


class UnauthorizedError(server.UnauthorizedError, AiwebError):
    """``/problems/unauthorized`` (401)."""


class ForbiddenError(server.ForbiddenError, AiwebError):
    """``/problems/forbidden`` (403)."""


class TransportError(AiwebError):
    """The server could not be reached, or the connection broke, after the retries
    (``status`` 0; the :mod:`httpx` error is the ``__cause__``)."""

    status = 0
    slug = "transport-error"
    title = "Server unreachable"


def _all_classes() -> list[type[AiwebError]]:
    found: list[type[AiwebError]] = []
    todo: list[type[AiwebError]] = [AiwebError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(c for c in cls.__subclasses__() if c.__module__ == __name__)
    return found


#: Problem ``type`` slug → class.
BY_SLUG: dict[str, type[AiwebError]] = {c.slug: c for c in _all_classes()}
BY_SLUG["validation"] = InvalidInputError  # FastAPI's request validation (``errors`` member)
#: Status → class, for a problem type the client does not know.
BY_STATUS: dict[int, type[AiwebError]] = {
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidInputError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def error_from_response(response: httpx.Response) -> AiwebError:
    """The exception for an error answer (status >= 400) of the server.

    The problem's ``type`` (``/problems/<slug>``) picks the class; else the status does.
    The response body must have been read.
    """
    problem: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        problem = body
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1]
    cls = BY_SLUG.get(slug)
    if cls is None or (cls.status != response.status_code and slug != "validation"):
        cls = BY_STATUS.get(response.status_code, AiwebError)
    detail = problem.get("detail")
    if not isinstance(detail, str):
        detail = response.text[:500] or response.reason_phrase
    exc = cls.__new__(cls)
    server.AiwebError.__init__(exc, detail, headers=dict(response.headers))
    exc.status = response.status_code
    exc.problem = problem
    return exc
