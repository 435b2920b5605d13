"""SQLAlchemy implementation of :class:`~aiweb.registry.store.RegistryStore`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from aiweb.db.orm import (
    SqlAliasEvent,
    SqlDriftAlert,
    SqlJob,
    SqlModelAlias,
    SqlModelVersion,
    SqlRegisteredModel,
    SqlSchedule,
    utcnow,
)
from aiweb.db.session import transaction
from aiweb.errors import (
    AliasNotFound,
    ConflictError,
    InvalidInputError,
    ModelNotFound,
    ModelVersionNotFound,
)
from aiweb.names import INT32_MAX, check_name
from aiweb.registry.entities import (
    AliasEvent,
    DeletedModel,
    ModelRef,
    ModelVersion,
    RegisteredModel,
    aliased_version_conflict,
)
from aiweb.registry.store import DeletionGuard

_VERSION_INSERT_ATTEMPTS = 5

#: job states in which a job may still use the models it names
_ACTIVE_JOBS = ("pending", "running")


def _job_models(params: Any) -> set[tuple[str, int | None]]:
    """``(name, version or None)`` of the models a job's parameters name: ``model`` (a
    name or reference) and a pinned ``model_name``/``model_version``."""
    found: set[tuple[str, int | None]] = set()
    if not isinstance(params, dict):
        return found
    if isinstance(params.get("model_name"), str):
        pinned = params.get("model_version")
        found.add((params["model_name"], pinned if isinstance(pinned, int) else None))
    if isinstance(params.get("model"), str):
        try:
            ref = ModelRef.parse(params["model"])
        except InvalidInputError:
            return found
        found.add((ref.name, ref.version))
    return found


def _jobs_in_the_way(session: Session, name: str, version: int | None = None) -> None:
    """Refuse to delete model ``name`` (or its version ``version``) while a pending or
    running job uses it: a training job would register it again, a batch job would fail.

    Raises:
        ConflictError: naming the jobs.
    """
    jobs = [
        job_id
        for job_id, params in session.execute(
            select(SqlJob.id, SqlJob.params)
            .where(SqlJob.status.in_(_ACTIVE_JOBS))
            .order_by(SqlJob.created_at)
        )
        if any(n == name and (version is None or v == version) for n, v in _job_models(params))
    ]
    if jobs:
        what = f"{name}:{version}" if version is not None else f"model {name!r}"
        more = f" and {len(jobs) - 5} more" if len(jobs) > 5 else ""
        raise ConflictError(
            f"{what} is used by job {', '.join(jobs[:5])}{more} (pending or running); wait "
            "for it to finish or cancel it first"
        )


def _to_model(row: SqlRegisteredModel, latest: int | None) -> RegisteredModel:
    return RegisteredModel(
        name=row.name,
        task=row.task,
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
        aliases={a.alias: a.version for a in row.aliases},
        latest_version=latest,
    )


def _to_version(row: SqlModelVersion, model: SqlRegisteredModel) -> ModelVersion:
    return ModelVersion(
        name=model.name,
        version=row.version,
        task=model.task,
        status=row.status,
        artifact_uri=row.artifact_uri,
        artifact_format=row.artifact_format,
        artifact_sha256=row.artifact_sha256,
        labels=list(row.labels),
        signature=dict(row.signature),
        lineage=dict(row.lineage),
        evaluation=dict(row.evaluation),
        created_at=row.created_at,
        aliases=tuple(sorted(a.alias for a in model.aliases if a.version == row.version)),
    )


def _to_event(row: SqlAliasEvent, name: str) -> AliasEvent:
    return AliasEvent(
        name=name,
        alias=row.alias,
        action=row.action,
        from_version=row.from_version,
        to_version=row.to_version,
        actor=row.actor,
        created_at=row.created_at,
    )


class SqlRegistryStore:
    """Registry store on any SQLAlchemy database (SQLite, PostgreSQL).

    Args:
        session_factory: sessions bound to a migrated database.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory
        self._guards: list[DeletionGuard] = []

    def guard_deletions(self, guard: DeletionGuard) -> None:
        """Call ``guard(session, name, version)`` in every transaction that deletes a
        model (``version`` ``None``) or a version, after the model's row is locked and
        the registry's own checks passed (once per guard, however often given)."""
        if guard not in self._guards:
            self._guards.append(guard)

    def _guard(self, session: Session, name: str, version: int | None) -> None:
        for guard in self._guards:
            guard(session, name, version)

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _model_row(session: Session, name: str, *, lock: bool = False) -> SqlRegisteredModel:
        query = (
            select(SqlRegisteredModel)
            .where(SqlRegisteredModel.name == name)
            .options(selectinload(SqlRegisteredModel.aliases))
        )
        if lock:  # SELECT … FOR UPDATE on PostgreSQL; SQLite serialises writers itself
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise ModelNotFound(f"no model named {name!r}; `aiweb models list` shows them")
        return row

    @staticmethod
    def _latest(session: Session, model_id: int) -> int | None:
        return session.scalar(
            select(func.max(SqlModelVersion.version)).where(SqlModelVersion.model_id == model_id)
        )

    @staticmethod
    def _version_row(session: Session, model: SqlRegisteredModel, version: int) -> SqlModelVersion:
        if not 1 <= version <= INT32_MAX:  # no such row, and the column cannot hold it
            raise ModelVersionNotFound(f"model {model.name!r} has no version {version}")
        row = session.scalar(
            select(SqlModelVersion).where(
                SqlModelVersion.model_id == model.id, SqlModelVersion.version == version
            )
        )
        if row is None:
            raise ModelVersionNotFound(f"model {model.name!r} has no version {version}")
        return row

    # -- models ----------------------------------------------------------------------
    def ensure_model(self, name: str, task: str, description: str = "") -> RegisteredModel:
        check_name(name)
        for _ in range(2):
            try:
                with transaction(self._sessions) as session:
                    row = session.scalar(
                        select(SqlRegisteredModel)
                        .where(SqlRegisteredModel.name == name)
                        .options(selectinload(SqlRegisteredModel.aliases))
                    )
                    if row is None:
                        row = SqlRegisteredModel(name=name, task=task, description=description)
                        session.add(row)
                        session.flush()
                        return _to_model(row, None)
                    if row.task != task:
                        raise ConflictError(
                            f"model {name!r} exists with task {row.task!r}, not {task!r}; "
                            "choose another name"
                        )
                    return _to_model(row, self._latest(session, row.id))
            except IntegrityError:  # created concurrently: read it on the next pass
                continue
        raise ConflictError(f"model {name!r} is being created concurrently; try again")

    def get_model(self, name: str) -> RegisteredModel:
        with self._sessions() as session:
            row = self._model_row(session, name)
            return _to_model(row, self._latest(session, row.id))

    def list_models(self) -> list[RegisteredModel]:
        # Core statements on the mapped tables: reading the rows needs neither the ORM's
        # mapper configuration (of every table) nor its loading, which were some 15 ms of
        # ``aiweb models list``'s start-up (issue #19)
        models = SqlRegisteredModel.__table__.c
        versions = SqlModelVersion.__table__.c
        aliases = SqlModelAlias.__table__.c
        with self._sessions() as session:
            grouped = session.execute(
                select(versions.model_id, func.max(versions.version)).group_by(versions.model_id)
            )
            latest: dict[int, int] = {row[0]: row[1] for row in grouped}
            by_model: dict[int, dict[str, int]] = {}
            for model_id, alias, version in session.execute(
                select(aliases.model_id, aliases.alias, aliases.version).order_by(
                    aliases.model_id, aliases.alias
                )
            ):
                by_model.setdefault(model_id, {})[alias] = version
            rows = session.execute(
                select(
                    models.id,
                    models.name,
                    models.task,
                    models.description,
                    models.created_at,
                    models.updated_at,
                ).order_by(models.name)
            ).all()
        return [
            RegisteredModel(
                name=row.name,
                task=row.task,
                description=row.description,
                created_at=row.created_at,
                updated_at=row.updated_at,
                aliases=by_model.get(row.id, {}),
                latest_version=latest.get(row.id),
            )
            for row in rows
        ]

    # -- versions --------------------------------------------------------------------
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
        for _ in range(_VERSION_INSERT_ATTEMPTS):
            try:
                with transaction(self._sessions) as session:
                    model = self._model_row(session, name, lock=True)
                    # Write first: on SQLite the UPDATE opens the transaction and takes the
                    # database's write lock (waiting out busy_timeout), so the number read
                    # next cannot be taken by another writer before this one commits.
                    model.updated_at = utcnow()
                    session.flush()
                    # a deleted version's number is never given again
                    given = session.scalar(
                        select(SqlRegisteredModel.last_version).where(
                            SqlRegisteredModel.id == model.id
                        )
                    )
                    version = max(self._latest(session, model.id) or 0, given or 0) + 1
                    model.last_version = version
                    row = SqlModelVersion(
                        model_id=model.id,
                        version=version,
                        status="pending",
                        artifact_format=artifact_format,
                        labels=labels,
                        signature=signature,
                        lineage=lineage,
                        evaluation=evaluation,
                    )
                    session.add(row)
                    session.flush()
                    return _to_version(row, model)
            except IntegrityError:  # another writer took this number; take the next one
                continue
        raise ConflictError(f"could not allocate a version number for {name!r}; try again")

    def finish_version(
        self,
        name: str,
        version: int,
        *,
        status: str,
        artifact_uri: str | None = None,
        artifact_sha256: str | None = None,
    ) -> ModelVersion:
        if status not in ("ready", "failed"):
            raise InvalidInputError(f"a version ends 'ready' or 'failed', not {status!r}")
        with transaction(self._sessions) as session:
            model = self._model_row(session, name)
            row = self._version_row(session, model, version)
            if status == "ready" and row.status != "pending":
                # the crash-litter sweep failed it (and removed its files) as left by a
                # dead writer: it can no longer become ready
                raise ConflictError(
                    f"model {name!r} version {version} is {row.status}, no longer pending: "
                    "its artifact took longer to write than the crash-litter grace period"
                )
            row.status = status
            if artifact_uri is not None:
                row.artifact_uri = artifact_uri
            if artifact_sha256 is not None:
                row.artifact_sha256 = artifact_sha256
            session.flush()
            return _to_version(row, model)

    def update_evaluation(self, name: str, version: int, values: dict[str, Any]) -> ModelVersion:
        with transaction(self._sessions) as session:
            model = self._model_row(session, name)
            where = (SqlModelVersion.model_id == model.id, SqlModelVersion.version == version)
            # Write first, as create_version does: the no-op UPDATE takes the row lock on
            # PostgreSQL and the database's write lock on SQLite, so the report read next is
            # the latest and concurrent updates of different keys all survive.
            session.execute(
                update(SqlModelVersion)
                .where(*where)
                .values(status=SqlModelVersion.status)
                .execution_options(synchronize_session=False)
            )
            row = session.scalar(select(SqlModelVersion).where(*where))
            if row is None:
                raise ModelVersionNotFound(f"model {name!r} has no version {version}")
            row.evaluation = {**dict(row.evaluation), **values}  # a new dict: marks it dirty
            session.flush()
            return _to_version(row, model)

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._sessions() as session:
            model = self._model_row(session, name)
            return _to_version(self._version_row(session, model, version), model)

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._sessions() as session:
            model = self._model_row(session, name)
            rows = session.scalars(
                select(SqlModelVersion)
                .where(SqlModelVersion.model_id == model.id)
                .order_by(SqlModelVersion.version)
            ).all()
            return [_to_version(r, model) for r in rows]

    # -- deleting --------------------------------------------------------------------
    def delete_version(self, name: str, version: int) -> ModelVersion:
        with transaction(self._sessions) as session:
            model = self._model_row(session, name, lock=True)
            # Write first, as create_version does: the row lock on PostgreSQL and the
            # database's write lock on SQLite are held before the aliases are read, so no
            # alias can move onto the version between the check and the delete
            # (set_alias takes the same locks).
            model.updated_at = utcnow()
            session.flush()
            row = self._version_row(session, model, version)
            given = session.scalar(
                select(SqlRegisteredModel.last_version).where(SqlRegisteredModel.id == model.id)
            )
            # a model registered before last_version existed: keep the number taken
            model.last_version = max(given or 0, self._latest(session, model.id) or 0)
            aliases = sorted(
                session.scalars(
                    select(SqlModelAlias.alias).where(
                        SqlModelAlias.model_id == model.id, SqlModelAlias.version == version
                    )
                )
            )
            if aliases:
                raise aliased_version_conflict(name, version, aliases)
            _jobs_in_the_way(session, name, version)
            self._guard(session, name, version)
            gone = _to_version(row, model)
            session.delete(row)
            session.flush()
            return gone

    def delete_model(self, name: str) -> DeletedModel:
        with transaction(self._sessions) as session:
            model = self._model_row(session, name, lock=True)
            model.updated_at = utcnow()  # write first: see delete_version
            session.flush()
            _jobs_in_the_way(session, name)
            self._guard(session, name, None)
            rows = session.scalars(
                select(SqlModelVersion)
                .where(SqlModelVersion.model_id == model.id)
                .order_by(SqlModelVersion.version)
            ).all()
            versions = [_to_version(r, model) for r in rows]
            aliases = {
                a.alias: a.version
                for a in session.scalars(
                    select(SqlModelAlias).where(SqlModelAlias.model_id == model.id)
                )
            }
            gone = RegisteredModel(
                name=model.name,
                task=model.task,
                description=model.description,
                created_at=model.created_at,
                updated_at=model.updated_at,
                aliases=aliases,
                latest_version=max((v.version for v in versions), default=None),
            )
            for statement in (
                delete(SqlAliasEvent).where(SqlAliasEvent.model_id == model.id),
                delete(SqlModelAlias).where(SqlModelAlias.model_id == model.id),
                delete(SqlModelVersion).where(SqlModelVersion.model_id == model.id),
            ):
                session.execute(statement.execution_options(synchronize_session=False))
            schedule = session.execute(
                delete(SqlSchedule)
                .where(SqlSchedule.model == name)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                delete(SqlDriftAlert)
                .where(SqlDriftAlert.model == name)
                .execution_options(synchronize_session=False)
            )
            session.expunge(model)
            session.execute(
                delete(SqlRegisteredModel)
                .where(SqlRegisteredModel.id == model.id)
                .execution_options(synchronize_session=False)
            )
            return DeletedModel(
                model=gone,
                versions=versions,
                schedule_removed=bool(schedule.rowcount),  # type: ignore[attr-defined]
            )

    # -- aliases ---------------------------------------------------------------------
    def resolve_alias(self, name: str, alias: str) -> int:
        with self._sessions() as session:
            model = self._model_row(session, name)
            for a in model.aliases:
                if a.alias == alias:
                    return a.version
            raise AliasNotFound(f"model {name!r} has no alias {alias!r}")

    def set_alias(
        self, name: str, alias: str, version: int, *, action: str = "set", actor: str = ""
    ) -> AliasEvent:
        check_name(alias, "alias")
        with transaction(self._sessions) as session:
            model = self._model_row(session, name, lock=True)
            # Write first (see delete_version): a version being deleted is either gone
            # when it is read next, or gets its alias before the delete looks.
            model.updated_at = utcnow()
            session.flush()
            target = self._version_row(session, model, version)
            if target.status != "ready":
                raise ConflictError(
                    f"{name}:{version} is {target.status!r}; only a 'ready' version can get "
                    "an alias"
                )
            current = next((a for a in model.aliases if a.alias == alias), None)
            before = current.version if current else None
            if current is None:
                session.add(SqlModelAlias(model_id=model.id, alias=alias, version=version))
            else:
                current.version = version
                current.updated_at = utcnow()
            event = SqlAliasEvent(
                model_id=model.id,
                alias=alias,
                action=action,
                from_version=before,
                to_version=version,
                actor=actor,
            )
            session.add(event)
            session.flush()
            return _to_event(event, name)

    def alias_history(self, name: str, alias: str) -> list[AliasEvent]:
        with self._sessions() as session:
            model = self._model_row(session, name)
            rows = session.scalars(
                select(SqlAliasEvent)
                .where(SqlAliasEvent.model_id == model.id, SqlAliasEvent.alias == alias)
                .order_by(SqlAliasEvent.id)
            ).all()
            return [_to_event(r, name) for r in rows]

    def all_aliases(self) -> dict[tuple[str, str], int]:
        with self._sessions() as session:
            rows = session.execute(
                select(SqlRegisteredModel.name, SqlModelAlias.alias, SqlModelAlias.version).join(
                    SqlModelAlias, SqlModelAlias.model_id == SqlRegisteredModel.id
                )
            )
            return {(row[0], row[1]): row[2] for row in rows}
