"""API shapes of feedback and live performance."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class FeedbackRequest(BaseModel):
    """The label a prediction should have had."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"label": "negative", "comment": "sarcasm"}]},
    )

    label: str = Field(..., min_length=1, max_length=255, description="One of the model's labels.")
    comment: str | None = Field(None, max_length=2000, description="Free text, kept as is.")


class FeedbackResponse(BaseModel):
    prediction_id: str
    model: str
    version: int
    predicted_label: str = Field(..., description="What the model answered.")
    label: str = Field(..., description="What it should have answered.")
    correct: bool
    comment: str | None
    created_at: datetime


class WindowPerformance(BaseModel):
    n: int = Field(..., description="Predictions in the window with feedback.")
    accuracy: float | None = Field(..., description="Correct / n; null when n is 0.")
    macro_f1: float | None = Field(..., description="Unweighted mean of per-class F1.")


class PerformanceResponse(BaseModel):
    model: str
    version: int
    windows: dict[str, WindowPerformance] = Field(
        ..., description="Keys 1h, 24h and 7d: predictions made that long ago or less."
    )


class DriftFeature(BaseModel):
    name: str = Field(..., description="predicted_label, text_length or oov_rate.")
    statistic: str = Field(..., description="psi, or chi-square p-value for predicted_label.")
    value: float
    threshold: float = Field(..., description="PSI above it, or a p-value below it, is drift.")
    drift: bool


class DriftResponse(BaseModel):
    model: str
    version: int
    window: str
    n: int = Field(..., description="Predictions in the window that were compared.")
    min_n: int = Field(..., description="Below this many predictions nothing is flagged.")
    drift: bool = Field(..., description="Any feature drifted.")
    features: list[DriftFeature]
