"""Bodies of ``/v1/jobs``: what can be submitted, and the job record answered."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from aiweb.jobs.entities import Job

_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_COLUMN = Field("text", min_length=1, max_length=255)


class PromotionRule(BaseModel):
    """Move ``production`` to the new version only when it is at least as good.

    The new version and the current production version are both scored on the new
    version's evaluation split; the rule holds when
    ``new[metric] >= production[metric] + min_delta``.
    """

    model_config = ConfigDict(extra="forbid")

    metric: Literal["macro_f1", "accuracy", "roc_auc"] = "macro_f1"
    min_delta: float = Field(0.0, ge=-1.0, le=1.0)


class TrainData(BaseModel):
    """Where training data comes from: an uploaded dataset or a known one."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str | None = Field(None, max_length=64, description="An uploaded dataset.")
    dataset: str | None = Field(
        None, max_length=64, description="A known dataset: sst2, sms_spam …"
    )
    eval_dataset_id: str | None = Field(
        None, max_length=64, description="Evaluate on this uploaded dataset instead of a split."
    )
    text_column: str = _COLUMN
    label_column: str = Field("label", min_length=1, max_length=255)
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Hyper-parameters, as `aiweb train --param` (C, n_features_log2 …).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrainData:
        if (self.dataset_id is None) == (self.dataset is None):
            raise ValueError("give exactly one of dataset_id or dataset")
        return self


class TrainJobSpec(TrainData):
    """``{"type": "train", "task": "text-classification", "model": NAME, …}``."""

    type: Literal["train"]
    task: Literal["text-classification"] = "text-classification"
    model: str = Field(..., pattern=_NAME, description="Registered model name.")
    alias: str | None = Field(
        None, pattern=_NAME, description="Point this alias at the new version."
    )
    promotion: PromotionRule | None = Field(
        None, description="Move production only when this rule holds (scheduled retraining)."
    )


class BatchPredictJobSpec(BaseModel):
    """``{"type": "batch-predict", "model": "sentiment", "dataset_id": …}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["batch-predict"]
    model: str = Field(
        ..., min_length=1, max_length=130, description="name, name@alias or name:version."
    )
    dataset_id: str = Field(..., max_length=64)
    text_column: str = _COLUMN
    id_column: str = Field(
        "id",
        min_length=1,
        max_length=255,
        description="Copied to the output's id column; the row number (from 1) when absent.",
    )


class RecommendationPromotionRule(BaseModel):
    """Move ``production`` to the new recommender only when it is better, and better than
    the popularity baseline.

    Both versions are scored with the offline protocol (temporal leave-last-5-out) on the
    same split of the data the new version was trained on: the new version as its report
    has it, production by refitting its recipe (algorithms, parameters, blend weights and
    half-lives, from its lineage) on the split's training part; its artifact cannot be
    scored as it is, having been fitted on every interaction, held-out ones included. The
    rule holds when ``new[metric] >= production[metric] + min_delta`` and, with
    ``beat_popularity``, ``new[metric] > popularity[metric]`` on the same split.
    """

    model_config = ConfigDict(extra="forbid")

    metric: Literal["ndcg", "recall", "precision", "map", "hit_rate"] = Field(
        "ndcg", description="An @10 metric of the offline evaluation."
    )
    min_delta: float = Field(0.0, ge=-1.0, le=1.0)
    beat_popularity: bool = True


class RecommendationTrainData(BaseModel):
    """How a recommender trains: on the items and interactions stored (``POST /v1/items``,
    ``POST /v1/interactions``, ``aiweb import``), with one algorithm or ``auto``."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["recommendation"]
    algorithm: Literal[
        "auto", "hybrid", "als", "bpr", "ease", "content", "content-minilm", "popularity"
    ] = Field(
        "auto",
        description="`auto` compares every algorithm (and a hybrid) and keeps the best on "
        "validation; a named one is compared with the popularity baseline. `content-minilm` "
        "(content-based on sentence embeddings) needs `aiweb embeddings install`; `auto` "
        "includes it when an embedding model is installed.",
    )
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Constructor parameters per algorithm, e.g. {"ease": {"l2": 300}}.',
    )


class RecommendationTrainJobSpec(RecommendationTrainData):
    """``{"type": "train", "task": "recommendation", "model": NAME, "algorithm": "auto"}``."""

    type: Literal["train"]
    model: str = Field(..., pattern=_NAME, description="Registered model name.")
    alias: str | None = Field(
        None, pattern=_NAME, description="Point this alias at the new version."
    )
    promotion: RecommendationPromotionRule | None = Field(
        None, description="Move production only when this rule holds (scheduled retraining)."
    )


def train_task(value: Any) -> str:
    """The ``task`` of a training body (``text-classification`` when it names none): what
    tells a classifier's training spec from a recommender's."""
    task = value.get("task") if isinstance(value, dict) else getattr(value, "task", None)
    return task if isinstance(task, str) else "text-classification"


#: ``{"type": "train", …}``: by ``task``, a text classifier's or a recommender's
TrainSpec = Annotated[
    Annotated[TrainJobSpec, Tag("text-classification")]
    | Annotated[RecommendationTrainJobSpec, Tag("recommendation")],
    Discriminator(train_task),
]


def job_type(value: Any) -> str | None:
    """The ``type`` of a job body (``None`` when it has none)."""
    type_ = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return type_ if isinstance(type_, str) else None


#: A job body, by its ``type``. Every member is tagged with its type: a discriminator on
#: the ``type`` field cannot hold ``train``, itself a union by ``task`` (pydantic then
#: writes an OpenAPI discriminator mapping that is not a string).
JobSpec = Annotated[
    Annotated[TrainSpec, Tag("train")] | Annotated[BatchPredictJobSpec, Tag("batch-predict")],
    Discriminator(job_type),
]


class JobOut(BaseModel):
    """A job record."""

    id: str
    type: str
    params: dict[str, Any]
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(..., ge=0, le=1, description="Fraction done, 0 to 1.")
    message: str
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    submitted_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]

    @classmethod
    def of(cls, job: Job) -> JobOut:
        links = {"self": f"/v1/jobs/{job.id}"}
        if job.status == "succeeded" and job.result and job.result.get("artifact_uri"):
            links["result"] = f"/v1/jobs/{job.id}/result"
        return cls(
            id=job.id,
            type=job.type,
            params=job.params,
            status=job.status,
            progress=job.progress,
            message=job.message,
            result=job.result,
            error=job.error,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            cancel_requested=job.cancel_requested,
            submitted_by=job.submitted_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            links=links,
        )


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(..., description="Offset of the next page, or null.")
