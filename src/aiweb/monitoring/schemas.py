"""API shapes of feedback and live performance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _one_of_label_or_value(schema: dict[str, Any]) -> None:
    """The schema of :class:`FeedbackRequest`: ``label`` a string and ``value`` a number,
    neither ``null``, exactly one of them present."""
    for name in ("label", "value"):
        prop = schema["properties"][name]
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            prop.update(variants[0])
        prop.pop("default", None)
    schema["oneOf"] = [{"required": ["label"]}, {"required": ["value"]}]
    schema["examples"] = [{"label": "negative", "comment": "sarcasm"}, {"value": 129500.0}]


class FeedbackRequest(BaseModel):
    """The label a prediction should have had, or the value a prediction of a number
    should have been: exactly one of the two."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_one_of_label_or_value,
    )

    label: str | None = Field(
        None, min_length=1, max_length=255, description="One of the model's labels."
    )
    value: float | None = Field(
        None,
        allow_inf_nan=False,
        description="The true value, for a model that predicts a number.",
    )
    comment: str | None = Field(None, max_length=2000, description="Free text, kept as is.")

    @model_validator(mode="after")
    def _one_truth(self) -> FeedbackRequest:
        if (self.label is None) == (self.value is None):
            raise ValueError("give exactly one of label (a class) and value (a number)")
        return self


class FeedbackResponse(BaseModel):
    prediction_id: str
    model: str
    version: int
    predicted_label: str = Field(
        ..., description="What the model answered (a predicted number as text)."
    )
    label: str = Field(..., description="What it should have answered (a value as text).")
    correct: bool | None = Field(..., description="label == predicted_label; null for a value.")
    value: float | None = Field(None, description="The true value (feedback on a number).")
    predicted_value: float | None = Field(None, description="The predicted number.")
    comment: str | None
    created_at: datetime


class WindowPerformance(BaseModel):
    n: int = Field(..., description="Predictions in the window with feedback.")
    accuracy: float | None = Field(..., description="Correct / n; null when n is 0.")
    macro_f1: float | None = Field(..., description="Unweighted mean of per-class F1.")
    rmse: float | None = Field(
        None, description="Root mean squared error of predicted numbers; null for labels."
    )
    mae: float | None = Field(
        None, description="Mean absolute error of predicted numbers; null for labels."
    )


class PerformanceResponse(BaseModel):
    model: str
    version: int
    windows: dict[str, WindowPerformance] = Field(
        ..., description="Keys 1h, 24h and 7d: predictions made that long ago or less."
    )


class Shares(BaseModel):
    reference: float = Field(..., description="Share in the reference (evaluation) data.")
    live: float = Field(..., description="Share in the window.")


class DriftFeature(BaseModel):
    name: str = Field(
        ...,
        description="predicted_label, text_length, oov_rate, or a binned feature "
        "(an input column, or prediction: a predicted number).",
    )
    statistic: str = Field(..., description="psi, or chi-square p-value for predicted_label.")
    value: float
    threshold: float = Field(..., description="PSI above it, or a p-value below it, is drift.")
    drift: bool
    kind: str | None = Field(None, description="Binned features: numeric or categorical.")
    bins: list[str] | None = Field(None, description="Binned features: the bins' labels.")
    reference: list[float] | None = Field(None, description="Reference share of each bin.")
    live: list[float] | None = Field(None, description="Live share of each bin.")
    missing_share: Shares | None = Field(None, description="Share of missing values.")
    unseen_share: Shares | None = Field(
        None, description="Categorical: share of categories never seen in training."
    )


class DriftResponse(BaseModel):
    model: str
    version: int
    window: str
    n: int = Field(..., description="Predictions in the window that were compared.")
    min_n: int = Field(..., description="Below this many predictions nothing is flagged.")
    drift: bool = Field(..., description="Any feature drifted.")
    features: list[DriftFeature]
