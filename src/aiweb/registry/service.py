"""Registry operations: register a version with its artifact, resolve, promote, roll back."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiweb.errors import ConflictError, InvalidInputError, ModelNotFound
from aiweb.names import check_name
from aiweb.registry.artifacts import ArtifactStore
from aiweb.registry.entities import (
    PRODUCTION,
    AliasEvent,
    DeletedModel,
    ModelRef,
    ModelVersion,
    RegisteredModel,
)
from aiweb.registry.store import DeletionGuard, RegistryStore
from aiweb.security.audit import AuditLog

#: ``await listener(model_name)`` after an alias of that model moved in this process
AliasListener = Callable[[str], Awaitable[None]]
#: ``listener(event)`` after every alias move recorded through this service, in the
#: thread that moved it (the webhooks' ``model.promoted`` hook, wired by
#: :func:`aiweb.registry.factory.build_registry`); must not block, must not raise
AliasEventListener = Callable[[AliasEvent], None]

_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

log = logging.getLogger(__name__)


class RegistryService:
    """The registry as every caller (API, CLI, jobs, tests) sees it.

    Args:
        store: persistence of models, versions and aliases.
        artifacts: where artifact bytes go.
        audit: where alias moves are recorded (who, what, before, after).
    """

    def __init__(
        self,
        store: RegistryStore,
        artifacts: ArtifactStore,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.audit = audit
        self._alias_listeners: list[AliasListener] = []
        self._alias_event_listeners: list[AliasEventListener] = []

    def on_alias_moved(self, listener: AliasListener) -> None:
        """Call ``await listener(name)`` whenever this process moves an alias of model
        ``name`` (the version caches of the tasks subscribe: they load the new target
        before answering). Other processes see moves on their next periodic re-read."""
        self._alias_listeners.append(listener)

    async def alias_moved(self, name: str) -> None:
        """Tell the listeners that an alias of ``name`` moved (the routes call this after
        :meth:`set_alias` or :meth:`rollback`, from the event loop)."""
        for listener in self._alias_listeners:
            await listener(name)

    def guard_deletions(self, guard: DeletionGuard) -> None:
        """Run ``guard`` in every transaction that deletes a model or a version of this
        registry (:data:`aiweb.registry.store.DeletionGuard`): the layers above refuse a
        deletion that would pull a version from under something they serve this way."""
        self.store.guard_deletions(guard)

    def on_alias_event(self, listener: AliasEventListener) -> None:
        """Call ``listener(event)`` after every alias move this service records (register,
        promote, set, rollback), from any process; errors are logged, not raised."""
        self._alias_event_listeners.append(listener)

    def _announce(self, event: AliasEvent) -> AliasEvent:
        for listener in self._alias_event_listeners:
            try:
                listener(event)
            except Exception:
                log.warning("alias event listener failed on %s", event, exc_info=True)
        return event

    def _audit_alias(self, event: AliasEvent, request_id: str | None) -> AliasEvent:
        self._announce(event)
        if self.audit is not None:
            self.audit.record(
                event.actor,
                f"alias.{event.action}",
                f"model:{event.name}@{event.alias}",
                before={"version": event.from_version},
                after={"version": event.to_version},
                request_id=request_id,
            )
        return event

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        *,
        after: dict[str, Any] | None = None,
        request_id: str | None = None,
        before: dict[str, Any] | None = None,
    ) -> None:
        """Write an audit event (no-op without an audit log)."""
        if self.audit is not None:
            self.audit.record(
                actor, action, target, before=before, after=after, request_id=request_id
            )

    def register_version(
        self,
        name: str,
        task: str,
        *,
        artifact: bytes,
        artifact_format: str,
        labels: list[str],
        signature: dict[str, Any],
        lineage: dict[str, Any],
        evaluation: dict[str, Any],
        description: str = "",
        alias: str | None = None,
        actor: str = "",
        extra_artifacts: dict[str, bytes] | None = None,
        production_if_first: bool = True,
    ) -> ModelVersion:
        """Add a new version of ``name`` and write its artifact.

        ``extra_artifacts`` (file name -> bytes, e.g. an ONNX export) are written next to
        the artifact, ``models/<name>/<version>/<file name>``; their checksums belong in
        the evaluation report.

        The version is ``pending`` until its artifact is written and ``ready`` after.
        The first version of a model becomes ``production`` (unless
        ``production_if_first`` is false: a version that was not evaluated, say);
        ``alias`` (if given) is pointed at the new version as well.

        Raises:
            InvalidInputError: bad model or alias name.
            ConflictError: ``name`` exists with another task.
        """
        check_name(name)
        if alias is not None:
            check_name(alias, "alias")
        main_file = f"model.{artifact_format}"
        for filename in extra_artifacts or {}:
            if not _FILE_NAME.fullmatch(filename) or filename == main_file:
                raise InvalidInputError(f"bad extra artifact file name {filename!r}")
        self.store.ensure_model(name, task, description)
        version = self.store.create_version(
            name,
            labels=labels,
            signature=signature,
            lineage=lineage,
            evaluation=evaluation,
            artifact_format=artifact_format,
        )
        uri = version.file_uri(main_file)
        try:
            digest = self.artifacts.write_bytes(uri, artifact)
            for filename, data in (extra_artifacts or {}).items():
                self.artifacts.write_bytes(version.file_uri(filename), data)
        except BaseException:
            self.store.finish_version(name, version.version, status="failed")
            raise
        version = self.store.finish_version(
            name, version.version, status="ready", artifact_uri=uri, artifact_sha256=digest
        )
        targets = set()
        if production_if_first and PRODUCTION not in self.store.get_model(name).aliases:
            targets.add(PRODUCTION)
        if alias is not None:
            targets.add(alias)
        for target in sorted(targets):
            self._announce(
                self.store.set_alias(name, target, version.version, action="register", actor=actor)
            )
        return self.store.get_version(name, version.version) if targets else version

    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_model(name)

    def list_models(self) -> list[RegisteredModel]:
        return self.store.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.store.list_versions(name)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.store.get_version(name, version)

    def update_evaluation(
        self,
        name: str,
        version: int,
        values: dict[str, Any],
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> ModelVersion:
        """Set top-level keys of a version's evaluation report (the other keys are kept),
        e.g. a re-run of its offline evaluation, and audit the change
        (``version.evaluation_updated``, with the keys' values before and after).

        Returns:
            The version as updated.

        Raises:
            InvalidInputError: no keys given.
            ModelNotFound, ModelVersionNotFound.
        """
        if not values:
            raise InvalidInputError("no evaluation keys to update")
        current = self.store.get_version(name, version)
        updated = self.store.update_evaluation(name, version, values)
        if self.audit is not None:
            self.audit.record(
                actor,
                "version.evaluation_updated",
                f"model:{name}:{version}",
                before={k: current.evaluation.get(k) for k in values},
                after=dict(values),
                request_id=request_id,
            )
        return updated

    def latest_version(self, name: str) -> ModelVersion | None:
        """The newest version of ``name``, or ``None`` (also when no such model)."""
        try:
            model = self.store.get_model(name)
        except ModelNotFound:
            return None
        if model.latest_version is None:
            return None
        return self.store.get_version(name, model.latest_version)

    def resolve(self, ref: ModelRef) -> ModelVersion:
        """The version ``ref`` names (alias resolved now, from the store).

        Raises:
            ModelNotFound, AliasNotFound, ModelVersionNotFound.
        """
        if ref.version is not None:
            return self.store.get_version(ref.name, ref.version)
        version = self.store.resolve_alias(ref.name, ref.alias or PRODUCTION)
        return self.store.get_version(ref.name, version)

    def promote(
        self,
        name: str,
        version: int,
        alias: str = PRODUCTION,
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> AliasEvent:
        """Point ``name@alias`` at ``version`` and record the move.

        Raises:
            ModelNotFound, ModelVersionNotFound; ConflictError when the version is
            not ``ready``; InvalidInputError for a bad alias name.
        """
        return self._audit_alias(
            self.store.set_alias(name, alias, version, action="promote", actor=actor), request_id
        )

    def rollback(
        self,
        name: str,
        alias: str = PRODUCTION,
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> AliasEvent:
        """Move ``name@alias`` back to the version it pointed at before.

        The alias history is replayed as a stack: every move pushes its target and every
        rollback pops one, so repeated rollbacks keep walking back in time.

        Raises:
            ModelNotFound; ConflictError when there is no earlier version to go back to.
        """
        check_name(alias, "alias")
        stack: list[int] = []
        for event in self.store.alias_history(name, alias):
            if event.action == "rollback":
                if stack:
                    stack.pop()
            elif event.to_version is not None and (not stack or stack[-1] != event.to_version):
                # re-pointing at the version it already has is not a step to go back over
                stack.append(event.to_version)
        # a deleted version is no place to go back to: skip it
        existing = {v.version for v in self.store.list_versions(name)}
        stack = [v for v in stack if v in existing]
        stack = [v for i, v in enumerate(stack) if i == 0 or stack[i - 1] != v]
        if len(stack) < 2:
            raise ConflictError(f"{name}@{alias} has no earlier version to roll back to")
        return self._audit_alias(
            self.store.set_alias(name, alias, stack[-2], action="rollback", actor=actor),
            request_id,
        )

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> AliasEvent:
        """Point ``name@alias`` at ``version`` (``PUT /v1/models/{name}/aliases/{alias}``)."""
        if version < 1:
            raise InvalidInputError("version must be a positive integer")
        return self._audit_alias(
            self.store.set_alias(name, alias, version, action="set", actor=actor), request_id
        )

    # -- deleting ----------------------------------------------------------------------
    def _delete_files(self, uri: str) -> int | None:
        """Remove the artifact files under ``uri``; how many, or ``None`` when the store
        failed (logged: the rows are gone already, the files are only left over)."""
        try:
            return self.artifacts.delete_tree(uri)
        except Exception as exc:
            log.warning("could not delete the artifact files under %s: %s", uri, exc)
            return None

    def delete_version(
        self,
        name: str,
        version: int,
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> ModelVersion:
        """Delete version ``version`` of ``name``: its row, then its artifact files
        (``models/<name>/<version>/``), audited as ``version.delete``. Its number is never
        given to another version; the predictions it served stay in the prediction log.

        The routes publish the change afterwards (:meth:`alias_moved`), so this
        process's caches stop serving ``name:version``.

        Returns:
            The version as it was.

        Raises:
            InvalidInputError: a bad model name.
            ModelNotFound, ModelVersionNotFound.
            ConflictError: an alias points at the version, a pending or running job
                uses it, or a deletion guard refuses (the message names what is in the
                way).
        """
        check_name(name)
        gone = self.store.delete_version(name, version)
        removed = self._delete_files(f"models/{name}/{version}")
        if self.audit is not None:
            self.audit.record(
                actor,
                "version.delete",
                f"model:{name}:{version}",
                before={
                    "status": gone.status,
                    "artifact_uri": gone.artifact_uri,
                    "artifact_sha256": gone.artifact_sha256,
                    "lineage": gone.lineage,
                },
                after={"artifact_files_removed": removed},
                request_id=request_id,
            )
        return gone

    def delete_model(
        self,
        name: str,
        *,
        actor: str = "",
        request_id: str | None = None,
    ) -> DeletedModel:
        """Delete the registered model ``name``: every version, alias and alias move,
        its retraining schedule and drift-alert claims (:meth:`RegistryStore.delete_model`),
        then its artifact files (``models/<name>/``); audited as ``model.delete``.

        Its predictions and feedback stay (they are history). The routes publish the
        change afterwards (:meth:`alias_moved`), so this process stops serving it.

        Returns:
            What was removed.

        Raises:
            InvalidInputError: a bad model name.
            ModelNotFound.
            ConflictError: a pending or running job uses the model, or a deletion
                guard refuses (named).
        """
        check_name(name)
        deleted = self.store.delete_model(name)
        removed = self._delete_files(f"models/{name}")
        if self.audit is not None:
            self.audit.record(
                actor,
                "model.delete",
                f"model:{name}",
                before={
                    "task": deleted.model.task,
                    "aliases": dict(deleted.model.aliases),
                    "versions": [v.version for v in deleted.versions],
                },
                after={
                    "schedule_removed": deleted.schedule_removed,
                    "artifact_files_removed": removed,
                },
                request_id=request_id,
            )
        return deleted
