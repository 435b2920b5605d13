"""Submitting jobs: check what they refer to, write the row, hand it to a runner.

Where a job runs is the dispatcher's business: :class:`EmbeddedDispatcher` wakes the
runner inside ``aiweb serve``; :class:`CeleryDispatcher` publishes the job id to the
broker. Either way the database row is written first and is the truth about the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from aiweb.config import Settings
from aiweb.errors import BrokerUnavailableError, InvalidInputError, NotFoundError
from aiweb.jobs.entities import Job
from aiweb.jobs.schemas import (
    BatchPredictJobSpec,
    RecommendationTrainData,
    RecommendationTrainJobSpec,
    TrainData,
    TrainJobSpec,
)
from aiweb.jobs.store import SqlJobStore
from aiweb.registry.entities import ModelRef

if TYPE_CHECKING:
    from celery import Celery

    from aiweb.datasets.service import DatasetService
    from aiweb.registry.service import RegistryService

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


def make_dispatcher(settings: Settings, wake: Callable[[], None] | None = None) -> Dispatcher:
    """Celery when ``broker_url`` is set, else the embedded runner."""
    if settings.broker_url:
        from aiweb.jobs.celery_app import make_celery

        return CeleryDispatcher(make_celery(settings))
    return EmbeddedDispatcher(wake)


class JobService:
    """Submit, read and cancel jobs.

    Args:
        store: job rows.
        dispatcher: hands jobs to runners.
        registry: to check and pin the models jobs refer to.
        datasets: to check the datasets jobs refer to.
        settings: attempts per job.
    """

    def __init__(
        self,
        store: SqlJobStore,
        dispatcher: Dispatcher,
        registry: RegistryService,
        datasets: DatasetService,
        settings: Settings,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.registry = registry
        self.datasets = datasets
        self.settings = settings

    def submit(
        self,
        spec: TrainJobSpec | RecommendationTrainJobSpec | BatchPredictJobSpec,
        *,
        actor: str,
        request_id: str | None = None,
    ) -> Job:
        """Check ``spec``, write a pending job and dispatch it.

        Raises:
            InvalidInputError: bad parameters, an unknown dataset or column (422).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: a batch job's model (404).
            BrokerUnavailableError: the broker is unreachable; no job is left behind (503).
        """
        if isinstance(spec, TrainJobSpec):
            params = self.check_train(spec)
        elif isinstance(spec, RecommendationTrainJobSpec):
            params = self.check_recommendation_train(spec)
        else:
            params = self.check_batch_predict(spec)
        job = self.store.create(
            spec.type,
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

    def _dataset_columns(self, field: str, dataset_id: str, needed: dict[str, str]) -> None:
        try:
            dataset = self.datasets.get(dataset_id)
        except NotFoundError:
            raise InvalidInputError(f"{field} {dataset_id!r} does not exist") from None
        for what, column in needed.items():
            if column not in dataset.columns:
                raise InvalidInputError(
                    f"{what} {column!r} is not a column of dataset {dataset_id} "
                    f"({dataset.name}); its columns are: {', '.join(dataset.columns)}"
                )

    def check_train_data(self, data: TrainData) -> None:
        """Check a training spec's parameters, dataset and columns.

        Raises:
            InvalidInputError: see :meth:`submit`.
        """
        from aiweb import datasets
        from aiweb.classification.trainer import TrainParams

        try:
            TrainParams(**data.params)
        except (ValidationError, TypeError) as exc:
            raise InvalidInputError(f"invalid params: {exc}") from None
        columns = {"text_column": data.text_column, "label_column": data.label_column}
        if data.dataset_id is not None:
            self._dataset_columns("dataset_id", data.dataset_id, columns)
        if data.eval_dataset_id is not None:
            self._dataset_columns("eval_dataset_id", data.eval_dataset_id, columns)
        if data.dataset is not None:
            try:
                datasets.info(data.dataset)
            except NotFoundError:
                known = ", ".join(d.name for d in datasets.available())
                raise InvalidInputError(
                    f"unknown dataset {data.dataset!r}; known datasets: {known}"
                ) from None

    def check_train(self, spec: TrainJobSpec) -> dict[str, Any]:
        """The stored parameters of a training job."""
        self.check_train_data(spec)
        return spec.model_dump(exclude={"type"}, exclude_none=True)

    def check_recommendation_train_data(self, model: str, data: RecommendationTrainData) -> None:
        """Check a recommender's training spec: known algorithms in ``params`` with valid
        parameters, and no model ``model`` of another task.

        Raises:
            InvalidInputError: see :meth:`submit`.
        """
        from aiweb.errors import ModelNotFound
        from aiweb.recommendations import algorithms as algos
        from aiweb.recommendations.training import TASK

        for name, values in data.params.items():
            algos.make(name, values)  # InvalidInputError for an unknown name or parameter
        try:
            existing = self.registry.get_model(model)
        except ModelNotFound:
            return
        if existing.task != TASK:
            raise InvalidInputError(
                f"model {model!r} exists with task {existing.task!r}, not {TASK!r}; "
                "choose another name"
            )

    def check_recommendation_train(self, spec: RecommendationTrainJobSpec) -> dict[str, Any]:
        """The stored parameters of a recommender's training job."""
        self.check_recommendation_train_data(spec.model, spec)
        return spec.model_dump(exclude={"type"}, exclude_none=True)

    def check_batch_predict(self, spec: BatchPredictJobSpec) -> dict[str, Any]:
        """The stored parameters of a batch-prediction job, with the model version pinned
        (an alias moved while the job waits does not change what it scores with)."""
        try:
            ref = ModelRef.parse(spec.model)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        version = self.registry.resolve(ref)
        if version.task != "text-classification" or version.status != "ready":
            raise InvalidInputError(
                f"{version.name}:{version.version} is a {version.task!r} model with status "
                f"{version.status!r}; batch prediction needs a ready text-classification model"
            )
        self._dataset_columns("dataset_id", spec.dataset_id, {"text_column": spec.text_column})
        params = spec.model_dump(exclude={"type"})
        params["model_version"] = version.version
        params["model_name"] = version.name
        return params

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
