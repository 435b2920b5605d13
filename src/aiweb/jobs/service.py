"""Submitting jobs: check what they refer to, write the row, hand it to a runner.

What can be submitted, and how it is checked, is the installed job types' business
(:class:`~aiweb.jobs.types.JobTypes`, given by the tasks).

Where a job runs is the dispatcher's business: :class:`EmbeddedDispatcher` wakes the
runner inside ``aiweb serve``; :class:`CeleryDispatcher` publishes the job id to the
broker. Either way the database row is written first and is the truth about the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from aiweb.config import Settings
from aiweb.datasets.service import DatasetService
from aiweb.errors import BrokerUnavailableError
from aiweb.jobs.entities import Job
from aiweb.jobs.store import SqlJobStore
from aiweb.jobs.types import CheckContext, JobTypes
from aiweb.registry.service import RegistryService

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("aiweb.jobs")

RUN_JOB_TASK = "aiweb.run_job"


class Dispatcher(Protocol):
    """Hands a written job to whatever runs jobs."""

    def dispatch(self, job_id: str) -> None:
        """Make sure ``job_id`` will run.

        Raises:
            BrokerUnavailableError: the job could not be handed over.
        """
        ...


class EmbeddedDispatcher:
    """Jobs run inside ``aiweb serve``: the runner polls the table; ``wake`` (when this
    process has a runner) makes it look at once."""

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        self.wake = wake

    def dispatch(self, job_id: str) -> None:
        if self.wake is not None:
            self.wake()


class CeleryDispatcher:
    """Publish ``aiweb.run_job(job_id)`` to the Celery broker.

    Publishing is tried a few times within about a second; a broker still unreachable
    then is a :class:`BrokerUnavailableError` (503), not a hang.
    """

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def dispatch(self, job_id: str) -> None:
        from kombu.exceptions import OperationalError

        try:
            self.celery.send_task(
                RUN_JOB_TASK,
                args=[job_id],
                retry=True,
                retry_policy={
                    "max_retries": 2,
                    "interval_start": 0.1,
                    "interval_step": 0.3,
                    "interval_max": 0.5,
                },
            )
        except (OperationalError, OSError) as exc:
            log.warning("broker unreachable while dispatching job %s: %s", job_id, exc)
            raise BrokerUnavailableError(
                f"the job broker is unreachable ({type(exc).__name__}); no job was created. "
                "Retry later.",
                headers={"Retry-After": "5"},
            ) from exc


class JobService:
    """Submit, read and cancel jobs.

    Args:
        store: job rows.
        dispatcher: hands jobs to runners.
        registry: to check and pin the models jobs refer to.
        datasets: to check the datasets jobs refer to.
        settings: attempts per job.
        types: the installed job types: what can be submitted, and how it is checked.
    """

    def __init__(
        self,
        store: SqlJobStore,
        dispatcher: Dispatcher,
        registry: RegistryService,
        datasets: DatasetService,
        settings: Settings,
        types: JobTypes,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.registry = registry
        self.datasets = datasets
        self.settings = settings
        self.types = types
        self.checks = CheckContext(registry, datasets, settings)

    def submit(self, spec: BaseModel, *, actor: str, request_id: str | None = None) -> Job:
        """Check ``spec`` (a job body, :meth:`JobTypes.parse`), write a pending job and
        dispatch it.

        Raises:
            InvalidInputError: bad parameters, an unknown dataset or column (422).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: a batch job's model (404).
            BrokerUnavailableError: the broker is unreachable; no job is left behind (503).
        """
        type_, params = self.types.check(self.checks, spec)
        job = self.store.create(
            type_,
            params,
            submitted_by=actor,
            max_attempts=self.settings.jobs.max_attempts,
        )
        try:
            self.dispatcher.dispatch(job.id)
        except BrokerUnavailableError:
            self.store.delete(job.id)
            raise
        self.registry.record(
            actor,
            "job.submitted",
            f"job:{job.id}",
            after={"type": job.type, "params": params},
            request_id=request_id,
        )
        return job

    def check(self, spec: BaseModel) -> dict[str, Any]:
        """Check ``spec`` as :meth:`submit` does, without submitting it.

        Returns:
            The parameters the job would store.

        Raises:
            InvalidInputError, NotFoundError: see :meth:`submit`.
        """
        return self.types.check(self.checks, spec)[1]

    def scheduled_spec(
        self, model: str, training: dict[str, Any], promotion: dict[str, Any]
    ) -> BaseModel:
        """The job a retraining schedule of ``model`` submits: its training fields with
        its promotion rule.

        Raises:
            pydantic.ValidationError: the fields are not a valid job body.
            LookupError: no installed job type is schedulable.
        """
        type_ = self.types.scheduled_type
        if type_ is None:
            raise LookupError("no installed job type can be scheduled")
        fields = {**training, "type": type_, "model": model, "promotion": promotion}
        return self.types.parse(fields, type_=type_)

    def cancel(self, job_id: str, *, actor: str, request_id: str | None = None) -> Job:
        """Cancel ``job_id`` (see :meth:`SqlJobStore.cancel`)."""
        job = self.store.cancel(job_id)
        self.registry.record(
            actor,
            "job.cancel",
            f"job:{job_id}",
            after={"status": job.status},
            request_id=request_id,
        )
        return job
