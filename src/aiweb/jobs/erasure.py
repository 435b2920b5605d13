"""Erasure of one user's data (GDPR Art. 17): the ``privacy-erase`` job.

``POST /v1/privacy/erase`` (scope ``admin``) submits it with :func:`submit_erasure`. The
jobs engine knows no task, so it is handed the installed tasks' erasure hooks
(:attr:`aiweb.contract.Task.erase_user`, gathered by :func:`aiweb.tasks.job_types`): the
handler calls each, in the order of the tasks, and reports what each deleted.

What the user id is kept as:

- while the job is pending or running, its ``params`` hold the user id (the runner needs
  it, possibly in another process); when the erasure is done the handler replaces them
  with the subject's digest, before the job reads ``succeeded``;
- the audit log records ``privacy.erase.requested`` (at submit) and ``privacy.erased``
  (with the counts) under the subject's digest only: an HMAC-SHA256 of the user id keyed
  with the secret key (:func:`subject_digest`). It names no one, yet an operator who is
  asked "was user X erased?" can compute the digest of X and find the events.

The core tables hold no user id: the prediction log keys a prediction by its input (its
sha256, or the text with ``AIWEB_LOG_INPUTS``), feedback by prediction id and the API key
that sent it; retention (:mod:`aiweb.monitoring.retention`) bounds how long they are kept.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiweb.config import Settings
from aiweb.jobs.context import JobContext
from aiweb.jobs.entities import Job
from aiweb.jobs.env import JobEnv
from aiweb.jobs.service import JobService
from aiweb.jobs.types import JobType
from aiweb.security.secrets import resolve_secret_key

log = logging.getLogger("aiweb.jobs")

#: the job type of an erasure
PRIVACY_ERASE = "privacy-erase"

#: ``erase_user(env, user_id) -> {what: count}``: deletes what a task keeps about the user
#: (its rows, cached results) and says how many of each it deleted. Idempotent: running it
#: again (a retried attempt) deletes what is left and counts 0 for what is gone.
EraseUser = Callable[[JobEnv, str], Mapping[str, int]]


def subject_digest(settings: Settings, user_id: str) -> str:
    """The erasure subject as recorded: ``hmac-sha256:<hex>`` of ``user_id`` keyed with
    the secret key (stable across replicas that share ``AIWEB_SECRET_KEY``).

    Raises:
        InsecureConfigurationError: no usable secret key (see
            :func:`aiweb.security.secrets.resolve_secret_key`).
    """
    key = resolve_secret_key(settings).encode("utf-8")
    mac = hmac.new(key, b"aiweb-erasure:" + user_id.encode("utf-8", "surrogatepass"), "sha256")
    return f"hmac-sha256:{mac.hexdigest()}"


def submit_erasure(
    jobs: JobService, user_id: str, *, actor: str, request_id: str | None = None
) -> Job:
    """Submit the erasure of ``user_id``'s data: a ``pending`` ``privacy-erase`` job.

    Returns:
        The job (its result, once it succeeded: ``{"subject", "erased": {what: count},
        "total"}``).

    Raises:
        BrokerUnavailableError: the job could not be dispatched; none is left behind (503).
        InsecureConfigurationError: no usable secret key to digest the subject with.
    """
    subject = subject_digest(jobs.settings, user_id)
    job = jobs.store.create(
        PRIVACY_ERASE,
        {"user_id": user_id},
        submitted_by=actor,
        max_attempts=jobs.settings.jobs.max_attempts,
    )
    try:
        jobs.dispatcher.dispatch(job.id)
    except Exception:
        jobs.store.delete(job.id)
        raise
    jobs.registry.record(
        actor,
        "privacy.erase.requested",
        f"job:{job.id}",
        after={"subject": subject},
        request_id=request_id,
    )
    return job


def erase_job_type(hooks: Mapping[str, EraseUser]) -> JobType:
    """The ``privacy-erase`` job type, calling ``hooks`` (``{task name: erase_user}``).

    Its result: ``{"subject": digest, "erased": {"<task>.<what>": count}, "total": n}``.
    """

    def erase(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        user_id = ctx.job.params.get("user_id")
        subject = ctx.job.params.get("subject")
        if not isinstance(user_id, str):
            # an earlier attempt erased everything and redacted the job, then died before
            # recording its result: nothing is left to delete
            return {"subject": subject, "erased": {}, "total": 0}
        subject = subject_digest(env.settings, user_id)
        erased: dict[str, int] = {}
        for done, (task, hook) in enumerate(hooks.items()):
            ctx.progress(done / max(1, len(hooks)), f"erasing the data of {task}")
            for what, count in hook(env, user_id).items():
                erased[f"{task}.{what}"] = int(count)
        env.jobs.redact_params(ctx.job.id, ctx.attempt, {"subject": subject})
        total = sum(erased.values())
        env.registry.record(
            ctx.job.submitted_by or "unknown",
            "privacy.erased",
            f"job:{ctx.job.id}",
            after={"subject": subject, "erased": erased, "total": total},
        )
        log.info("erasure job %s: deleted %d record(s) %s", ctx.job.id, total, erased)
        return {"subject": subject, "erased": erased, "total": total}

    return JobType(PRIVACY_ERASE, erase)
