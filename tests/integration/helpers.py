"""Helpers shared by the integration tests: registries on a settings' database and
models registered from the tiny fixture pipeline."""

from __future__ import annotations

from sqlalchemy import Engine

from aiweb.app import build_registry
from aiweb.config import Settings
from aiweb.db.migrate import upgrade
from aiweb.registry.entities import ModelVersion
from aiweb.registry.service import RegistryService

TASK = "text-classification"
LABELS = ["negative", "positive"]
POSITIVE_TEXT = "a wonderful, moving film, brilliant and funny"
NEGATIVE_TEXT = "terrible and boring, a dull lifeless mess"


def open_registry(settings: Settings) -> tuple[RegistryService, Engine]:
    """A registry on the (migrated) database and artifact store of ``settings``."""
    registry, engine = build_registry(settings)
    upgrade(engine)
    return registry, engine


def register_tiny(
    registry: RegistryService,
    name: str,
    artifact: bytes,
    *,
    alias: str | None = None,
    tag: str = "",
) -> ModelVersion:
    """Register one version of ``name`` from the tiny model's bytes."""
    return registry.register_version(
        name,
        TASK,
        artifact=artifact,
        artifact_format="skops",
        labels=list(LABELS),
        signature={"inputs": {"type": "array", "items": {"type": "string"}}},
        lineage={"dataset": "tiny", "tag": tag},
        evaluation={"accuracy": 1.0},
        alias=alias,
        actor="tests",
    )


def register_versions(settings: Settings, name: str, artifact: bytes, count: int) -> None:
    """Register ``count`` versions of ``name`` on the database of ``settings``."""
    registry, engine = open_registry(settings)
    try:
        for i in range(count):
            register_tiny(registry, name, artifact, tag=str(i + 1))
    finally:
        engine.dispose()
