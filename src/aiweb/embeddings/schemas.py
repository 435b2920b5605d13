"""API shapes of ``POST /v1/models/{name}/embed``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EmbedRequest(BaseModel):
    """Texts to embed. Limits (count, length) are settings, checked by the route."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": ["Where is my card?"]}]},
    )

    inputs: list[str] = Field(
        ..., min_length=1, description="1 to 256 texts, each at most 10,000 characters."
    )


class EmbedResponse(BaseModel):
    model: str = Field(..., description="The embedding model's name.")
    version: int = Field(..., description="The version that embedded the inputs.")
    dim: int = Field(..., description="Vector dimension (384 for all-MiniLM-L6-v2).")
    embeddings: list[list[float]] = Field(
        ...,
        description="One float32 vector per input, in input order, L2-normalised (so the "
        "dot product of two vectors is their cosine similarity).",
    )
    truncated: list[bool] = Field(
        ...,
        description="Per input: true when it had more than 256 word pieces and only its "
        "start was embedded.",
    )
