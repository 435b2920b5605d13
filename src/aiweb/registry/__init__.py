"""The model registry: registered models, integer versions, aliases, artifacts."""

from aiweb.registry.entities import AliasEvent, ModelRef, ModelVersion, RegisteredModel

__all__ = ["AliasEvent", "ModelRef", "ModelVersion", "RegisteredModel"]
