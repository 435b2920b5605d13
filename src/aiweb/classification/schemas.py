"""API shapes of text classification: predictions, and the bodies of its jobs
(``train``, ``batch-predict``) and retraining schedules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, model_validator

from aiweb.jobs.schemas import MODEL_NAME_PATTERN


class PredictRequest(BaseModel):
    """Texts to classify. Limits (count, length) are settings, checked by the service."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": ["a gorgeous, witty, seductive movie"]}]},
    )

    inputs: list[str] = Field(
        ..., min_length=1, description="1 to 256 texts, each at most 10,000 characters."
    )


class Prediction(BaseModel):
    id: str = Field(..., description="Prediction id: send feedback about it later.")
    label: str = Field(
        ...,
        description="The most probable class; for an intent model with out-of-scope "
        "detection, its out-of-scope label (`oos`) when the top probability is below the "
        "version's calibrated threshold (`lineage.rejection`).",
    )
    scores: dict[str, float] = Field(..., description="Probability of every class.")


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction]


# ---- jobs ------------------------------------------------------------------------------------

_COLUMN = Field("text", min_length=1, max_length=255)


class PromotionRule(BaseModel):
    """Move ``production`` to the new version only when it is at least as good.

    The new version and the current production version are both scored on the new
    version's evaluation split; the rule holds when
    ``new[metric] >= production[metric] + min_delta``.
    """

    model_config = ConfigDict(extra="forbid")

    metric: Literal["macro_f1", "accuracy", "roc_auc"] = "macro_f1"
    min_delta: StrictFloat = Field(0.0, ge=-1.0, le=1.0)


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
    test_size: StrictFloat = Field(0.2, gt=0.0, lt=1.0)
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
    model: str = Field(..., pattern=MODEL_NAME_PATTERN, description="Registered model name.")
    alias: str | None = Field(
        None, pattern=MODEL_NAME_PATTERN, description="Point this alias at the new version."
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


class ScheduleIn(TrainData):
    """``PUT /v1/models/{name}/schedule``: when to retrain, on what, and when to promote."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(
        ...,
        max_length=255,
        description="5-field cron expression, e.g. '0 3 * * *'.",
        examples=["0 3 * * *"],
    )
    timezone: str = Field("UTC", max_length=64, description="IANA time zone of the cron.")
    promotion: PromotionRule = Field(default_factory=PromotionRule)
    enabled: StrictBool = True
