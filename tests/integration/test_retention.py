"""Retention (``AIWEB_RETENTION__*``): prediction log, feedback and audit rows older than
their window are deleted in batches, newer ones kept; by the scheduler tick (``aiweb
scheduler``) and by the embedded runner of ``aiweb serve``; audit rows are kept by default."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.app import create_app
from aiweb.config import RetentionSettings, Settings
from aiweb.db.orm import SqlAuditEvent, SqlFeedback, SqlPrediction, utcnow
from aiweb.db.session import make_session_factory
from aiweb.jobs.env import build_job_env
from aiweb.jobs.scheduler import tick
from aiweb.jobs.service import EmbeddedDispatcher
from aiweb.jobs.types import JobTypes
from aiweb.monitoring.retention import prune_expired, prune_rows


def _rows(engine: Engine, *, days_ago: float, n: int, tag: str) -> None:
    """``n`` predictions, feedback and audit events created ``days_ago`` days ago."""
    at = utcnow() - timedelta(days=days_ago)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with engine.begin() as conn:
        conn.execute(
            insert(SqlPrediction),
            [
                {
                    "id": i,
                    "model": "m",
                    "version": 1,
                    "label": "positive",
                    "scores": {"positive": 1.0},
                    "latency_ms": 1.0,
                    "input_sha256": "0" * 64,
                    "created_at": at,
                }
                for i in ids
            ],
        )
        conn.execute(
            insert(SqlFeedback),
            [
                {
                    "prediction_id": i,
                    "model": "m",
                    "version": 1,
                    "predicted_label": "positive",
                    "label": "negative",
                    "submitted_by": "k",
                    "predicted_at": at,
                    "created_at": at,
                }
                for i in ids
            ],
        )
        conn.execute(
            insert(SqlAuditEvent),
            [{"actor": "t", "action": "x", "target": tag, "created_at": at} for _ in range(n)],
        )


def _count(sessions: sessionmaker[Session], orm: type, since: datetime | None = None) -> int:
    with sessions() as s:
        query = select(func.count()).select_from(orm)
        if since is not None:
            query = query.where(orm.created_at >= since)  # type: ignore[attr-defined]
        return int(s.scalar(query) or 0)


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    _, engine = open_registry(settings)
    return make_session_factory(engine)


def test_old_rows_go_in_batches_new_ones_stay(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    engine = sessions.kw["bind"]
    _rows(engine, days_ago=100, n=2300, tag="old")
    _rows(engine, days_ago=10, n=40, tag="new")
    cutoff = utcnow() - timedelta(days=90)
    deleted, batches = prune_rows(sessions, "predictions", cutoff, batch_rows=500)
    assert (deleted, batches) == (2300, 5)  # 500 * 4 + 300
    assert _count(sessions, SqlPrediction) == 40
    # a bounded round stops after its batches and the next one goes on
    assert prune_rows(sessions, "feedback", cutoff, batch_rows=1000, max_batches=2) == (2000, 2)
    assert _count(sessions, SqlFeedback) == 340
    # the defaults: predictions 90 days, feedback 365 days, audit kept
    assert RetentionSettings().audit_days is None
    counts = prune_expired(sessions, RetentionSettings(feedback_days=30, batch_rows=700))
    assert counts == {"predictions": 0, "feedback": 300}
    assert _count(sessions, SqlFeedback) == 40
    assert _count(sessions, SqlAuditEvent) == 2340  # audit: kept for ever by default
    counts = prune_expired(sessions, RetentionSettings(audit_days=50, batch_rows=700))
    assert counts["audit"] == 2300
    with sessions() as s:
        assert set(s.scalars(select(SqlAuditEvent.target))) == {"new"}


def test_the_scheduler_tick_prunes(settings: Settings, sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    _rows(engine, days_ago=400, n=30, tag="old")
    _rows(engine, days_ago=1, n=5, tag="new")
    settings = settings.model_copy(
        update={"retention": RetentionSettings(audit_days=200, batch_rows=7)}
    )
    env = build_job_env(settings)
    try:
        counts = tick(env, EmbeddedDispatcher(), JobTypes([]))
        assert counts["pruned"] == 90
        assert tick(env, EmbeddedDispatcher(), JobTypes([]))["pruned"] == 0  # not time yet
    finally:
        env.close()
    assert _count(sessions, SqlPrediction) == 5
    assert _count(sessions, SqlFeedback) == 5
    with sessions() as s:
        targets = list(s.scalars(select(SqlAuditEvent.target)))
        assert sorted(set(targets)) == ["new", "retention"]  # the round is audited
        event = s.scalars(
            select(SqlAuditEvent).where(SqlAuditEvent.action == "retention.pruned")
        ).one()
        assert event.after == {"deleted": {"predictions": 30, "feedback": 30, "audit": 30}}


def test_aiweb_serve_prunes_without_a_broker(
    settings: Settings, sessions: sessionmaker[Session], auth_headers: dict[str, str]
) -> None:
    engine = sessions.kw["bind"]
    _rows(engine, days_ago=120, n=25, tag="old")
    _rows(engine, days_ago=2, n=3, tag="new")
    settings = settings.model_copy(
        update={"retention": RetentionSettings(batch_rows=10, interval_s=0.2)}
    )
    with TestClient(create_app(settings), headers=auth_headers) as client:
        deadline = time.monotonic() + 30
        while _count(sessions, SqlPrediction) > 3:
            assert time.monotonic() < deadline, "the embedded runner did not prune"
            time.sleep(0.1)
        assert client.get("/livez").status_code == 200
    assert _count(sessions, SqlPrediction) == 3
    assert _count(sessions, SqlFeedback) == 28  # within its 365 days
    assert _count(sessions, SqlAuditEvent, since=utcnow() - timedelta(days=3)) >= 3
