"""Bodies of ``/v1/jobs``: the job record answered. What can be submitted is given by
the installed job types (:mod:`aiweb.jobs.types`); their specs live with their tasks."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from aiweb.jobs.entities import Job

#: the model names a job spec accepts
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


def _cron_list(number: str) -> str:
    item = rf"(?:\*|(?:{number})(?:-(?:{number}))?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


#: the cron expressions a schedule takes (a subset of what :mod:`croniter` accepts, as a
#: schema can say it): 5 fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12,
#: day of week 0-7), each ``*`` or a number or range, with an optional ``/step``, or a
#: comma-separated list of those
CRON_PATTERN = (
    "^"
    + " ".join(
        _cron_list(n)
        for n in (
            r"[1-5]?[0-9]",
            r"1?[0-9]|2[0-3]",
            r"[1-9]|[12][0-9]|3[01]",
            r"[1-9]|1[0-2]",
            "[0-7]",
        )
    )
    + "$"
)

#: the IANA time zones a schedule takes (those of this system's tz database)
TIME_ZONES = sorted(zoneinfo.available_timezones())


class JobOut(BaseModel):
    """A job record."""

    id: str
    type: str
    params: dict[str, Any]
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(..., ge=0, le=1, description="Fraction done, 0 to 1.")
    message: str
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    submitted_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]

    @classmethod
    def of(cls, job: Job) -> JobOut:
        links = {"self": f"/v1/jobs/{job.id}"}
        if job.status == "succeeded" and job.result is not None:
            links["result"] = f"/v1/jobs/{job.id}/result"
        return cls(
            id=job.id,
            type=job.type,
            params=job.params,
            status=job.status,
            progress=job.progress,
            message=job.message,
            result=job.result,
            error=job.error,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            cancel_requested=job.cancel_requested,
            submitted_by=job.submitted_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            links=links,
        )


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(..., description="Offset of the next page, or null.")
