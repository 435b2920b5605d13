"""API shapes of the registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aiweb.registry.entities import AliasEvent, ModelVersion, RegisteredModel


class ModelOut(BaseModel):
    name: str
    task: str
    description: str
    aliases: dict[str, int] = Field(..., description="Alias name -> version.")
    latest_version: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, m: RegisteredModel) -> ModelOut:
        return cls(
            name=m.name,
            task=m.task,
            description=m.description,
            aliases=m.aliases,
            latest_version=m.latest_version,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )


class ModelList(BaseModel):
    models: list[ModelOut]


class ModelVersionOut(BaseModel):
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

    @classmethod
    def of(cls, v: ModelVersion) -> ModelVersionOut:
        return cls(
            name=v.name,
            version=v.version,
            task=v.task,
            status=v.status,
            aliases=list(v.aliases),
            labels=v.labels,
            artifact_uri=v.artifact_uri,
            artifact_format=v.artifact_format,
            artifact_sha256=v.artifact_sha256,
            signature=v.signature,
            lineage=v.lineage,
            evaluation=v.evaluation,
            created_at=v.created_at,
        )


class ModelDetail(ModelOut):
    versions: list[ModelVersionOut]


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 2}]})

    version: int = Field(..., ge=1, description="Version the alias should point at.")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field("production", description="Alias to move back.")


class AliasEventOut(BaseModel):
    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    created_at: datetime

    @classmethod
    def of(cls, e: AliasEvent) -> AliasEventOut:
        return cls(
            name=e.name,
            alias=e.alias,
            action=e.action,
            from_version=e.from_version,
            to_version=e.to_version,
            actor=e.actor,
            created_at=e.created_at,
        )
