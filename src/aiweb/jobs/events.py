"""The ``job.finished`` webhook event: queued whenever a job reaches ``succeeded``,
``failed`` or ``cancelled``, whoever ended it — its runner, a cancel while it was still
pending, or the scheduler tick that fails a job whose runner died on its last attempt.

Data: ``{"job_id", "type", "status", "error", "result", "attempts", "submitted_by",
"created_at", "finished_at"}`` (``error`` is ``null`` for a succeeded job).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from aiweb.jobs.entities import Job
from aiweb.webhooks.service import emit

log = logging.getLogger("aiweb.jobs")

EVENT = "job.finished"


def finished_data(job: Job) -> dict[str, Any]:
    """The event's data for a terminal ``job``."""
    return {
        "job_id": job.id,
        "type": job.type,
        "status": job.status,
        "error": job.error if job.status != "succeeded" else None,
        "result": job.result,
        "attempts": job.attempts,
        "submitted_by": job.submitted_by,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def announce(sessions: sessionmaker[Session], jobs: Iterable[Job]) -> None:
    """Queue ``job.finished`` for each terminal job of ``jobs`` (a database row per
    subscribed webhook, sent by the scheduler tick; :func:`aiweb.webhooks.service.emit`).
    A failure is logged, never raised: the jobs' outcomes are recorded already."""
    for job in jobs:
        if not job.terminal:
            continue
        try:
            emit(sessions, EVENT, finished_data(job))
        except Exception:
            log.warning("job.finished event of job %s not queued", job.id, exc_info=True)
