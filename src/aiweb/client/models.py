"""Typed results of :mod:`aiweb.client`: the API's response shapes as pydantic models.

Each model mirrors one response schema of the server's OpenAPI (``GET /openapi.json``,
``components.schemas``: the class name is the schema's name). They are defined here, not
imported from the server, so the client needs only ``httpx`` and ``pydantic``. Every model
keeps fields the server adds later (``extra="allow"``), so a newer server does not break
an older client; ``tests/integration/test_client.py`` checks the fields against the
server's schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AliasEvent",
    "Because",
    "CollectionOut",
    "Contribution",
    "Dataset",
    "DatasetList",
    "Document",
    "DocumentList",
    "DocumentText",
    "EmbedResponse",
    "ExplainResponse",
    "ExplanationPart",
    "Feedback",
    "FeedbackBox",
    "FeedbackSpan",
    "Hit",
    "ItemSummary",
    "Job",
    "JobList",
    "ModelDetail",
    "ModelSummary",
    "ModelVersion",
    "Omitted",
    "OutOfScope",
    "PageText",
    "PredictResponse",
    "Prediction",
    "RecommendationExplanation",
    "Recommended",
    "SearchResult",
    "SimilarBecause",
    "SimilarItem",
    "SpanCounts",
    "TextExplanation",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Prediction(_Model):
    """One answer of ``predict``: ``id`` (send feedback on it), ``label``, ``scores``."""

    id: str
    label: str
    scores: dict[str, float]


class PredictResponse(_Model):
    """``POST /v1/models/{name}/predict``: the version that answered and one prediction
    per input, in order."""

    model: str
    version: int
    predictions: list[Prediction]


class Contribution(_Model):
    """A word's (or feature's) weight toward the explained class; ``start``/``end`` index
    the input text when the feature is a span of it."""

    feature: str
    start: int | None = None
    end: int | None = None
    weight: float


class Omitted(_Model):
    """The contributions left out by ``top_k``: how many and their summed weight."""

    count: int = 0
    weight: float = 0.0


class OutOfScope(_Model):
    """Why an answer is the out-of-scope label (docs/explanations.md)."""

    label: str
    threshold: float
    top_score: float
    below_threshold: bool


class TextExplanation(_Model):
    """Why one input got its answer (docs/explanations.md)."""

    label: str
    scores: dict[str, float]
    target: str
    method: str
    exact: bool
    base_value: float
    contributions: list[Contribution]
    omitted: Omitted = Field(default_factory=Omitted)
    logit: float
    skipped_words: int = 0
    out_of_scope: OutOfScope | None = None


class ExplainResponse(_Model):
    """``POST /v1/models/{name}/explain``: one explanation per input, in order."""

    model: str
    version: int
    explanations: list[TextExplanation]


class EmbedResponse(_Model):
    """``POST /v1/models/{name}/embed``: one vector of ``dim`` floats per input;
    ``truncated[i]`` tells whether input ``i`` was cut to the model's length."""

    model: str
    version: int
    dim: int
    embeddings: list[list[float]]
    truncated: list[bool]


class ItemSummary(_Model):
    """An item of the catalogue, as recommendations show it (``include="item"``)."""

    item_id: str
    title: str
    categories: list[str]
    metadata: dict[str, Any]
    available: bool


class Because(_Model):
    """An item the user interacted with, and its weight in a recommendation."""

    item_id: str
    weight: float


class ExplanationPart(_Model):
    """One source's share of a recommendation's score."""

    source: str
    weight: float
    score: float


class RecommendationExplanation(_Model):
    """How a recommendation's score adds up (docs/recommendations.md)."""

    method: str
    exact: bool
    base: float
    rest: float
    parts: list[ExplanationPart]


class Recommended(_Model):
    """One item of ``GET /v1/users/{user_id}/recommendations``."""

    item_id: str
    score: float
    reason: str
    item: ItemSummary | None = None
    because: list[Because] | None = None
    explanation: RecommendationExplanation | None = None


class SimilarBecause(_Model):
    """Why an item is similar: its source, the score's parts, the categories shared."""

    source: str
    parts: list[ExplanationPart]
    shared_categories: list[str]


class SimilarItem(_Model):
    """One item of ``GET /v1/items/{item_id}/similar``."""

    item_id: str
    score: float
    reason: str
    item: ItemSummary | None = None
    because: SimilarBecause | None = None


