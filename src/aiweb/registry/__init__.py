"""The model registry: registered models, integer versions, aliases (moves published to
subscribers), artifacts (sha256-checked) and the promotion rule."""

from aiweb.registry.entities import AliasEvent, ModelRef, ModelVersion, RegisteredModel

__all__ = [
    "AliasEvent",
    "ModelRef",
    "ModelVersion",
    "RegisteredModel",
    "artifacts",
    "entities",
    "factory",
    "promotion",
    "schemas",
    "service",
    "sql_store",
    "store",
]
