"""Storage-free registry entities. Stores turn rows into these; nothing above sees a row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiweb.errors import ConflictError, InvalidInputError
from aiweb.names import check_name

PRODUCTION = "production"

VERSION_STATUSES = ("pending", "ready", "failed")


@dataclass(frozen=True)
class ModelRef:
    """What a client asked for: ``name``, ``name@alias`` or ``name:version``.

    Attributes:
        name: registered model name.
        alias: alias to resolve (``production`` when neither alias nor version is given).
        version: explicit version number, or ``None``.
    """

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        """Parse ``sentiment``, ``sentiment@staging`` or ``sentiment:3``.

        Raises:
            InvalidInputError: malformed reference, name or version.
        """
        if "@" in ref:
            name, _, alias = ref.partition("@")
            return cls(check_name(name), alias=check_name(alias, "alias"))
        if ":" in ref:
            name, _, version = ref.partition(":")
            if not version.isdigit() or int(version) < 1 or len(version) > 9:
                raise InvalidInputError(
                    f"invalid version {version[:20]!r} in {ref[:100]!r}: use a positive integer"
                )
            return cls(check_name(name), version=int(version))
        return cls(check_name(ref), alias=PRODUCTION)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}"


@dataclass(frozen=True)
class ModelVersion:
    """One trained version of a registered model.

    Attributes:
        name: registered model name.
        version: integer, 1, 2, 3 … per name.
        task: the registered model's task, e.g. ``text-classification``.
        status: ``pending`` (artifact being written), ``ready`` or ``failed``.
        artifact_uri: path of the artifact relative to the artifact store.
        artifact_format: e.g. ``skops``.
        artifact_sha256: hex digest of the artifact bytes, checked at load.
        labels: class names, in the order of the model's score columns.
        signature: input/output description.
        lineage: dataset name and sha256, parameters, aiweb version, timestamps.
        evaluation: the evaluation report (metrics, confusion matrix …).
        aliases: aliases pointing at this version.
    """

    name: str
    version: int
    task: str
    status: str
    artifact_uri: str | None
    artifact_format: str | None
    artifact_sha256: str | None
    labels: list[str]
    signature: dict[str, Any]
    lineage: dict[str, Any]
    evaluation: dict[str, Any]
    created_at: datetime
    aliases: tuple[str, ...] = ()

    def file_uri(self, filename: str) -> str:
        """Artifact-store path of one of this version's files (its artifact, an ONNX
        export, a vocabulary …): ``models/<name>/<version>/<filename>``."""
        return f"models/{self.name}/{self.version}/{filename}"


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model: a name, its task, its aliases and its newest version."""

    name: str
    task: str
    description: str
    created_at: datetime
    updated_at: datetime
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None


def aliased_version_conflict(name: str, version: int, aliases: list[str]) -> ConflictError:
    """The refusal to delete version ``version`` of ``name`` while ``aliases`` point at it."""
    pointing = ", ".join(f"{name}@{a}" for a in sorted(aliases))
    return ConflictError(
        f"{name}:{version} is served by {pointing}; point "
        f"{'that alias' if len(aliases) == 1 else 'those aliases'} at another version "
        "(or delete the whole model) first"
    )


@dataclass(frozen=True)
class DeletedModel:
    """What deleting a registered model removed.

    Attributes:
        model: the model as it was (its aliases included).
        versions: every version it had, oldest first.
        schedule_removed: whether it had a retraining schedule (removed with it).
    """

    model: RegisteredModel
    versions: list[ModelVersion]
    schedule_removed: bool = False


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias (``set``, ``promote`` or ``rollback``)."""

    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    created_at: datetime
