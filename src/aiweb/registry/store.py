"""The registry store interface. :mod:`aiweb.registry.sql_store` implements it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.orm import Session

from aiweb.registry.entities import AliasEvent, DeletedModel, ModelVersion, RegisteredModel

#: ``guard(session, name, version)``: run in the transaction that deletes model ``name``
#: (``version`` ``None``) or its version ``version``, after the model's row is locked. It
#: raises :class:`~aiweb.errors.ConflictError` to refuse the deletion (naming what is in
#: the way) and may delete rows of its own that name the model. Layers above the registry
#: register theirs (:meth:`RegistryStore.guard_deletions`), so the registry never reads
#: their tables.
DeletionGuard = Callable[[Session, str, int | None], None]


class RegistryStore(Protocol):
    """Persistence of registered models, versions and aliases.

    Every method opens and commits its own transaction. Errors are domain errors:
    :class:`~aiweb.errors.ModelNotFound`, :class:`~aiweb.errors.ModelVersionNotFound`,
    :class:`~aiweb.errors.AliasNotFound`, :class:`~aiweb.errors.ConflictError`.
    """

    def ensure_model(self, name: str, task: str, description: str = "") -> RegisteredModel:
        """Return the model ``name``, creating it with ``task`` when missing.

        Raises:
            ConflictError: the model exists with another task.
        """
        ...

    def get_model(self, name: str) -> RegisteredModel: ...

    def guard_deletions(self, guard: DeletionGuard) -> None:
        """Run ``guard`` in every transaction that deletes a model or a version (see
        :data:`DeletionGuard`)."""
        ...

    def list_models(self) -> list[RegisteredModel]: ...

    def create_version(
        self,
        name: str,
        *,
        labels: list[str],
        signature: dict[str, Any],
        lineage: dict[str, Any],
        evaluation: dict[str, Any],
        artifact_format: str,
    ) -> ModelVersion:
        """Add the next version (max + 1) of ``name`` with status ``pending``."""
        ...

    def finish_version(
        self,
        name: str,
        version: int,
        *,
        status: str,
        artifact_uri: str | None = None,
        artifact_sha256: str | None = None,
    ) -> ModelVersion:
        """Set a version's status and artifact once its artifact is written (or failed).

        Raises:
            ConflictError: ``ready`` for a version that is no longer ``pending`` (the
                crash-litter sweep failed it, :mod:`aiweb.jobs.litter`).
        """
        ...

    def update_evaluation(self, name: str, version: int, values: dict[str, Any]) -> ModelVersion:
        """Set top-level keys of a version's evaluation report (the other keys are kept),
        in one transaction.

        Raises:
            ModelNotFound, ModelVersionNotFound.
        """
        ...

    def get_version(self, name: str, version: int) -> ModelVersion: ...

    def delete_version(self, name: str, version: int) -> ModelVersion:
        """Remove version ``version`` of ``name`` (its row only; the artifact files are
        the caller's) and return it as it was.

        Raises:
            ModelNotFound, ModelVersionNotFound.
            ConflictError: an alias points at the version, a pending or running job
                uses it, or a deletion guard refuses (the message names them).
        """
        ...

    def delete_model(self, name: str) -> DeletedModel:
        """Remove the model ``name`` with its versions, aliases and alias history, and
        what exists only for it (its retraining schedule, its drift-alert claims), in one
        transaction; say what was removed (the artifact files are the caller's). The
        prediction log and feedback of the model are history and stay.

        Raises:
            ModelNotFound.
            ConflictError: a pending or running job uses the model, or a deletion
                guard refuses (named).
        """
        ...

    def list_versions(self, name: str) -> list[ModelVersion]: ...

    def resolve_alias(self, name: str, alias: str) -> int:
        """The version ``name@alias`` points at.

        Raises:
            ModelNotFound: no model ``name``.
            AliasNotFound: the model has no such alias.
        """
        ...

    def set_alias(
        self, name: str, alias: str, version: int, *, action: str = "set", actor: str = ""
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (which must be ``ready``) and record the move."""
        ...

    def alias_history(self, name: str, alias: str) -> list[AliasEvent]:
        """Every move of ``name@alias``, oldest first."""
        ...

    def all_aliases(self) -> dict[tuple[str, str], int]:
        """``{(name, alias): version}`` for every alias of every model."""
        ...
