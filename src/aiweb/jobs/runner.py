"""Run one attempt of a job: the same code in ``aiweb serve`` and in a Celery worker.

:func:`execute` claims the job in the database, keeps its lease alive from a heartbeat
thread while the handler works, and records the outcome. Handlers report progress
through :class:`~aiweb.jobs.context.JobContext`, which is also where cancellation, a lost
lease and a shutting-down process surface as exceptions.

The error stored on a failed job is shown to whoever submitted it: the paths of the job's
scratch directory and of the aiweb home are taken out of it (:func:`scrub_paths`); the
log keeps the full message.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis.exceptions
import sqlalchemy.exc

from aiweb.db.orm import utcnow
from aiweb.db.session import make_session_factory
from aiweb.errors import AiwebError
from aiweb.jobs.context import JobContext
from aiweb.jobs.entities import (
    Job,
    JobCancelled,
    JobInterrupted,
    LeaseLost,
    TransientJobError,
)
from aiweb.jobs.env import JobEnv
from aiweb.jobs.events import announce
from aiweb.jobs.types import JobTypes

log = logging.getLogger("aiweb.jobs")

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


def scrub_paths(text: str, *directories: Path) -> str:
    """``text`` without the server's paths of ``directories`` (a job's scratch directory,
    the aiweb home): a file inside one is named relative to it (``/srv/aiweb/tmp/jobs/ab12/
    reviews.csv: …`` -> ``reviews.csv: …``), the directory itself becomes ``…``. What a job
    error tells its submitter says what is wrong, not where the server keeps its files.
    Deeper directories come first, so the scratch directory inside the home is matched
    whole."""
    forms: set[str] = set()
    for directory in directories:
        for form in (str(directory), str(directory.resolve())):
            if form not in ("", "/", "."):
                forms.add(form.rstrip("/"))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form + "/", "").replace(form, "…")
    return text


def backoff_s(attempt: int, first_s: float, max_s: float) -> float:
    """Exponential back-off: ``first_s * 2**(attempt-1)``, at most ``max_s`` seconds."""
    return float(min(max_s, first_s * 2 ** max(0, attempt - 1)))


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
    types: JobTypes,
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
        types: the installed job types (the handler of the job is its type's).
        stop: set when the process shuts down; the job then goes back to ``pending``.
        claimed: the job already claimed by the caller (the embedded runner).

    Returns:
        The :class:`Outcome`. Database errors while claiming or recording propagate
        (the caller retries the whole call).
    """
    settings = env.settings.jobs
    # the handlers come imported (scikit-learn, onnxruntime …: seconds on a busy machine)
    # with ``types``, built before any claim: the lease runs from the claim, and no
    # heartbeat is sent until the attempt starts, so a slow import after the claim let the
    # lease lapse and another runner take the job over
    job = claimed or env.jobs.claim(job_id, runner, lease_s=settings.lease_s)
    if job is None:
        return _not_claimed(env, job_id)
    fn = types.handler_for(job)
    if fn is None:
        env.jobs.finish(job.id, job.attempts, "failed", error=f"unknown job type {job.type!r}")
        announce_finished(env, job.id)
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
        announce_finished(env, job.id)
        log.info("job %s succeeded", job.id)
        ctx.run_cleanups()
        return Outcome("succeeded", job.id)
    except JobCancelled:
        env.jobs.finish(job.id, job.attempts, "cancelled", error="cancelled on request")
        announce_finished(env, job.id)
        ctx.run_cleanups()
        return Outcome("cancelled", job.id)
    except LeaseLost as exc:
        log.warning("job %s: %s", job.id, exc)
        return Outcome("lost", job.id, detail=str(exc))
    except JobInterrupted:
        env.jobs.release(job.id, job.attempts, delay_s=0, error=None)
        return Outcome("interrupted", job.id)
    except AiwebError as exc:  # bad data, unknown model …: retrying cannot help
        detail = scrub_paths(exc.detail, workdir, env.settings.home)
        env.jobs.finish(job.id, job.attempts, "failed", error=detail)
        announce_finished(env, job.id)
        log.info("job %s failed: %s", job.id, exc.detail)
        ctx.run_cleanups()
        return Outcome("failed", job.id, detail=detail)
    except Exception as exc:
        reason = scrub_paths(f"{type(exc).__name__}: {exc}", workdir, env.settings.home)
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
        announce_finished(env, job.id)
        ctx.run_cleanups()
        return Outcome("failed", job.id, detail=reason)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def announce_finished(env: JobEnv, job_id: str) -> None:
    """Queue the ``job.finished`` webhook event of a job that reached ``succeeded``,
    ``failed`` or ``cancelled`` (:mod:`aiweb.jobs.events`). A failure is logged, never
    raised: the job's outcome is recorded already."""
    try:
        job = env.jobs.get(job_id)
    except Exception:
        log.warning("job.finished event of job %s not queued", job_id, exc_info=True)
        return
    announce(make_session_factory(env.engine), [job])


def _not_claimed(env: JobEnv, job_id: str) -> Outcome:
    """Why ``job_id`` could not be claimed, as an outcome."""
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
