"""FastAPI dependencies: the long-lived objects of the core the lifespan put on
``app.state`` (a task's routes read its own objects there, see :mod:`aiweb.contract`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aiweb.config import Settings
from aiweb.datasets.service import DatasetService
from aiweb.jobs.env import JobEnv
from aiweb.jobs.service import JobService
from aiweb.monitoring.drift import DriftService
from aiweb.monitoring.feedback import FeedbackService
from aiweb.registry.service import RegistryService
from aiweb.security.audit import AuditLog
from aiweb.security.keys import KeyService


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _registry(request: Request) -> RegistryService:
    registry: RegistryService = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[RegistryService, Depends(_registry)]


async def _keys(request: Request) -> KeyService:
    keys: KeyService = request.app.state.keys
    return keys


async def _audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


KeysDep = Annotated[KeyService, Depends(_keys)]
AuditDep = Annotated[AuditLog, Depends(_audit)]


async def _jobs(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


async def _job_env(request: Request) -> JobEnv:
    env: JobEnv = request.app.state.job_env
    return env


async def _datasets(request: Request) -> DatasetService:
    service: DatasetService = request.app.state.datasets
    return service


JobsDep = Annotated[JobService, Depends(_jobs)]
JobEnvDep = Annotated[JobEnv, Depends(_job_env)]
DatasetsDep = Annotated[DatasetService, Depends(_datasets)]


async def _feedback(request: Request) -> FeedbackService:
    service: FeedbackService = request.app.state.feedback
    return service


FeedbackDep = Annotated[FeedbackService, Depends(_feedback)]


async def _drift(request: Request) -> DriftService:
    service: DriftService = request.app.state.drift
    return service


DriftDep = Annotated[DriftService, Depends(_drift)]


def next_offset(offset: int, shown: int, total: int) -> int | None:
    """The ``offset`` of the next page of a list route, or ``None`` after the last:
    ``shown`` items were listed from ``offset`` of ``total``."""
    end = offset + shown
    return end if end < total else None
