"""Retention: delete prediction log, feedback and audit rows older than their window.

The windows are ``AIWEB_RETENTION__PREDICTIONS_DAYS`` (default 90), ``…FEEDBACK_DAYS``
(default 365) and ``…AUDIT_DAYS`` (default: kept for ever); see
:class:`aiweb.config.RetentionSettings`. The scheduler tick (``aiweb scheduler``, or the
embedded runner of ``aiweb serve``) calls :func:`prune_expired` every
``retention.interval_s`` seconds.

Rows go in batches of ``retention.batch_rows``: each batch selects the primary keys of at
most that many expired rows, then deletes exactly those rows, in its own short
transaction. No statement holds locks on more than one batch, writers of new rows (the
prediction log) are never blocked for long, and a prune interrupted half way simply goes
on at the next tick. Several processes pruning at once only delete the same rows twice
(the second delete finds them gone).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, Table, delete, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import RetentionSettings
from aiweb.db.orm import SqlAuditEvent, SqlFeedback, SqlPrediction, utcnow
from aiweb.db.session import transaction

log = logging.getLogger("aiweb.monitoring")


@dataclass(frozen=True)
class _Kind:
    """A kind of row kept for a while: its table, key and timestamp columns."""

    name: str
    table: Table
    key: Column[object]
    created_at: Column[object]


def _kind(name: str, orm: type) -> _Kind:
    table: Table = orm.__table__  # type: ignore[attr-defined]
    (key,) = table.primary_key.columns
    return _Kind(name, table, key, table.c.created_at)


#: the kinds of rows :func:`prune_expired` deletes, by their settings' names
KINDS: dict[str, _Kind] = {
    "predictions": _kind("predictions", SqlPrediction),
    "feedback": _kind("feedback", SqlFeedback),
    "audit": _kind("audit", SqlAuditEvent),
}


def windows(settings: RetentionSettings) -> dict[str, float | None]:
    """``{kind: days kept or None (kept for ever)}`` for every kind of row."""
    return {
        "predictions": settings.predictions_days,
        "feedback": settings.feedback_days,
        "audit": settings.audit_days,
    }


def prune_rows(
    sessions: sessionmaker[Session],
    kind: str,
    cutoff: datetime,
    *,
    batch_rows: int,
    max_batches: int | None = None,
) -> tuple[int, int]:
    """Delete the rows of ``kind`` created before ``cutoff`` (UTC), in batches.

    Args:
        sessions: sessions on the aiweb database.
        kind: ``predictions``, ``feedback`` or ``audit``.
        cutoff: rows with ``created_at`` strictly before it go.
        batch_rows: most rows per batch (one transaction each).
        max_batches: stop after this many batches (``None``: until none is left).

    Returns:
        ``(rows deleted, batches run)``.

    Raises:
        KeyError: an unknown ``kind``.
    """
    spec = KINDS[kind]
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        with transaction(sessions) as s:
            keys = list(
                s.scalars(select(spec.key).where(spec.created_at < cutoff).limit(batch_rows)).all()
            )
            if not keys:
                break
            result = s.execute(
                delete(spec.table).where(spec.key.in_(keys), spec.created_at < cutoff)
            )
            deleted += int(result.rowcount)  # type: ignore[attr-defined]
        batches += 1
        if len(keys) < batch_rows:
            break
    return deleted, batches


def prune_expired(
    sessions: sessionmaker[Session],
    settings: RetentionSettings,
    *,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete every kind of row older than its window (kinds kept for ever are skipped).

    A failure on one kind (the database briefly away) is logged and the others still run.

    Returns:
        ``{kind: rows deleted}`` for the kinds that have a window.
    """
    now = now or utcnow()
    counts: dict[str, int] = {}
    for kind, days in windows(settings).items():
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        try:
            counts[kind], batches = prune_rows(
                sessions, kind, cutoff, batch_rows=settings.batch_rows
            )
        except Exception:
            log.warning("retention: pruning %s failed; next round tries again", kind, exc_info=True)
            continue
        if counts[kind]:
            log.info(
                "retention: deleted %d %s row(s) older than %s in %d batch(es)",
                counts[kind],
                kind,
                f"{cutoff:%Y-%m-%d %H:%M} UTC",
                batches,
            )
    return counts
