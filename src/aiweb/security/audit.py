"""The audit log: who (key name) did what (promote, rollback, alias change, key
create/revoke, training started), to what, when, with the state before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlAuditEvent, utcnow


@dataclass(frozen=True)
class AuditEvent:
    id: int
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime


class AuditLog:
    """Append-only audit records in the database.

    Args:
        session_factory: sessions on the migrated database.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    def record(
        self,
        actor: str,
        action: str,
        target: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        """Append one event (its own transaction)."""
        with self._sessions() as session, session.begin():
            session.execute(
                insert(SqlAuditEvent).values(
                    actor=actor or "unknown",
                    action=action,
                    target=target,
                    before=before,
                    after=after,
                    request_id=request_id,
                    created_at=utcnow(),
                )
            )

    def list(
        self, *, limit: int = 50, offset: int = 0, action: str | None = None
    ) -> tuple[list[AuditEvent], int]:
        """Events newest first, and the total count (for pagination)."""
        with self._sessions() as session:
            query = select(SqlAuditEvent)
            count = select(func.count()).select_from(SqlAuditEvent)
            if action:
                query = query.where(SqlAuditEvent.action == action)
                count = count.where(SqlAuditEvent.action == action)
            rows = session.scalars(
                query.order_by(SqlAuditEvent.id.desc()).limit(limit).offset(offset)
            ).all()
            total = session.scalar(count) or 0
            return [
                AuditEvent(
                    id=r.id,
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    before=r.before,
                    after=r.after,
                    request_id=r.request_id,
                    created_at=r.created_at,
                )
                for r in rows
            ], total
