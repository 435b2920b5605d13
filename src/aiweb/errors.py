"""The exception tree of aiweb. Each class carries its HTTP status and problem slug.

Services raise these; one handler turns any of them into an RFC 9457
``application/problem+json`` response, and the CLI prints their message.

::

    AiwebError (500)
    ├── NotFoundError (404)
    │   ├── ModelNotFound
    │   ├── ModelVersionNotFound
    │   ├── AliasNotFound
    │   ├── DatasetNotFound
    │   ├── JobNotFound
    │   ├── ScheduleNotFound
    │   └── PredictionNotFound
    ├── UnauthorizedError (401, with WWW-Authenticate)
    ├── ForbiddenError (403)
    ├── ConflictError (409)
    ├── InvalidInputError (422)
    │   └── DataFormatError
    ├── PayloadTooLargeError (413)
    ├── ServiceUnavailableError (503)
    │   ├── ModelNotReadyError
    │   ├── QueueFullError
    │   └── BrokerUnavailableError
    └── DatasetUnavailableError (502: the dataset's publisher could not be reached)
"""

from __future__ import annotations


class AiwebError(Exception):
    """Base of every error aiweb raises on purpose.

    Attributes:
        status: HTTP status code the API answers with.
        slug: last part of the problem ``type`` URI (``/problems/<slug>``).
        title: short, constant summary of the problem type.
        detail: what happened this time, and what to do.
    """

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class NotFoundError(AiwebError):
    status = 404
    slug = "not-found"
    title = "Not found"


class ModelNotFound(NotFoundError):
    slug = "model-not-found"
    title = "Model not found"


class EmbeddingModelNotInstalled(ModelNotFound):
    """The sentence-embedding model is not in the registry (``aiweb embeddings install``)."""

    slug = "embedding-model-not-installed"
    title = "Embedding model not installed"


class ModelVersionNotFound(NotFoundError):
    slug = "model-version-not-found"
    title = "Model version not found"


class AliasNotFound(NotFoundError):
    slug = "alias-not-found"
    title = "Alias not found"


class DatasetNotFound(NotFoundError):
    slug = "dataset-not-found"
    title = "Dataset not found"


class JobNotFound(NotFoundError):
    slug = "job-not-found"
    title = "Job not found"


class ScheduleNotFound(NotFoundError):
    slug = "schedule-not-found"
    title = "Schedule not found"


class PredictionNotFound(NotFoundError):
    slug = "prediction-not-found"
    title = "Prediction not found"


class UnsafeArtifactError(AiwebError):
    """A stored model artifact is refused at load: not of its format, or holding types
    the loader does not trust. The server's state, not the client's request: 500."""

    slug = "unsafe-artifact"
    title = "Artifact refused"


class ConflictError(AiwebError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidInputError(AiwebError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class DataFormatError(InvalidInputError):
    slug = "data-format"
    title = "Malformed data"


class PayloadTooLargeError(AiwebError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class ServiceUnavailableError(AiwebError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class ModelNotReadyError(ServiceUnavailableError):
    slug = "model-not-ready"
    title = "Model not ready"


class QueueFullError(ServiceUnavailableError):
    slug = "queue-full"
    title = "Too many requests waiting for this model"


class BrokerUnavailableError(ServiceUnavailableError):
    """The job broker (Redis or RabbitMQ) could not be reached; no job was created."""

    slug = "broker-unavailable"
    title = "Job broker unavailable"


class DatasetUnavailableError(AiwebError):
    status = 502
    slug = "dataset-unavailable"
    title = "Dataset could not be downloaded"


class UnauthorizedError(AiwebError):
    """No API key, or one that is malformed, unknown, revoked or expired (401)."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": 'Bearer realm="aiweb"', **(headers or {})}
        )


class ForbiddenError(AiwebError):
    """A valid key without the scope the route needs (403)."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"
