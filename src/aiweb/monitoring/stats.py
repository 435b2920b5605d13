"""Traffic and daily live accuracy per model, read from the prediction log and feedback.

What the dashboard's charts show: predictions per hour and their latency (from the
prediction log, durable and the same for every worker), and the daily accuracy of a model
version (from the feedback on its predictions).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlFeedback, SqlPrediction

MAX_ROWS = 200_000
"""Most prediction rows read for one traffic summary (newest first)."""


def _hours(now: datetime, n: int) -> list[datetime]:
    end = now.replace(minute=0, second=0, microsecond=0)
    return [end - timedelta(hours=n - 1 - i) for i in range(n)]


class PredictionStats:
    """Read-only summaries of the prediction log and the feedback on it.

    Args:
        sessions: sessions on the migrated database.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def traffic(self, *, now: datetime | None = None, hours: int = 24) -> dict[str, Any]:
        """Predictions per model over the last ``hours`` hours, from the prediction log.

        Args:
            now: the end of the window (the current time when ``None``).
            hours: how many hours back, counting the current one.

        Returns:
            ``{"hours": [ISO hour starts], "models": {name: {"n", "p50_ms", "p95_ms",
            "per_hour": [int], "p95_per_hour": [float | None]}}}``. Latency is the model
            call's, in milliseconds, as logged per request.
        """
        now = now or datetime.now(UTC)
        starts = _hours(now, hours)
        since = starts[0]
        query = (
            select(SqlPrediction.model, SqlPrediction.latency_ms, SqlPrediction.created_at)
            .where(SqlPrediction.created_at >= since)
            .order_by(SqlPrediction.created_at.desc())
            .limit(MAX_ROWS)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        by_model: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for model, latency, created in rows:
            hour = int((created - since).total_seconds() // 3600)
            by_model[model].append((float(latency), min(max(hour, 0), hours - 1)))
        models: dict[str, Any] = {}
        for model, values in sorted(by_model.items()):
            latencies = np.array([v for v, _ in values])
            per_hour = [0] * hours
            hourly: list[list[float]] = [[] for _ in range(hours)]
            for latency, hour in values:
                per_hour[hour] += 1
                hourly[hour].append(latency)
            models[model] = {
                "n": len(values),
                "p50_ms": float(np.percentile(latencies, 50)),
                "p95_ms": float(np.percentile(latencies, 95)),
                "per_hour": per_hour,
                "p95_per_hour": [
                    round(float(np.percentile(h, 95)), 3) if h else None for h in hourly
                ],
            }
        return {"hours": [h.isoformat() for h in starts], "models": models}

    def accuracy_series(
        self, name: str, version: int, *, now: datetime | None = None, days: int = 7
    ) -> dict[str, Any]:
        """Daily live accuracy of ``name:version`` from feedback, over the last ``days`` days.

        Args:
            name: the model.
            version: its version.
            now: the end of the window (the current time when ``None``).
            days: how many days back, counting today (UTC).

        Returns:
            ``{"days": [ISO dates], "accuracy": [float | None], "n": [int]}``.
        """
        now = now or datetime.now(UTC)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        starts = [today - timedelta(days=days - 1 - i) for i in range(days)]
        query = (
            select(
                SqlFeedback.label,
                SqlFeedback.predicted_label,
                SqlFeedback.predicted_at,
                SqlFeedback.correct,
            )
            .where(SqlFeedback.model == name)
            .where(SqlFeedback.version == version)
            .where(SqlFeedback.predicted_at >= starts[0])
            .where(SqlFeedback.value.is_(None))  # feedback on labels; values have no accuracy
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        right = [0] * days
        count = [0] * days
        for label, predicted, at, correct in rows:
            day = min(max((at - starts[0]).days, 0), days - 1)
            count[day] += 1
            right[day] += int(label == predicted if correct is None else correct)
        return {
            "days": [d.date().isoformat() for d in starts],
            "accuracy": [round(r / n, 4) if n else None for r, n in zip(right, count, strict=True)],
            "n": count,
        }
