"""The exception tree of aiweb. Each class carries its HTTP status and problem slug.

Services raise these; one handler turns any of them into an RFC 9457
``application/problem+json`` response, and the CLI prints their message.

::

    AiwebError (500)
    ├── NotFoundError (404)
    │   ├── ModelNotFound
    │   │   └── EmbeddingModelNotInstalled
    │   ├── ModelVersionNotFound
    │   ├── AliasNotFound
    │   ├── DatasetNotFound
    │   ├── JobNotFound
    │   ├── JobFileNotFound
    │   ├── ScheduleNotFound
    │   ├── PredictionNotFound
    │   ├── KeyNotFound
    │   ├── UserNotFound
    │   ├── ItemNotFound
    │   ├── CollectionNotFound
    │   ├── DocumentNotFound
    │   ├── UploadedDocumentNotFound
    │   ├── ImageNotFound
    │   ├── AssistantNotFound
    │   ├── ConversationNotFound
    │   └── RolloutNotFound
    ├── UnauthorizedError (401, with WWW-Authenticate)
    ├── ForbiddenError (403)
    ├── ConflictError (409)
    │   └── StaleConversation (another writer changed the conversation: read it again)
    ├── InvalidInputError (422)
    │   ├── DataFormatError
    │   │   └── InvalidRowError
    │   ├── ImageError (an image that cannot be decoded safely: corrupt, animated, a polyglot)
    │   └── UnsafeArtifactPath (an artifact URI outside the store)
    ├── PayloadTooLargeError (413)
    │   └── ImageTooLarge (bytes or pixels over the image limits)
    ├── UnsupportedMediaTypeError (415: a file of a type the route does not read)
    │   └── UnsupportedImageFormat (not a JPEG, PNG or WebP image)
    ├── RateLimitedError (429, with Retry-After and RateLimit-*)
    ├── ServiceUnavailableError (503)
    │   ├── ModelNotReadyError
    │   ├── QueueFullError
    │   └── BrokerUnavailableError
    ├── ExportUnavailableError (503: the export's optional dependencies are missing)
    ├── DatasetUnavailableError (502: the dataset's publisher could not be reached)
    ├── UnsafeArtifactError (500: an artifact holds types the loader does not trust)
    ├── CorruptArtifactError (500: an artifact is missing or differs from its sha256)
    ├── ExportCheckError (500: the embedding export disagrees with its source)
    ├── NotFittedError (500: an algorithm scored before it was fitted; also a RuntimeError)
    └── InsecureConfigurationError (500: the server refuses to start)

Every subclass of :class:`AiwebError` is defined here and drawn in this tree
(``tests/unit/test_errors_tree.py`` checks both).
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


class JobFileNotFound(NotFoundError):
    """A job has no file of that name in its directory."""

    slug = "job-file-not-found"
    title = "Job file not found"


class ScheduleNotFound(NotFoundError):
    slug = "schedule-not-found"
    title = "Schedule not found"


class PredictionNotFound(NotFoundError):
    slug = "prediction-not-found"
    title = "Prediction not found"


class KeyNotFound(NotFoundError):
    """No API key has this name."""

    slug = "key-not-found"
    title = "API key not found"


class UserNotFound(NotFoundError):
    """No dashboard user has this name."""

    slug = "user-not-found"
    title = "User not found"


class ItemNotFound(NotFoundError):
    """No live item has this id in the recommendation catalogue (or the model does not know it)."""

    slug = "item-not-found"
    title = "Item not found"


class CollectionNotFound(NotFoundError):
    """No search collection has this name."""

    slug = "collection-not-found"
    title = "Collection not found"


class DocumentNotFound(NotFoundError):
    """No live document has this id in the search collection."""

    slug = "document-not-found"
    title = "Document not found"


class UploadedDocumentNotFound(NotFoundError):
    """No uploaded document (``/v1/documents``) has this id."""

    slug = "uploaded-document-not-found"
    title = "Uploaded document not found"


class ImageNotFound(NotFoundError):
    """No uploaded image (``/v1/images``) has this id."""

    slug = "image-not-found"
    title = "Image not found"


class AssistantNotFound(NotFoundError):
    """No assistant has this name (``/v1/assistants/{name}``)."""

    slug = "assistant-not-found"
    title = "Assistant not found"


class ConversationNotFound(NotFoundError):
    """No conversation has this id (``/v1/conversations/{id}``)."""

    slug = "conversation-not-found"
    title = "Conversation not found"


class RolloutNotFound(NotFoundError):
    """The model has never had a rollout (``/v1/models/{name}/rollout``)."""

    slug = "rollout-not-found"
    title = "Rollout not found"


class UnsafeArtifactError(AiwebError):
    """A stored model artifact is refused at load: not of its format, or holding types
    the loader does not trust. The server's state, not the client's request: 500."""

    slug = "unsafe-artifact"
    title = "Artifact refused"


class CorruptArtifactError(AiwebError):
    """A stored artifact is missing, or its sha256 differs from the one the registry
    recorded; it is not loaded. The server's state: 500."""

    slug = "corrupt-artifact"
    title = "Artifact does not match its checksum"


