"""What job handlers work with, built the same way in ``aiweb serve`` and in a worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from aiweb.config import Settings
from aiweb.datasets.service import DatasetService
from aiweb.db.migrate import upgrade
from aiweb.db.session import make_session_factory
from aiweb.errors import ModelNotFound
from aiweb.jobs.schedules import SqlScheduleStore
from aiweb.jobs.store import SqlJobStore
from aiweb.registry.entities import ModelVersion
from aiweb.registry.factory import build_registry
from aiweb.registry.service import RegistryService
from aiweb.rollout.guard import guard_registry


@dataclass
class JobEnv:
    """Settings, database and artifact store as seen by a job.

    Attributes:
        settings: configuration.
        registry: models, versions, aliases, artifacts, audit log.
        jobs: the job rows.
        schedules: the retraining schedules.
        datasets: uploaded data files.
        engine: the database engine (disposed by :meth:`close` when owned).
    """

    settings: Settings
    registry: RegistryService
    jobs: SqlJobStore
    schedules: SqlScheduleStore
    datasets: DatasetService
    engine: Engine
    owns_engine: bool = True
    #: ``{periodic chore: time.monotonic() of its last run}`` in this process (retention,
    #: the crash-litter sweep): the scheduler tick runs each every ``retention.interval_s``
    last_run: dict[str, float] = field(default_factory=dict)

    def version_of_job(self, name: str, job_id: str) -> ModelVersion | None:
        """The ready version of model ``name`` that an earlier attempt of job ``job_id``
        registered (its lineage names the job), if any: a retried training job finds
        its own result instead of training again."""
        try:
            versions = self.registry.list_versions(name)
        except ModelNotFound:
            return None
        for version in reversed(versions):
            if version.lineage.get("job_id") == job_id and version.status == "ready":
                return version
        return None

    def close(self) -> None:
        """Release the database connections (when this env opened them)."""
        if self.owns_engine:
            self.engine.dispose()


def build_job_env(settings: Settings, *, migrate: bool = False) -> JobEnv:
    """Open the database and artifact store named by ``settings``.

    Args:
        migrate: bring the schema up to date first (workers started before ``serve``).
    """
    registry, engine = build_registry(settings)
    guard_registry(registry)  # no deletion of what a running rollout serves
    if migrate:
        upgrade(engine)
    return env_from(settings, registry, engine, owns_engine=True)


def env_from(
    settings: Settings, registry: RegistryService, engine: Engine, *, owns_engine: bool
) -> JobEnv:
    """A job env on an already open registry and engine (the API process)."""
    sessions = make_session_factory(engine)
    return JobEnv(
        settings=settings,
        registry=registry,
        jobs=SqlJobStore(sessions),
        schedules=SqlScheduleStore(sessions),
        datasets=DatasetService(sessions, registry.artifacts, settings),
        engine=engine,
        owns_engine=owns_engine,
    )
