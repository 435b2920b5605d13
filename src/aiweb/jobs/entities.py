"""What a job is, independent of where it runs (``aiweb serve`` or a Celery worker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

JobStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]

#: The states a job never leaves.
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
STATUSES: tuple[str, ...] = ("pending", "running", "succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Job:
    """A durable job record: the database row is the truth about a job.

    Attributes:
        id: UUID string.
        type: ``train``, ``batch-predict`` ….
        params: the job's parameters as submitted (validated), JSON.
        status: ``pending → running → succeeded | failed | cancelled``.
        progress: fraction done, 0 to 1.
        message: what the job is doing now (human-readable).
        result: what the job produced (version, artifact URI, rows …) once it succeeded.
        error: why the last attempt failed (kept on retry) or why the job failed.
        attempts: attempts started so far; also the fencing token of the current one.
        max_attempts: attempts allowed before the job fails.
        cancel_requested: a cancel arrived while the job was running.
        runner: who runs (or last ran) it: ``embedded:<host>:<pid>`` or ``celery:<host>:<pid>``.
        submitted_by: key name (API) or ``cli`` / ``scheduler``.
        created_at, started_at, heartbeat_at, finished_at: UTC times.
        run_after: a pending job is not started before this time (retry back-off).
    """

    id: str
    type: str
    params: dict[str, Any]
    status: str
    progress: float
    message: str
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    runner: str | None
    submitted_by: str
    created_at: datetime
    run_after: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None

    @property
    def terminal(self) -> bool:
        """Whether the job is finished for good."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class JobPage:
    """One page of a job listing."""

    jobs: list[Job]
    total: int


class JobCancelled(Exception):
    """Raised inside a running job when its cancellation was requested."""


class LeaseLost(Exception):
    """The job was taken over by another runner (this one missed its heartbeats)."""


class JobInterrupted(Exception):
    """The process is shutting down: the job goes back to ``pending`` to run later."""


class TransientJobError(Exception):
    """A failure worth retrying (a service briefly unreachable). Handlers may raise it."""