class NotFittedError(AiwebError, RuntimeError):
    """An algorithm was asked to score before :meth:`fit` or :meth:`from_state`.

    Raised by the recommendation algorithms (:mod:`aiweb.recommendations.algorithms`): a
    programming error, not the client's, so 500. Also a :class:`RuntimeError`, as it was
    before it joined this tree.
    """

    slug = "not-fitted"
    title = "Model is not fitted"


class ConflictError(AiwebError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class StaleConversation(ConflictError):
    """The conversation changed since it was read (another worker's turn, an operator's
    action): read it again and retry."""

    slug = "conversation-changed"
    title = "Conversation changed"


class InvalidInputError(AiwebError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class DataFormatError(InvalidInputError):
    slug = "data-format"
    title = "Malformed data"


class InvalidRowError(DataFormatError):
    """A row (an object of named values) of a predict or explain request that its model
    refuses; the detail starts ``row <i>, column '<name>': …``."""

    slug = "invalid-row"
    title = "Invalid row"


class ImageError(InvalidInputError):
    """An image that is refused though its format is one aiweb reads (JPEG, PNG, WebP):
    empty, truncated or corrupt, animated, or a polyglot (data after the image's end);
    the detail says which (422, :mod:`aiweb.images.decode`)."""

    slug = "invalid-image"
    title = "Image refused"


class UnsafeArtifactPath(InvalidInputError):
    """An artifact URI that is not a safe relative path inside the artifact store."""

    slug = "unsafe-artifact-path"
    title = "Artifact path outside the store"


class PayloadTooLargeError(AiwebError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class ImageTooLarge(PayloadTooLargeError):
    """An image of more bytes than ``AIWEB_LIMITS__MAX_IMAGE_BYTES``, or whose header
    declares more pixels than ``AIWEB_LIMITS__MAX_IMAGE_PIXELS`` (a decompression bomb):
    refused before it is decoded (413)."""

    slug = "image-too-large"
    title = "Image too large"


class UnsupportedMediaTypeError(AiwebError):
    """An uploaded file of a type the route does not read (told by its bytes, not its
    name); the detail names the types it reads (415)."""

    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class UnsupportedImageFormat(UnsupportedMediaTypeError):
    """An upload that is not a JPEG, PNG or WebP image (told by its first bytes); the
    detail names what it looks like when that is recognisable (GIF, TIFF, ZIP …) (415)."""

    slug = "unsupported-image-format"
    title = "Unsupported image format"


class RateLimitedError(AiwebError):
    """A client spent its budget for a scope (HTTP 429).

    The detail states the limit and when to retry; ``headers`` carry ``Retry-After`` and
    the ``RateLimit-*`` fields (see :meth:`aiweb.security.ratelimit.RateLimitResult.headers`).
    """

    status = 429
    slug = "rate-limited"
    title = "Too many requests"


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


class ExportUnavailableError(AiwebError):
    """The embedding export's optional dependencies are not installed (``aiweb[export]``)."""

    status = 503
    slug = "export-unavailable"
    title = "Export dependencies missing"


class ExportCheckError(AiwebError):
    """The fp32 embedding export does not reproduce sentence-transformers."""

    status = 500
    slug = "export-check-failed"
    title = "Export check failed"


class DatasetUnavailableError(AiwebError):
    status = 502
    slug = "dataset-unavailable"
    title = "Dataset could not be downloaded"


class InsecureConfigurationError(AiwebError):
    """The configuration is unsafe for production (a missing or weak secret key …);
    the server refuses to start."""

    slug = "insecure-configuration"
    title = "Refusing an insecure configuration"


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
