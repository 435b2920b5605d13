"""SQLAlchemy implementation of :class:`~aiweb.registry.store.RegistryStore`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from aiweb.db.orm import (
    SqlAliasEvent,
    SqlModelAlias,
    SqlModelVersion,
    SqlRegisteredModel,
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
from aiweb.names import check_name
from aiweb.registry.entities import (
    AliasEvent,
    ModelVersion,
    RegisteredModel,
)

_VERSION_INSERT_ATTEMPTS = 5


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
        with self._sessions() as session:
            grouped = session.execute(
                select(SqlModelVersion.model_id, func.max(SqlModelVersion.version)).group_by(
                    SqlModelVersion.model_id
                )
            )
            latest: dict[int, int] = {row[0]: row[1] for row in grouped}
            rows = session.scalars(
                select(SqlRegisteredModel)
                .options(selectinload(SqlRegisteredModel.aliases))
                .order_by(SqlRegisteredModel.name)
            ).all()
            return [_to_model(r, latest.get(r.id)) for r in rows]

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
                    version = (self._latest(session, model.id) or 0) + 1
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
            model = self._model_row(session, name)
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
            model.updated_at = utcnow()
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