class Hit(_Model):
    """One document found by ``search``."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class SearchResult(_Model):
    """``POST /v1/collections/{name}/search`` (schema ``SearchOut``)."""

    hits: list[Hit]
    query_truncated: bool = False


class CollectionOut(_Model):
    """A search collection (``GET /v1/collections/{name}``)."""

    name: str
    embedding_model: str
    dim: int
    metadata_fields: list[str] | None = None
    vector_index: str
    documents: int | None = None
    revision: int
    answer_threshold: float | None = None
    calibration: dict[str, Any] | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime


class Dataset(_Model):
    """An uploaded dataset (schema ``DatasetOut``)."""

    id: str
    name: str
    rows: int
    sha256: str
    columns: list[str]
    format: str
    size_bytes: int
    created_by: str
    created_at: datetime


class DatasetList(_Model):
    """``GET /v1/datasets``: a page of datasets."""

    datasets: list[Dataset]
    total: int
    limit: int
    offset: int
    next_offset: int | None = None


class Document(_Model):
    """An uploaded document (schema ``UploadedDocumentOut``): ``media_type`` told by its bytes,
    ``pages`` and ``chars`` of text read; ``redacted`` when PII was replaced (and the
    original not kept), ``redactions`` then counting each kind."""

    id: str
    name: str
    media_type: str
    pages: int
    chars: int
    sha256: str
    size_bytes: int
    redacted: bool
    redactions: dict[str, int] | None = None
    created_by: str
    created_at: datetime


class DocumentList(_Model):
    """``GET /v1/documents``: a page of documents (schema ``UploadedDocumentList``)."""

    documents: list[Document]
    total: int
    limit: int
    offset: int
    next_offset: int | None = None


class PageText(_Model):
    """One page of a document's text (schema ``UploadedDocumentPage``): ``start``/``end`` are its
    offsets in the document's text (pages joined by a form feed)."""

    page: int
    start: int
    end: int
    text: str


class DocumentText(_Model):
    """``GET /v1/documents/{id}/text``: the text, page by page (schema
    ``UploadedDocumentText``)."""

    id: str
    media_type: str
    redacted: bool
    chars: int
    pages: list[PageText]


class Job(_Model):
    """A job (schema ``JobOut``): ``status`` is ``pending``, ``running``, ``succeeded``,
    ``failed`` or ``cancelled``; ``progress`` runs from 0 to 1; ``result`` once it
    succeeded, ``error`` once it failed; ``links["result"]`` names its result file."""

    id: str
    type: str
    params: dict[str, Any]
    status: str
    progress: float
    message: str
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    submitted_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    links: dict[str, str] = Field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the job has ended (succeeded, failed or cancelled)."""
        return self.status in ("succeeded", "failed", "cancelled")


class JobList(_Model):
    """``GET /v1/jobs``: a page of jobs."""

    jobs: list[Job]
    total: int
    limit: int
    offset: int
    next_offset: int | None = None


class FeedbackSpan(_Model):
    """One span of a text in feedback: ``text[start:end]`` is one ``label``."""

    start: int
    end: int
    label: str


class SpanCounts(_Model):
    """The predicted spans against the corrected ones (exact match): precision =
    tp / (tp + fp), recall = tp / (tp + fn)."""

    true_positives: int
    false_positives: int
    false_negatives: int


class FeedbackBox(_Model):
    """A box in an image, in pixels (schema ``FeedbackBox``)."""

    label: str
    x: float
    y: float
    width: float
    height: float


class Feedback(_Model):
    """``POST /v1/predictions/{id}/feedback`` (schema ``FeedbackResponse``); feedback that
    was a corrected list of spans also has ``entities``, ``predicted_entities`` and
    ``counts``; corrected boxes have ``boxes``, ``predicted_boxes`` and ``counts``;
    corrected text has ``text``, ``predicted_text`` (when logged) and ``cer``."""

    prediction_id: str
    model: str
    version: int
    predicted_label: str
    label: str
    correct: bool | None
    value: float | None = None
    predicted_value: float | None = None
    entities: list[FeedbackSpan] | None = None
    predicted_entities: list[FeedbackSpan] | None = None
    counts: SpanCounts | None = None
    boxes: list[FeedbackBox] | None = None
    predicted_boxes: list[FeedbackBox] | None = None
    text: str | None = None
    predicted_text: str | None = None
    cer: float | None = None
    comment: str | None = None
    created_at: datetime


class ModelSummary(_Model):
    """A model of ``GET /v1/models`` (schema ``ModelOut``)."""

    name: str
    task: str
    description: str
    aliases: dict[str, int]
    latest_version: int | None = None
    created_at: datetime
    updated_at: datetime


class ModelVersion(_Model):
    """One version of a model (schema ``ModelVersionOut``)."""

    name: str
    version: int
    task: str
    status: str
    aliases: list[str]
    labels: list[str]
    artifact_uri: str | None = None
    artifact_format: str | None = None
    artifact_sha256: str | None = None
    signature: dict[str, Any]
    lineage: dict[str, Any]
    evaluation: dict[str, Any]
    created_at: datetime


class ModelDetail(ModelSummary):
    """``GET /v1/models/{name}``: the model and its versions."""

    versions: list[ModelVersion]


class AliasEvent(_Model):
    """``PUT /v1/models/{name}/aliases/{alias}`` (schema ``AliasEventOut``)."""

    name: str
    alias: str
    action: str
    from_version: int | None = None
    to_version: int | None = None
    actor: str
    created_at: datetime
