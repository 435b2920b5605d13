"""Run one attempt of a job: the same code in ``aiweb serve`` and in a Celery worker.

:func:`execute` claims the job in the database, keeps its lease alive from a heartbeat
thread while the handler works, and records the outcome. Handlers report progress
through :class:`JobContext`, which is also where cancellation, a lost lease and a
shutting-down process surface as exceptions.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import redis.exceptions
import sqlalchemy.exc

from aiweb.errors import AiwebError
from aiweb.jobs.entities import (
    Job,
    JobCancelled,
    JobInterrupted,
    LeaseLost,
    TransientJobError,
)

if TYPE_CHECKING:
    from aiweb.jobs.env import JobEnv

log = logging.getLogger("aiweb.jobs")

#: ``handler(env, ctx) -> result``: does the work of one job type; the result (JSON) is
#: stored on the job. Raise :class:`~aiweb.errors.AiwebError` for a permanent failure
#: (bad data …) and :class:`TransientJobError` for one worth retrying.
Handler = Callable[["JobEnv", "JobContext"], dict[str, Any]]

HANDLERS: dict[str, Handler] = {}


def handler(type_: str, task: str | None = None) -> Callable[[Handler], Handler]:
    """Register the handler of job type ``type_`` or, with ``task``, of the jobs of that
    type whose ``params["task"]`` is ``task`` (``train`` of a ``recommendation``)."""

    def register(fn: Handler) -> Handler:
        HANDLERS[type_ if task is None else f"{type_}:{task}"] = fn
        return fn

    return register


def handler_for(handlers: dict[str, Handler], job: Job) -> Handler | None:
    """The handler of ``job``: the one registered for its type and task, else for its type."""
    task = job.params.get("task")
    if isinstance(task, str):
        fn = handlers.get(f"{job.type}:{task}")
        if fn is not None:
            return fn
    return handlers.get(job.type)


def load_handlers() -> dict[str, Handler]:
    """Import the modules that register handlers, and return the table."""
    from aiweb.classification import jobs as _classification_jobs  # noqa: F401
    from aiweb.recommendations import jobs as _recommendation_jobs  # noqa: F401
    from aiweb.search import jobs as _search_jobs  # noqa: F401

    return HANDLERS


TRANSIENT: tuple[type[BaseException], ...] = (
    TransientJobError,
    ConnectionError,
    TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth another attempt (a service briefly unreachable)."""
    return isinstance(exc, TRANSIENT)


def backoff_s(attempt: int, first_s: float, max_s: float) -> float:
    """Exponential back-off: ``first_s * 2**(attempt-1)``, at most ``max_s`` seconds."""
    return float(min(max_s, first_s * 2 ** max(0, attempt - 1)))


