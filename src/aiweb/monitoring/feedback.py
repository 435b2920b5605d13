"""Feedback on predictions, and the live accuracy computed from it.

A client that learns the right answer for a served prediction (a user corrects a label,
a moderator decides a message was spam) posts it:
``POST /v1/predictions/{id}/feedback {"label": "...", "comment": "..."}``. The row is
committed before the 2xx answer. Live performance of a model version is computed over
the predictions *made* in a window that have feedback, with the latest feedback per
prediction as the truth:

- accuracy = correct / n;
- macro-F1 = the unweighted mean over classes of F1 (Sokolova & Lapalme, 2009), over the
  classes that occur as truth or prediction in the window (scikit-learn's
  ``f1_score(average="macro", zero_division=0)``).

Windows are ``1h``, ``24h`` and ``7d`` back from now. Each computation also sets the
``aiweb_model_live_accuracy{model,version}`` gauge (24 h window).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sklearn.metrics import f1_score
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlFeedback, SqlPrediction
from aiweb.errors import InvalidInputError, PredictionNotFound
from aiweb.monitoring.metrics import LIVE_ACCURACY
from aiweb.monitoring.prediction_log import PredictionLogger
from aiweb.registry.store import RegistryStore

#: The live-performance windows, by name.
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def window_metrics(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    """``{"n", "accuracy", "macro_f1"}`` of aligned label lists (``None`` when empty)."""
    n = len(truth)
    if n == 0:
        return {"n": 0, "accuracy": None, "macro_f1": None}
    correct = sum(1 for t, p in zip(truth, predicted, strict=True) if t == p)
    labels = sorted(set(truth) | set(predicted))
    macro = f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
    return {"n": n, "accuracy": correct / n, "macro_f1": float(macro)}


class FeedbackService:
    """Stores feedback and computes live performance.

    Args:
        sessions: database sessions.
        store: the registry store (a version's labels).
        logger: this process's prediction log, flushed when feedback names a prediction
            that is still queued in memory.
        wait_s: how long to wait for a prediction queued by another process to be
            written before answering 404 (the log's flush interval, plus a margin).
        clock: the current time (tests pass their own).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: RegistryStore,
        logger: PredictionLogger,
        *,
        wait_s: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._logger = logger
        self._wait_s = wait_s
        self._clock = clock

    def _find_prediction(self, prediction_id: str) -> SqlPrediction | None:
        deadline = time.monotonic() + self._wait_s
        flushed = False
        while True:
            with self._sessions() as session:
                row = session.get(SqlPrediction, prediction_id)
                if row is not None:
                    session.expunge(row)
                    return row
            if not flushed and self._logger.pending():
                self._logger.flush()  # it may be in this process's queue
                flushed = True
                continue
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)  # or in another worker's, written within its flush interval

    def submit(
        self, prediction_id: str, label: str, comment: str | None, actor: str
    ) -> tuple[bool, dict[str, Any]]:
        """Record that ``prediction_id`` should have been ``label``.

        Returns:
            ``(created, feedback)``: ``created`` is false when it replaced earlier feedback.

        Raises:
            PredictionNotFound: no such prediction (404).
            InvalidInputError: ``label`` is not a class of the prediction's model version.
        """
        prediction = self._find_prediction(prediction_id)
        if prediction is None:
            raise PredictionNotFound(
                f"no prediction {prediction_id!r}: send the id a predict response gave"
            )
        labels = self._store.get_version(prediction.model, prediction.version).labels
        if label not in labels:
            raise InvalidInputError(
                f"{label!r} is not a label of {prediction.model}:{prediction.version}; "
                f"it has {', '.join(labels)}"
            )
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get(SqlFeedback, prediction_id)
            created = row is None
            if row is None:
                row = SqlFeedback(
                    prediction_id=prediction_id,
                    model=prediction.model,
                    version=prediction.version,
                    predicted_label=prediction.label,
                    predicted_at=prediction.created_at,
                )
                session.add(row)
            row.label = label
            row.comment = comment
            row.submitted_by = actor
            row.created_at = now
            out = {
                "prediction_id": prediction_id,
                "model": prediction.model,
                "version": prediction.version,
                "predicted_label": prediction.label,
                "label": label,
                "correct": label == prediction.label,
                "comment": comment,
                "created_at": now,
            }
        self._windows(prediction.model, prediction.version, ("24h",))  # sets the gauge
        return created, out

    def performance(self, name: str, version: int) -> dict[str, Any]:
        """Live accuracy and macro-F1 of ``name:version`` per window.

        Raises:
            ModelNotFound, ModelVersionNotFound: unknown model or version.
        """
        self._store.get_version(name, version)  # 404 for unknown versions
        return {"model": name, "version": version, "windows": self._windows(name, version)}

    def _windows(
        self, name: str, version: int, which: tuple[str, ...] = tuple(WINDOWS)
    ) -> dict[str, dict[str, Any]]:
        """``{window: {"n", "accuracy", "macro_f1"}}`` for the windows named (one query
        back to the longest), and the live-accuracy gauge when the 24 h window is among
        them."""
        now = self._clock()
        oldest = now - max(WINDOWS[w] for w in which)
        query = (
            select(SqlFeedback.label, SqlFeedback.predicted_label, SqlFeedback.predicted_at)
            .where(SqlFeedback.model == name)
            .where(SqlFeedback.version == version)
            .where(SqlFeedback.predicted_at > oldest)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        windows: dict[str, dict[str, Any]] = {}
        for window in which:
            start = now - WINDOWS[window]
            inside = [(t, p) for t, p, at in rows if start < at <= now]
            windows[window] = window_metrics([t for t, _ in inside], [p for _, p in inside])
        accuracy = windows.get("24h", {}).get("accuracy")
        if accuracy is not None:
            LIVE_ACCURACY.labels(name, str(version)).set(accuracy)
        return windows
