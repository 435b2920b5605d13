"""Retraining schedules: a cron expression, the training spec and a promotion rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlSchedule, utcnow
from aiweb.db.session import transaction
from aiweb.errors import InvalidInputError, ScheduleNotFound


@dataclass(frozen=True)
class Schedule:
    """A model's retraining schedule.

    Attributes:
        model: registered model name.
        cron: 5-field cron expression (minute hour day-of-month month day-of-week).
        timezone: IANA zone the expression is read in.
        training: the training spec (``TrainData`` fields: dataset, columns, params).
        promotion: ``{"metric", "min_delta"}``.
        next_run_at: when it fires next (UTC).
    """

    model: str
    cron: str
    timezone: str
    training: dict[str, Any]
    promotion: dict[str, Any]
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: str | None
    created_by: str
    updated_at: datetime


def _to_schedule(row: SqlSchedule) -> Schedule:
    return Schedule(
        model=row.model,
        cron=row.cron,
        timezone=row.timezone,
        training=dict(row.job),
        promotion=dict(row.promotion),
        enabled=row.enabled,
        next_run_at=row.next_run_at,
        last_run_at=row.last_run_at,
        last_job_id=row.last_job_id,
        created_by=row.created_by,
        updated_at=row.updated_at,
    )


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``cron`` matches in ``timezone``.

    Cron semantics are those of :mod:`croniter` (Vixie cron, 5 fields).

    Raises:
        InvalidInputError: not a valid 5-field cron expression, or an unknown zone.
    """
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise InvalidInputError(
            f"invalid cron expression {cron!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *'"
        )
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(f"unknown time zone {timezone!r}") from None
    local = after.astimezone(zone)
    nxt: datetime = croniter(cron, local).get_next(datetime)
    return nxt.astimezone(after.tzinfo)


class SqlScheduleStore:
    """Schedules in SQL."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def put(
        self,
        model: str,
        *,
        cron: str,
        timezone: str,
        training: dict[str, Any],
        promotion: dict[str, Any],
        enabled: bool,
        actor: str,
    ) -> tuple[Schedule, Schedule | None]:
        """Create or replace the schedule of ``model``.

        Returns:
            ``(new, previous or None)``.

        Raises:
            InvalidInputError: bad cron expression or time zone.
        """
        now = utcnow()
        nxt = next_run(cron, timezone, now)
        with transaction(self._sessions) as s:
            row = s.get(SqlSchedule, model)
            before = _to_schedule(row) if row is not None else None
            if row is None:
                row = SqlSchedule(model=model)
                s.add(row)
            row.cron, row.timezone, row.job, row.promotion = cron, timezone, training, promotion
            row.enabled, row.next_run_at, row.created_by, row.updated_at = (
                enabled,
                nxt,
                actor,
                now,
            )
            s.flush()
            return _to_schedule(row), before

    def get(self, model: str) -> Schedule:
        """The schedule of ``model``.

        Raises:
            ScheduleNotFound: it has none (404).
        """
        with self._sessions() as s:
            row = s.get(SqlSchedule, model)
            if row is None:
                raise ScheduleNotFound(f"model {model!r} has no retraining schedule")
            return _to_schedule(row)

    def delete(self, model: str) -> Schedule:
        """Remove the schedule of ``model`` and return it.

        Raises:
            ScheduleNotFound: it has none (404).
        """
        with transaction(self._sessions) as s:
            row = s.get(SqlSchedule, model)
            if row is None:
                raise ScheduleNotFound(f"model {model!r} has no retraining schedule")
            gone = _to_schedule(row)
            s.delete(row)
            return gone

    def take_due(self, now: datetime | None = None) -> list[Schedule]:
        """Advance every enabled schedule that is due and return them (as they were).

        Each advance is conditional on ``next_run_at`` being unchanged, so when several
        schedulers tick at once each due run is taken by exactly one of them.
        """
        now = now or utcnow()
        taken: list[Schedule] = []
        with self._sessions() as s:
            due = [
                _to_schedule(r)
                for r in s.scalars(
                    select(SqlSchedule).where(
                        SqlSchedule.enabled.is_(True), SqlSchedule.next_run_at <= now
                    )
                )
            ]
        for schedule in due:
            nxt = next_run(schedule.cron, schedule.timezone, now)
            with transaction(self._sessions) as s:
                res = s.execute(
                    update(SqlSchedule)
                    .where(
                        SqlSchedule.model == schedule.model,
                        SqlSchedule.next_run_at == schedule.next_run_at,
                    )
                    .values(next_run_at=nxt, last_run_at=now)
                    .execution_options(synchronize_session=False)
                )
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    taken.append(schedule)
        return taken

    def set_last_job(self, model: str, job_id: str) -> None:
        with transaction(self._sessions) as s:
            s.execute(
                update(SqlSchedule)
                .where(SqlSchedule.model == model)
                .values(last_job_id=job_id)
                .execution_options(synchronize_session=False)
            )
