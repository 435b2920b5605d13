"""Drift alerts: one JSON POST per drifted model version and feature.

When a drift computation (``GET /v1/models/{name}/drift`` or the scheduler's periodic
check) finds a feature drifted and ``AIWEB_ALERT_WEBHOOK_URL`` is set, the alert is
claimed by inserting its row into ``drift_alerts`` (primary key: model, version,
feature) — the first process to insert it sends it, so several workers never send the same
alert twice — and posted in a background thread, retried with exponential back-off on a
network error or a 5xx answer up to ``AIWEB_ALERTS__MAX_ATTEMPTS`` tries. The row records
the outcome (``sent`` or ``failed``, attempts, last error). The body::

    {"type": "aiweb.drift", "model": "sentiment", "version": 3, "feature": "oov_rate",
     "statistic": "psi", "value": 0.41, "threshold": 0.2, "window": "24h", "n": 5120,
     "detected_at": "2026-11-21T05:00:00+00:00"}
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import AlertSettings
from aiweb.db.orm import SqlDriftAlert
from aiweb.webhooks.sender import PostResult, post_with_retries
from aiweb.webhooks.service import emit, has_subscribers
from aiweb.webhooks.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)


class AlertPoster:
    """Posts alert bodies to one webhook URL from a background thread, retried with
    exponential back-off (:func:`aiweb.webhooks.sender.post_with_retries`), signed with
    ``settings.webhook_secret`` when it is set (:func:`aiweb.webhooks.signing.sign`, the
    ``Aiweb-Signature`` header of the webhooks; the receiver checks it with
    :func:`aiweb.client.webhooks.verify_signature`).

    The thread is started by the first post; :meth:`close` waits for the posts queued.

    Args:
        url: the webhook URL, or ``None`` to post nothing.
        settings: attempts, back-off and timeout.
        thread_name: the name prefix of the sending thread.

    Attributes:
        url: the webhook URL, or ``None``.
    """

    def __init__(self, url: str | None, settings: AlertSettings, thread_name: str) -> None:
        self.url = url
        self._settings = settings
        self._thread_name = thread_name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def post(
        self,
        payload: dict[str, Any],
        what: str,
        done: Callable[[PostResult, int], None] | None = None,
    ) -> Future[bool] | None:
        """Queue one POST of ``payload`` as JSON.

        Args:
            payload: the body.
            what: the alert in the error logged when it is not delivered
                (``drift alert for sentiment:3 oov_rate``).
            done: called in the sending thread with the outcome and the tries made.

        Returns:
            The pending send, true when delivered; ``None`` when there is no URL.
        """
        if not self.url:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
            return self._pool.submit(self._send, self.url, payload, what, done)

    def _send(
        self,
        url: str,
        payload: dict[str, Any],
        what: str,
        done: Callable[[PostResult, int], None] | None,
    ) -> bool:
        settings = self._settings
        body = json.dumps(payload).encode()
        headers: dict[str, str] = {}
        if settings.webhook_secret is not None:  # signed once: retries span seconds
            headers[SIGNATURE_HEADER] = sign(body, settings.webhook_secret.get_secret_value())
        result, attempt = post_with_retries(
            url,
            body,
            headers,
            max_attempts=settings.max_attempts,
            backoff_first_s=settings.retry_backoff_s,
            timeout_s=settings.timeout_s,
        )
        if not result.ok:
            log.error("%s not delivered: %s", what, result.error)
        if done is not None:
            done(result, attempt)
        return result.ok

    def close(self) -> None:
        """Wait for the posts queued; a later post starts a new thread."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


class AlertSender:
    """Claims and posts drift alerts.

    Args:
        sessions: database sessions (the ``drift_alerts`` table).
        url: the webhook URL, or ``None`` to send nothing.
        settings: attempts, back-off and timeout.
    """

    def __init__(
        self, sessions: sessionmaker[Session], url: str | None, settings: AlertSettings
    ) -> None:
        self._sessions = sessions
        self._url = url
        self._poster = AlertPoster(url, settings, "aiweb-alerts")

    def _claim(self, payload: dict[str, Any]) -> bool:
        row = SqlDriftAlert(
            model=payload["model"],
            version=payload["version"],
            feature=payload["feature"],
            payload=payload,
            status="pending",
            attempts=0,
            created_at=datetime.now(UTC),
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            return False  # already alerted (by this or another process)
        return True

    def alert(self, drift: dict[str, Any]) -> list[Future[bool]]:
        """Send one alert per drifted feature of a drift result not alerted before.

        Args:
            drift: a :meth:`aiweb.monitoring.drift.DriftService.drift` result.

        Each new alert is also the ``drift.detected`` event of the webhooks
        (:mod:`aiweb.webhooks`), whose data is the body below without ``type``.

        Returns:
            The pending sends (tests wait on them); empty when no webhook is set.
        """
        subscribed = has_subscribers(self._sessions, "drift.detected")
        if not self._url and not subscribed:
            return []
        now = datetime.now(UTC).isoformat()
        futures = []
        for feature in drift["features"]:
            if not feature["drift"]:
                continue
            payload = {
                "type": "aiweb.drift",
                "model": drift["model"],
                "version": drift["version"],
                "feature": feature["name"],
                "statistic": feature["statistic"],
                "value": feature["value"],
                "threshold": feature["threshold"],
                "window": drift["window"],
                "n": drift["n"],
                "detected_at": now,
            }
            if not self._claim(payload):
                continue
            if subscribed:
                try:
                    emit(
                        self._sessions,
                        "drift.detected",
                        {k: v for k, v in payload.items() if k != "type"},
                    )
                except Exception:
                    log.warning("drift.detected event not queued", exc_info=True)
            future = self._poster.post(
                payload,
                f"drift alert for {payload['model']}:{payload['version']} {payload['feature']}",
                partial(self._finish, payload),
            )
            if future is not None:
                futures.append(future)
        return futures

    def _finish(self, payload: dict[str, Any], result: PostResult, attempts: int) -> None:
        status = "sent" if result.ok else "failed"
        with self._sessions.begin() as session:
            session.execute(
                update(SqlDriftAlert)
                .where(SqlDriftAlert.model == payload["model"])
                .where(SqlDriftAlert.version == payload["version"])
                .where(SqlDriftAlert.feature == payload["feature"])
                .values(
                    status=status,
                    attempts=attempts,
                    last_error=result.error or None,
                    sent_at=datetime.now(UTC) if status == "sent" else None,
                )
            )

    def close(self) -> None:
        """Wait for alerts being sent."""
        self._poster.close()
