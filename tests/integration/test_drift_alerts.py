"""Drift alerts reach a real HTTP receiver once per model version and feature, with retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import Receiver, open_registry
from sqlalchemy import select

from aiweb.config import AlertSettings, Settings
from aiweb.db.orm import SqlDriftAlert
from aiweb.db.session import make_session_factory
from aiweb.monitoring.alerts import AlertSender


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.server.shutdown()


DRIFT = {
    "model": "sentiment",
    "version": 3,
    "window": "24h",
    "n": 500,
    "drift": True,
    "features": [
        {"name": "oov_rate", "statistic": "psi", "value": 0.6, "threshold": 0.2, "drift": True},
        {
            "name": "text_length",
            "statistic": "psi",
            "value": 0.05,
            "threshold": 0.2,
            "drift": False,
        },
    ],
}


def test_one_alert_per_feature_delivered_after_retries(
    settings: Settings, receiver: Receiver
) -> None:
    _registry, engine = open_registry(settings)
    sessions = make_session_factory(engine)
    fast = AlertSettings(max_attempts=4, retry_backoff_s=0.01)
    try:
        first, second = (
            AlertSender(sessions, receiver.url, fast),
            AlertSender(sessions, receiver.url, fast),
        )
        sent = first.alert(DRIFT)
        assert [f.result(timeout=10) for f in sent] == [True]
        assert second.alert(DRIFT) == []  # another process: already claimed
        assert first.alert(DRIFT) == []  # and again: one alert per model version/feature
        first.close()
        second.close()
        with sessions() as session:
            (row,) = session.scalars(select(SqlDriftAlert)).all()
    finally:
        engine.dispose()
    assert receiver.attempts == 3  # two 503s, then delivered
    (body,) = receiver.bodies
    assert body["type"] == "aiweb.drift"
    assert (body["model"], body["version"], body["feature"]) == ("sentiment", 3, "oov_rate")
    assert (body["value"], body["threshold"], body["window"], body["n"]) == (0.6, 0.2, "24h", 500)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


def test_attempts_are_bounded_and_the_failure_recorded(settings: Settings) -> None:
    dead = Receiver(fail_first=100)
    _registry, engine = open_registry(settings)
    sessions = make_session_factory(engine)
    try:
        sender = AlertSender(
            sessions, dead.url, AlertSettings(max_attempts=3, retry_backoff_s=0.01)
        )
        assert [f.result(timeout=10) for f in sender.alert(DRIFT)] == [False]
        sender.close()
        with sessions() as session:
            (row,) = session.scalars(select(SqlDriftAlert)).all()
    finally:
        engine.dispose()
        dead.server.shutdown()
    assert dead.attempts == 3
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 503")


def test_no_webhook_no_alert(settings: Settings) -> None:
    _registry, engine = open_registry(settings)
    try:
        assert AlertSender(make_session_factory(engine), None, AlertSettings()).alert(DRIFT) == []
    finally:
        engine.dispose()
