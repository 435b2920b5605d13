"""The Celery app of production mode (``AIWEB_BROKER_URL``): ``aiweb worker`` runs its
tasks, ``aiweb scheduler`` runs its beat.

The worker's app is built with the installed job types (``make_celery(settings, types)``),
which registers the tasks that run jobs; without them the app only sends tasks (the API's
dispatcher, beat).

Tasks carry the job id only; the job row holds everything else. ``aiweb.run_job`` is
acknowledged late and rejected (so redelivered) when its worker process is lost, and
it is idempotent by job id: a redelivered or duplicated message finds the job claimed,
running elsewhere or finished, and does nothing twice. Celery's result backend is not
used: the database is the truth about jobs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_shutdown
from sqlalchemy.exc import InterfaceError, OperationalError

from aiweb.config import Settings, get_settings
from aiweb.jobs.env import JobEnv, build_job_env
from aiweb.jobs.runner import execute
from aiweb.jobs.scheduler import tick
from aiweb.jobs.service import RUN_JOB_TASK, CeleryDispatcher, Dispatcher, EmbeddedDispatcher
from aiweb.jobs.store import runner_name
from aiweb.jobs.types import JobTypes

log = logging.getLogger("aiweb.jobs")

TICK_TASK = "aiweb.scheduler_tick"
#: Bound on Celery-level retries of one message (each waits ``Outcome.delay_s``); job
#: attempts themselves are bounded by ``jobs.max_attempts`` in the database.
MAX_TASK_RETRIES = 1000

_env_lock = threading.Lock()
_envs: dict[tuple[int, int], JobEnv] = {}


def _env(app: Celery, settings: Settings) -> JobEnv:
    """The job env of this (forked) worker process and app, opened on first use."""
    key = (os.getpid(), id(app))
    with _env_lock:
        if key not in _envs:
            _envs[key] = build_job_env(settings)
        return _envs[key]


def close_envs() -> None:
    """Close the job envs this process opened (worker shutdown, tests)."""
    pid = os.getpid()
    with _env_lock:
        for key in [k for k in _envs if k[0] == pid]:
            _envs.pop(key).close()


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _close_env(**_kwargs: Any) -> None:
    close_envs()


def make_celery(settings: Settings | None = None, types: JobTypes | None = None) -> Celery:
    """Build the Celery app from ``settings`` (read from the environment when ``None``).

    Args:
        settings: the configuration.
        types: the installed job types: with them, the app runs jobs and scheduler ticks
            (a worker's app); without, it only sends them.

    Raises:
        ValueError: ``broker_url`` is not set.
    """
    settings = settings or get_settings()
    if not settings.broker_url:
        raise ValueError("AIWEB_BROKER_URL is not set")
    app = Celery("aiweb", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.jobs.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2.0,
        broker_transport_options={
            "visibility_timeout": settings.jobs.broker_visibility_timeout_s,
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.3,
            "interval_max": 0.5,
        },
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "aiweb-scheduler-tick": {
                "task": TICK_TASK,
                "schedule": settings.jobs.scheduler_interval_s,
            }
        },
    )
    if types is not None:
        _register_tasks(app, settings, types)
    return app


def _register_tasks(app: Celery, settings: Settings, types: JobTypes) -> None:
    """Register the tasks a worker runs: ``aiweb.run_job`` and ``aiweb.scheduler_tick``."""

    @app.task(  # type: ignore[untyped-decorator]
        name=RUN_JOB_TASK,
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=MAX_TASK_RETRIES,
    )
    def run_job(self: Task, job_id: str) -> str:
        """Run one attempt of ``job_id``; retry the message when it must run later."""
        try:
            outcome = execute(_env(app, settings), job_id, runner_name("celery"), types)
        except (OperationalError, InterfaceError) as exc:  # database briefly away
            retries = self.request.retries or 0
            raise self.retry(exc=exc, countdown=min(60, 2**retries), max_retries=8) from exc
        log.info("job %s: %s %s", job_id, outcome.kind, outcome.detail)
        if outcome.kind in ("retry", "busy"):
            raise self.retry(countdown=outcome.delay_s)
        return outcome.kind

    @app.task(name=TICK_TASK, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def scheduler_tick() -> dict[str, int]:
        """Start due scheduled retraining, re-dispatch jobs whose runner or message was lost."""
        return tick(_env(app, settings), CeleryDispatcher(app), types)


def make_dispatcher(settings: Settings, wake: Callable[[], None] | None = None) -> Dispatcher:
    """Celery when ``broker_url`` is set, else the embedded runner (woken by ``wake``)."""
    if settings.broker_url:
        return CeleryDispatcher(make_celery(settings))
    return EmbeddedDispatcher(wake)
