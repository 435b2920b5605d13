"""API shapes of text classification."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