class JobContext:
    """What a handler sees of its job: parameters, progress, a scratch directory.

    Progress is kept in memory and written by the heartbeat thread (at most twice a
    second), so reporting it is cheap enough to call per chunk.

    Attributes:
        job: the job as claimed (``job.attempts`` is this attempt).
        workdir: a scratch directory, removed after the attempt.
    """

    def __init__(self, job: Job, workdir: Path, stop: threading.Event) -> None:
        self.job = job
        self.workdir = workdir
        self._stop = stop
        self._lock = threading.Lock()
        self._progress = 0.0
        self._message = "started"
        self._dirty = True
        self.cancel_requested = False
        self.lease_lost = False
        self.cleanups: list[Callable[[], None]] = []

    def when_finished(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` once the job is finished for good (succeeded, failed or
        cancelled, recorded in the database), not when this attempt is retried or
        interrupted: what a retry still needs (an input file) is removed only then.
        A cleanup that raises is logged and ignored."""
        self.cleanups.append(cleanup)

    def run_cleanups(self) -> None:
        """Run the :meth:`when_finished` callbacks (the runner calls this)."""
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception:
                log.exception("job %s: a cleanup failed", self.job.id)

    @property
    def attempt(self) -> int:
        return self.job.attempts

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report ``fraction`` (0 to 1) done, with what is happening now.

        Raises:
            JobCancelled: a cancellation was requested.
            LeaseLost: another runner took the job over.
            JobInterrupted: this process is shutting down.
        """
        with self._lock:
            self._progress = min(1.0, max(0.0, fraction))
            if message is not None:
                self._message = message
            self._dirty = True
        self.check()

    def check(self) -> None:
        """Raise if the job must stop now (see :meth:`progress`)."""
        if self.lease_lost:
            raise LeaseLost(f"job {self.job.id} was taken over by another runner")
        if self.cancel_requested:
            raise JobCancelled(f"job {self.job.id} was cancelled")
        if self._stop.is_set():
            raise JobInterrupted(f"job {self.job.id} interrupted by shutdown")

    def snapshot(self) -> tuple[float, str, bool]:
        """``(progress, message, changed since the last snapshot)``."""
        with self._lock:
            dirty, self._dirty = self._dirty, False
            return self._progress, self._message, dirty


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, for the caller (embedded runner or Celery task).

    ``kind``: ``succeeded``, ``failed``, ``cancelled``; ``retry`` (transient error,
    run again after ``delay_s``); ``busy`` (another live runner has it: look again
    after ``delay_s``); ``skipped`` (finished, cancelled, or not claimable);
    ``lost`` (the lease was taken over); ``interrupted`` (shutdown; back to pending).
    """

    kind: Literal[
        "succeeded", "failed", "cancelled", "retry", "busy", "skipped", "lost", "interrupted"
    ]
    job_id: str
    delay_s: float = 0.0
    detail: str = ""


class _Heartbeat(threading.Thread):
    def __init__(self, env: JobEnv, ctx: JobContext) -> None:
        super().__init__(name=f"aiweb-heartbeat-{ctx.job.id[:8]}", daemon=True)
        self.env = env
        self.ctx = ctx
        self.done = threading.Event()
        self.keepalive_s = max(0.2, env.settings.jobs.lease_s / 4)

    def run(self) -> None:
        last = time.monotonic()
        while not self.done.wait(0.5):
            progress, message, dirty = self.ctx.snapshot()
            if not dirty and time.monotonic() - last < self.keepalive_s:
                continue
            try:
                self.ctx.cancel_requested = self.env.jobs.heartbeat(
                    self.ctx.job.id, self.ctx.attempt, progress=progress, message=message
                )
                last = time.monotonic()
            except LeaseLost:
                self.ctx.lease_lost = True
                return
            except Exception:  # database briefly away: try again next beat
                log.warning("heartbeat of job %s failed", self.ctx.job.id, exc_info=True)


def execute(
    env: JobEnv,
    job_id: str,
    runner: str,
    *,
    stop: threading.Event | None = None,
    claimed: Job | None = None,
) -> Outcome:
    """Claim ``job_id`` for ``runner`` and run one attempt of it to an outcome.

    Safe to call any number of times for the same job, from any process: only one
    attempt runs at a time (the claim is atomic), a finished job is left alone, and a
    job whose runner died is taken over once its lease expires.

    Args:
        env: database, registry, artifact store and settings.
        job_id: the job.
        runner: who runs it (:func:`aiweb.jobs.store.runner_name`).
        stop: set when the process shuts down; the job then goes back to ``pending``.
        claimed: the job already claimed by the caller (the embedded runner).

    Returns:
        The :class:`Outcome`. Database errors while claiming or recording propagate
        (the caller retries the whole call).
    """
    settings = env.settings.jobs
    # import the handlers (scikit-learn, onnxruntime …: seconds on a busy machine) before
    # claiming: the lease runs from the claim, and no heartbeat is sent until the attempt
    # starts, so a slow import after the claim let the lease lapse and another runner
    # take the job over
    handlers = load_handlers()
    job = claimed or env.jobs.claim(job_id, runner, lease_s=settings.lease_s)
    if job is None:
        return _not_claimed(env, job_id)
    fn = handler_for(handlers, job)
    if fn is None:
        env.jobs.finish(job.id, job.attempts, "failed", error=f"unknown job type {job.type!r}")
        return Outcome("failed", job.id, detail=f"unknown job type {job.type!r}")
    # one scratch directory per job: what a killed attempt left behind on this host is
    # removed when the next attempt starts here
    workdir = env.settings.home / "tmp" / "jobs" / job.id
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ctx = JobContext(job, workdir, stop or threading.Event())
    beat = _Heartbeat(env, ctx)
    beat.start()
    log.info("job %s (%s) attempt %d/%d started", job.id, job.type, job.attempts, job.max_attempts)
    try:
        try:
            ctx.check()
            result = fn(env, ctx)
        finally:
            beat.done.set()
            beat.join()
        env.jobs.finish(job.id, job.attempts, "succeeded", result=result)
        log.info("job %s succeeded", job.id)
        ctx.run_cleanups()
        return Outcome("succeeded", job.id)
    except JobCancelled:
        env.jobs.finish(job.id, job.attempts, "cancelled", error="cancelled on request")
        ctx.run_cleanups()
        return Outcome("cancelled", job.id)
    except LeaseLost as exc:
        log.warning("job %s: %s", job.id, exc)
        return Outcome("lost", job.id, detail=str(exc))
    except JobInterrupted:
        env.jobs.release(job.id, job.attempts, delay_s=0, error=None)
        return Outcome("interrupted", job.id)
    except AiwebError as exc:  # bad data, unknown model …: retrying cannot help
        env.jobs.finish(job.id, job.attempts, "failed", error=exc.detail)
        log.info("job %s failed: %s", job.id, exc.detail)
        ctx.run_cleanups()
        return Outcome("failed", job.id, detail=exc.detail)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if is_transient(exc) and job.attempts < job.max_attempts:
            delay = backoff_s(job.attempts, settings.retry_backoff_s, settings.retry_backoff_max_s)
            log.warning(
                "job %s attempt %d: %s; retrying in %.0f s", job.id, job.attempts, reason, delay
            )
            env.jobs.release(job.id, job.attempts, delay_s=delay, error=reason)
            return Outcome("retry", job.id, delay_s=delay, detail=reason)
        log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        if is_transient(exc):
            reason = f"{reason} (attempt {job.attempts} of {job.max_attempts}; no attempts left)"
        env.jobs.finish(job.id, job.attempts, "failed", error=reason)
        ctx.run_cleanups()
        return Outcome("failed", job.id, detail=reason)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _not_claimed(env: JobEnv, job_id: str) -> Outcome:
    """Why ``job_id`` could not be claimed, as an outcome."""
    from aiweb.db.orm import utcnow

    job = env.jobs.get(job_id)
    lease_s = env.settings.jobs.lease_s
    if job.terminal:
        return Outcome("skipped", job_id, detail=f"already {job.status}")
    if job.status == "running" and job.heartbeat_at is not None:
        left = lease_s - (utcnow() - job.heartbeat_at).total_seconds()
        if left <= 0:  # its runner died and it has no attempts left (or was cancelled)
            env.jobs.fail_exhausted(lease_s=lease_s)
            return Outcome("skipped", job_id, detail=env.jobs.get(job_id).status)
        return Outcome("busy", job_id, delay_s=max(1.0, left + 1.0), detail=f"run by {job.runner}")
    if job.status == "pending" and job.run_after > utcnow():
        left = (job.run_after - utcnow()).total_seconds()
        return Outcome("busy", job_id, delay_s=max(0.5, left), detail="not due yet")
    return Outcome("skipped", job_id, detail=f"{job.status}, not claimable")
