"""Job rows in the database (SQLite or PostgreSQL).

Every change of state is one conditional ``UPDATE … WHERE`` whose row count says
whether it happened, so two runners can never both claim a job, and a runner that lost
its lease (``attempts`` moved on) can no longer write the job: ``attempts`` is the
fencing token.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlJob, utcnow
from aiweb.db.session import transaction
from aiweb.errors import ConflictError, JobNotFound
from aiweb.jobs.entities import Job, JobPage, LeaseLost
from aiweb.jobs.events import announce


def _to_job(row: SqlJob) -> Job:
    return Job(
        id=row.id,
        type=row.type,
        params=dict(row.params),
        status=row.status,
        progress=row.progress,
        message=row.message,
        result=dict(row.result) if row.result is not None else None,
        error=row.error,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        cancel_requested=row.cancel_requested,
        runner=row.runner,
        submitted_by=row.submitted_by,
        created_at=row.created_at,
        run_after=row.run_after,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
    )


def runner_name(kind: str) -> str:
    """``<kind>:<host>:<pid>``: who runs a job, precise enough to tell if it died."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class SqlJobStore:
    """Jobs in SQL. Thread-safe (one session per call).

    Args:
        session_factory: sessions on the aiweb database.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    # ---- submit and read -------------------------------------------------------------

    def create(
        self,
        type_: str,
        params: dict[str, Any],
        *,
        submitted_by: str,
        max_attempts: int,
        job_id: str | None = None,
        session: Session | None = None,
    ) -> Job:
        """Insert a ``pending`` job and return it.

        Args:
            session: insert inside this (caller's) transaction instead of a new one.
        """
        now = utcnow()
        row = SqlJob(
            id=job_id or str(uuid.uuid4()),
            type=type_,
            params=params,
            status="pending",
            progress=0.0,
            message="waiting for a runner",
            attempts=0,
            max_attempts=max_attempts,
            cancel_requested=False,
            submitted_by=submitted_by,
            created_at=now,
            run_after=now,
        )
        if session is not None:
            session.add(row)
            session.flush()
            return _to_job(row)
        with transaction(self._sessions) as s:
            s.add(row)
        return _to_job(row)

    def delete(self, job_id: str) -> None:
        """Remove a job that was never dispatched (its broker message could not be sent)."""
        with transaction(self._sessions) as s:
            row = s.get(SqlJob, job_id)
            if row is not None and row.status == "pending" and row.attempts == 0:
                s.delete(row)

    def get(self, job_id: str) -> Job:
        """The job ``job_id``.

        Raises:
            JobNotFound: no such job.
        """
        with self._sessions() as s:
            row = s.get(SqlJob, job_id)
            if row is None:
                raise JobNotFound(f"job {job_id[:64]!r} does not exist")
            return _to_job(row)

    def page(
        self,
        *,
        status: str | None = None,
        type_: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        """Jobs, newest first, optionally filtered by status and type."""
        query = select(SqlJob)
        count = select(func.count()).select_from(SqlJob)
        if status is not None:
            query = query.where(SqlJob.status == status)
            count = count.where(SqlJob.status == status)
        if type_ is not None:
            query = query.where(SqlJob.type == type_)
            count = count.where(SqlJob.type == type_)
        query = query.order_by(SqlJob.created_at.desc(), SqlJob.id).limit(limit).offset(offset)
        with self._sessions() as s:
            rows = s.scalars(query).all()
            total = s.scalar(count) or 0
            return JobPage(jobs=[_to_job(r) for r in rows], total=int(total))

    # ---- claiming --------------------------------------------------------------------

    def claim(self, job_id: str, runner: str, *, lease_s: float) -> Job | None:
        """Start an attempt of ``job_id`` for ``runner``.

        A job can be claimed when it is ``pending`` and due (``run_after`` passed), or
        ``running`` under a runner whose heartbeat is older than ``lease_s`` (it died),
        and it has attempts left.

        Returns:
            The job as now running (``attempts`` is this attempt's fencing token), or
            ``None`` when it cannot be claimed now (see :meth:`get` for why).
        """
        now = utcnow()
        stale = now - timedelta(seconds=lease_s)
        with transaction(self._sessions) as s:
            result = s.execute(
                update(SqlJob)
                .where(
                    SqlJob.id == job_id,
                    SqlJob.attempts < SqlJob.max_attempts,
                    SqlJob.cancel_requested.is_(False),
                    or_(
                        (SqlJob.status == "pending") & (SqlJob.run_after <= now),
                        (SqlJob.status == "running") & (SqlJob.heartbeat_at < stale),
                    ),
                )
                .values(
                    status="running",
                    attempts=SqlJob.attempts + 1,
                    runner=runner,
                    started_at=func.coalesce(SqlJob.started_at, now),
                    heartbeat_at=now,
                    message="starting",
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return self._reread(s, job_id)

    def claimable(self, *, lease_s: float, limit: int = 10) -> list[str]:
        """Ids of jobs :meth:`claim` could take now, oldest first."""
        now = utcnow()
        stale = now - timedelta(seconds=lease_s)
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(SqlJob.id)
                    .where(
                        SqlJob.attempts < SqlJob.max_attempts,
                        SqlJob.cancel_requested.is_(False),
                        or_(
                            (SqlJob.status == "pending") & (SqlJob.run_after <= now),
                            (SqlJob.status == "running") & (SqlJob.heartbeat_at < stale),
                        ),
                    )
                    .order_by(SqlJob.run_after, SqlJob.created_at)
                    .limit(limit)
                ).all()
            )

    def stale_running(self, *, lease_s: float) -> list[str]:
        """Ids of running jobs whose runner stopped sending heartbeats."""
        stale = utcnow() - timedelta(seconds=lease_s)
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(SqlJob.id).where(SqlJob.status == "running", SqlJob.heartbeat_at < stale)
                ).all()
            )

    def lost_pending(self, *, older_than_s: float) -> list[str]:
        """Ids of pending jobs due for longer than ``older_than_s`` (message lost?).

        Their ``run_after`` is moved to now, so the next sweep does not pick them again
        straight away.
        """
        now = utcnow()
        cutoff = now - timedelta(seconds=older_than_s)
        with transaction(self._sessions) as s:
            ids = list(
                s.scalars(
                    select(SqlJob.id).where(SqlJob.status == "pending", SqlJob.run_after < cutoff)
                ).all()
            )
            if ids:
                s.execute(
                    update(SqlJob)
                    .where(SqlJob.id.in_(ids), SqlJob.status == "pending")
                    .values(run_after=now)
                    .execution_options(synchronize_session=False)
                )
            return ids

    def fail_exhausted(self, *, lease_s: float) -> list[str]:
        """Fail jobs whose runner died on their last allowed attempt, and cancel those
        whose runner died after a cancel was asked for; ``job.finished`` is queued for
        each (:mod:`aiweb.jobs.events`). Returns the ids of the failed ones."""
        now = utcnow()
        stale = now - timedelta(seconds=lease_s)
        failed: list[str] = []
        cancelled: list[str] = []
        with transaction(self._sessions) as s:
            rows = s.scalars(
                select(SqlJob).where(
                    SqlJob.status == "running",
                    SqlJob.heartbeat_at < stale,
                    SqlJob.attempts >= SqlJob.max_attempts,
                )
            ).all()
            for row in rows:
                self._fail_dead(row, now)
                failed.append(row.id)
            # a cancel that arrived for a job whose runner died: honour it
            for row in s.scalars(
                select(SqlJob).where(
                    SqlJob.status == "running",
                    SqlJob.heartbeat_at < stale,
                    SqlJob.cancel_requested.is_(True),
                )
            ).all():
                row.status = "cancelled"
                row.finished_at = now
                row.message = "cancelled"
                cancelled.append(row.id)
        announce(self._sessions, [self.get(job_id) for job_id in failed + cancelled])
        return failed

    @staticmethod
    def _fail_dead(row: SqlJob, now: datetime) -> None:
        row.status = "failed"
        row.finished_at = now
        row.message = "failed"
        row.error = (
            f"the runner ({row.runner}) stopped during attempt {row.attempts} of "
            f"{row.max_attempts} (last heartbeat {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); "
            "no attempts left" + (f"; earlier error: {row.error}" if row.error else "")
        )

    def requeue_dead_local(self, kind: str) -> list[str]:
        """Recover jobs left ``running`` by dead processes of this host (``kind`` runners).

        A job whose runner is ``<kind>:<this host>:<pid>`` with no live process ``pid``
        goes back to ``pending`` (or ``failed`` when it has no attempts left). Used at
        the start of ``aiweb serve``, so a job interrupted by a crash resumes at once
        rather than after its lease.

        Returns:
            The ids of the jobs recovered.
        """
        prefix = f"{kind}:{socket.gethostname()}:"
        now = utcnow()
        recovered: list[str] = []
        with transaction(self._sessions) as s:
            rows = s.scalars(
                select(SqlJob).where(SqlJob.status == "running", SqlJob.runner.startswith(prefix))
            ).all()
            for row in rows:
                pid_text = (row.runner or "").rpartition(":")[2]
                if pid_text.isdigit() and _pid_alive(int(pid_text)):
                    continue
                recovered.append(row.id)
                if row.cancel_requested:
                    row.status, row.finished_at, row.message = "cancelled", now, "cancelled"
                elif row.attempts >= row.max_attempts:
                    self._fail_dead(row, now)
                else:
                    row.status = "pending"
                    row.run_after = now
                    row.message = f"runner {row.runner} died; retrying"
                    row.error = f"attempt {row.attempts}: the process running it died"
        return recovered

    # ---- a running attempt -------------------------------------------------------------

    @staticmethod
    def _write_attempt(s: Session, job_id: str, attempt: int, values: dict[str, Any]) -> None:
        """Update the job only while attempt ``attempt`` still runs it.

        Raises:
            LeaseLost: the attempt no longer owns the job (nothing was written).
        """
        result = s.execute(
            update(SqlJob)
            .where(SqlJob.id == job_id, SqlJob.attempts == attempt, SqlJob.status == "running")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost(f"job {job_id} attempt {attempt} is no longer running here")

    @staticmethod
    def _reread(s: Session, job_id: str) -> Job:
        row = s.get(SqlJob, job_id, populate_existing=True)
        assert row is not None
        return _to_job(row)

    def heartbeat(
        self,
        job_id: str,
        attempt: int,
        *,
        progress: float | None = None,
        message: str | None = None,
    ) -> bool:
        """Renew the lease of attempt ``attempt`` (and record progress).

        Returns:
            Whether a cancellation was requested.

        Raises:
            LeaseLost: the job is no longer running under this attempt.
        """
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if progress is not None:
            values["progress"] = min(1.0, max(0.0, progress))
        if message is not None:
            values["message"] = message[:255]
        with transaction(self._sessions) as s:
            self._write_attempt(s, job_id, attempt, values)
            return bool(s.scalar(select(SqlJob.cancel_requested).where(SqlJob.id == job_id)))

    def finish(
        self,
        job_id: str,
        attempt: int,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job:
        """End attempt ``attempt`` with ``status`` (``succeeded``, ``failed``, ``cancelled``).

        Raises:
            LeaseLost: the attempt no longer owns the job (nothing was written).
        """
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "finished_at": now,
            "heartbeat_at": now,
            "message": status,
        }
        if status == "succeeded":
            values.update(progress=1.0, result=result, error=None)
        else:
            values["error"] = error
        with transaction(self._sessions) as s:
            self._write_attempt(s, job_id, attempt, values)
            return self._reread(s, job_id)

    def redact_params(self, job_id: str, attempt: int, params: dict[str, Any]) -> None:
        """Replace the parameters of the job attempt ``attempt`` runs (what an erasure
        job no longer needs, such as the user id it erased, must not stay on it).

        Raises:
            LeaseLost: the attempt no longer owns the job (nothing was written).
        """
        with transaction(self._sessions) as s:
            self._write_attempt(s, job_id, attempt, {"params": params})

    def release(self, job_id: str, attempt: int, *, delay_s: float, error: str | None) -> Job:
        """Put attempt ``attempt`` back to ``pending``, due in ``delay_s`` seconds.

        Raises:
            LeaseLost: the attempt no longer owns the job.
        """
        now = utcnow()
        with transaction(self._sessions) as s:
            self._write_attempt(
                s,
                job_id,
                attempt,
                {
                    "status": "pending",
                    "run_after": now + timedelta(seconds=delay_s),
                    "heartbeat_at": now,
                    "error": error,
                    "message": f"retrying in {delay_s:.0f} s" if error else "waiting to resume",
                },
            )
            return self._reread(s, job_id)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: at once when pending (``job.finished`` is queued then, see
        :mod:`aiweb.jobs.events`); a running job stops at its next progress step (its
        runner queues the event).

        Cancelling a cancelled job returns it unchanged.

        Raises:
            JobNotFound: no such job.
            ConflictError: the job already finished (409).
        """
        now = utcnow()
        with transaction(self._sessions) as s:
            res = s.execute(
                update(SqlJob)
                .where(SqlJob.id == job_id, SqlJob.status == "pending")
                .values(status="cancelled", finished_at=now, message="cancelled")
                .execution_options(synchronize_session=False)
            )
            cancelled_now = res.rowcount == 1  # type: ignore[attr-defined]
            if not cancelled_now:
                s.execute(
                    update(SqlJob)
                    .where(SqlJob.id == job_id, SqlJob.status == "running")
                    .values(cancel_requested=True, message="cancelling")
                    .execution_options(synchronize_session=False)
                )
            row = s.get(SqlJob, job_id, populate_existing=True)
            if row is None:
                raise JobNotFound(f"job {job_id[:64]!r} does not exist")
            job = _to_job(row)
        if job.status in ("succeeded", "failed"):
            raise ConflictError(f"job {job_id} already {job.status}; it cannot be cancelled")
        if cancelled_now:
            announce(self._sessions, [job])
        return job
