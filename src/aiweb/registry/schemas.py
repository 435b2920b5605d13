"""API shapes of the registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aiweb.names import INT32_MAX, NAME_REGEX


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    task: str
    description: str
    aliases: dict[str, int] = Field(..., description="Alias name -> version.")
    latest_version: int | None
    created_at: datetime
    updated_at: datetime


class ModelList(BaseModel):
    models: list[ModelOut]


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    version: int
    task: str
    status: str
    aliases: list[str]
    labels: list[str]
    artifact_uri: str | None
    artifact_format: str | None
    artifact_sha256: str | None
    signature: dict[str, Any]
    lineage: dict[str, Any]
    evaluation: dict[str, Any]
    created_at: datetime


class ModelDetail(ModelOut):
    versions: list[ModelVersionOut]


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 2}]})

    version: int = Field(..., ge=1, le=INT32_MAX, description="Version the alias should point at.")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(
        "production", max_length=63, pattern=NAME_REGEX, description="Alias to move back."
    )


class AliasEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    created_at: datetime
