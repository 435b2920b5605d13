"""Webhook subscriptions and their delivery outbox (tables ``webhooks`` and
``webhook_deliveries``).

Shapes:

- a subscription (:meth:`WebhookService.get`): ``{"name", "url", "events",
  "secret_hint", "created_by", "created_at", "updated_at"}`` — the secret is never given
  back, only ``secret_hint`` (``"…"`` and its last 4 characters);
- a delivery (:meth:`WebhookService.deliveries`): ``{"id", "event_id", "event",
  "status", "attempts", "response_status", "last_error", "created_at",
  "next_attempt_at", "last_attempt_at", "delivered_at"}``, ``status`` one of
  ``pending``, ``sent``, ``failed``;
- the body posted (:func:`emit`): ``{"id": event id, "type": event, "created_at": ISO
  time, "data": {…}}``, the same event id in every webhook's delivery of it.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import WebhookSettings
from aiweb.db.orm import SqlWebhook, SqlWebhookDelivery, utcnow
from aiweb.errors import InvalidInputError, NotFoundError
from aiweb.names import check_name
from aiweb.webhooks.sender import MAX_ERROR, backoff_s, post_once
from aiweb.webhooks.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

#: the events sent today
EVENTS = (
    "job.finished",
    "drift.detected",
    "model.promoted",
    "rollout.started",
    "rollout.step",
    "rollout.held",
    "rollout.promoted",
    "rollout.rolled_back",
    "rollout.aborted",
    "assistant.handoff",
)
#: the families a ``<family>.*`` pattern may name
FAMILIES = ("job", "drift", "model", "rollout", "assistant")
MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256
MAX_PATTERNS = 16


def check_url(url: str) -> str:
    """An ``http``/``https`` URL with a host, at most 2048 characters, no spaces or
    control characters; raises :class:`InvalidInputError` otherwise."""
    if len(url) > MAX_URL:
        raise InvalidInputError(f"url is longer than {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url) or not url.isascii():
        raise InvalidInputError("url must be ASCII without spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is no number raises here
    except ValueError as exc:
        raise InvalidInputError(f"url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInputError("url must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidInputError("url has no host")
    return url


def check_events(events: list[str]) -> list[str]:
    """Event names (:data:`EVENTS`) or ``<family>.*`` patterns (:data:`FAMILIES`), 1 to
    16, duplicates dropped; raises :class:`InvalidInputError` otherwise."""
    if not events or len(events) > MAX_PATTERNS:
        raise InvalidInputError(f"events must list 1 to {MAX_PATTERNS} events")
    allowed = set(EVENTS) | {f"{family}.*" for family in FAMILIES}
    for event in events:
        if event not in allowed:
            raise InvalidInputError(
                f"unknown event {event[:64]!r}; known: {', '.join(sorted(allowed))}"
            )
    return list(dict.fromkeys(events))


def check_secret(secret: str) -> str:
    """16 to 256 visible ASCII characters; raises :class:`InvalidInputError` otherwise."""
    if not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise InvalidInputError(f"secret must be {MIN_SECRET} to {MAX_SECRET} characters")
    if not all(33 <= ord(c) <= 126 for c in secret):
        raise InvalidInputError("secret must be visible ASCII characters (no spaces)")
    return secret


def matches(pattern: str, event: str) -> bool:
    """Whether subscription ``pattern`` (a name or ``<family>.*``) covers ``event``."""
    if pattern.endswith(".*"):
        return event.startswith(pattern[:-1])
    return pattern == event


def _hint(secret: str) -> str:
    return "…" + secret[-4:]


def _webhook_out(row: SqlWebhook) -> dict[str, Any]:
    return {
        "name": row.name,
        "url": row.url,
        "events": list(row.events),
        "secret_hint": _hint(row.secret),
        "created_by": row.created_by,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _delivery_out(row: SqlWebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "response_status": row.response_status,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
        "last_attempt_at": row.last_attempt_at,
        "delivered_at": row.delivered_at,
    }


def has_subscribers(sessions: sessionmaker[Session], event: str) -> bool:
    """Whether any webhook subscribes to ``event``."""
    with sessions() as session:
        patterns = session.scalars(select(SqlWebhook.events)).all()
    return any(matches(p, event) for events in patterns for p in events)


def emit(sessions: sessionmaker[Session], event: str, data: dict[str, Any]) -> int:
    """Queue ``event`` with ``data`` for every webhook subscribed to it: one ``pending``
    delivery row each, sent by the next scheduler tick. No HTTP here.

    Returns:
        The number of deliveries queued (0: nobody subscribes).
    """
    with sessions.begin() as session:
        return queue(session, event, data)


def queue(session: Session, event: str, data: dict[str, Any], *, to: str | None = None) -> int:
    """:func:`emit` in the caller's transaction (the event is queued if and only if the
    caller's change is committed), also to the managed webhook ``to`` when it exists
    (:func:`put_managed`; it gets the event whatever it subscribes to).

    Returns:
        The number of deliveries queued.
    """
    now = utcnow()
    event_id = str(uuid.uuid4())
    payload = {"id": event_id, "type": event, "created_at": now.isoformat(), "data": data}
    hooks = session.execute(select(SqlWebhook.name, SqlWebhook.events)).all()
    names = [
        name for name, patterns in hooks if name == to or any(matches(p, event) for p in patterns)
    ]
    for name in names:
        session.add(
            SqlWebhookDelivery(
                id=str(uuid.uuid4()),
                webhook=name,
                event_id=event_id,
                event=event,
                payload=payload,
                status="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )
    return len(names)


def put_managed(
    sessions: sessionmaker[Session], name: str, url: str, secret: str, *, actor: str
) -> None:
    """Create or replace webhook ``name`` for another part of aiweb (an assistant's
    handoff URL): it subscribes to no event, so it gets only what :func:`queue` sends it
    by name, signed with ``secret``; its deliveries are listed like any webhook's.

    Raises:
        InvalidInputError: a bad name, URL or secret.
    """
    check_name(name, "webhook")
    check_url(url)
    check_secret(secret)
    now = utcnow()
    with sessions.begin() as session:
        row = session.get(SqlWebhook, name)
        if row is None:
            row = SqlWebhook(name=name, created_by=actor, created_at=now)
            session.add(row)
        row.url, row.events, row.secret, row.updated_at = url, [], secret, now


def delete_managed(sessions: sessionmaker[Session], name: str) -> bool:
    """Delete webhook ``name`` and its deliveries when it exists; whether it did."""
    with sessions.begin() as session:
        row = session.get(SqlWebhook, name)
        if row is None:
            return False
        session.execute(delete(SqlWebhookDelivery).where(SqlWebhookDelivery.webhook == name))
        session.delete(row)
    return True


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes posted for ``payload`` (compact JSON, UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookService:
    """Subscriptions (``/v1/webhooks``) and the sending of their deliveries.

    Args:
        sessions: database sessions.
        settings: tries, back-off, timeout, batch size (``AIWEB_WEBHOOKS__*``).
    """

    def __init__(self, sessions: sessionmaker[Session], settings: WebhookSettings) -> None:
        self._sessions = sessions
        self.settings = settings

    def put(
        self, name: str, url: str, events: list[str], secret: str, *, actor: str = ""
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace webhook ``name``.

        Returns:
            ``(the subscription, whether it was created)``.

        Raises:
            InvalidInputError: bad name, URL (not http/https), events or secret.
        """
        check_name(name, "webhook")
        check_url(url)
        events = check_events(events)
        check_secret(secret)
        now = utcnow()
        with self._sessions.begin() as session:
            row = session.get(SqlWebhook, name)
            created = row is None
            if row is None:
                row = SqlWebhook(name=name, created_by=actor, created_at=now)
                session.add(row)
            row.url, row.events, row.secret, row.updated_at = url, events, secret, now
            session.flush()
            return _webhook_out(row), created

    def get(self, name: str) -> dict[str, Any]:
        """Webhook ``name`` (its secret only as a hint). Raises NotFoundError."""
        with self._sessions() as session:
            row = session.get(SqlWebhook, name)
            if row is None:
                raise NotFoundError(f"webhook {name!r} not found")
            return _webhook_out(row)

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook, by name."""
        with self._sessions() as session:
            rows = session.scalars(select(SqlWebhook).order_by(SqlWebhook.name)).all()
            return [_webhook_out(row) for row in rows]

    def delete(self, name: str) -> dict[str, Any]:
        """Delete webhook ``name`` and its deliveries (the pending ones are not sent).
        Raises NotFoundError."""
        with self._sessions.begin() as session:
            row = session.get(SqlWebhook, name)
            if row is None:
                raise NotFoundError(f"webhook {name!r} not found")
            out = _webhook_out(row)
            session.execute(delete(SqlWebhookDelivery).where(SqlWebhookDelivery.webhook == name))
            session.delete(row)
        return out

    def deliveries(self, name: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` deliveries of webhook ``name``. Raises NotFoundError."""
        with self._sessions() as session:
            if session.get(SqlWebhook, name) is None:
                raise NotFoundError(f"webhook {name!r} not found")
            rows = session.scalars(
                select(SqlWebhookDelivery)
                .where(SqlWebhookDelivery.webhook == name)
                .order_by(SqlWebhookDelivery.created_at.desc(), SqlWebhookDelivery.id)
                .limit(limit)
            ).all()
            return [_delivery_out(row) for row in rows]

    def deliver_due(self, now: datetime | None = None) -> dict[str, int]:
        """Post the due ``pending`` deliveries (at most ``batch_size``), one try each.

        Each is claimed first (its ``next_attempt_at`` moved past the try), so several
        processes ticking at once never post one twice at the same time. A 2xx answer
        makes it ``sent``; anything else is retried after ``retry_backoff_s * 2**(n-1)``
        (at most ``retry_backoff_max_s``) until ``max_attempts`` tries, then ``failed``.

        Returns:
            ``{"sent", "retried", "failed"}`` counts of this round.
        """
        settings = self.settings
        now = now or utcnow()
        counts = {"sent": 0, "retried": 0, "failed": 0}
        with self._sessions() as session:
            due = session.execute(
                select(SqlWebhookDelivery.id, SqlWebhookDelivery.next_attempt_at)
                .where(SqlWebhookDelivery.status == "pending")
                .where(SqlWebhookDelivery.next_attempt_at <= now)
                .order_by(SqlWebhookDelivery.next_attempt_at)
                .limit(settings.batch_size)
            ).all()
        lease = timedelta(seconds=2 * settings.timeout_s + 30)
        for delivery_id, due_at in due:
            with self._sessions.begin() as session:
                claimed = cast(
                    CursorResult[Any],
                    session.execute(
                        update(SqlWebhookDelivery)
                        .where(SqlWebhookDelivery.id == delivery_id)
                        .where(SqlWebhookDelivery.status == "pending")
                        .where(SqlWebhookDelivery.next_attempt_at == due_at)
                        .values(next_attempt_at=now + lease),
                    ),
                ).rowcount
            if claimed == 1:
                counts[self._try(delivery_id, now)] += 1
        return counts

    def _try(self, delivery_id: str, now: datetime) -> str:
        settings = self.settings
        with self._sessions() as session:
            row = session.get(SqlWebhookDelivery, delivery_id)
            assert row is not None
            hook = session.get(SqlWebhook, row.webhook)
            attempt = row.attempts + 1
            payload, event = row.payload, row.event
            target = (hook.url, hook.secret) if hook is not None else None
        if target is None:
            status, code, error = "failed", None, "the webhook was deleted"
        else:
            body = body_of(payload)
            headers = {
                SIGNATURE_HEADER: sign(body, target[1]),
                "Aiweb-Event": event,
                "Aiweb-Delivery": delivery_id,
                "User-Agent": "aiweb-webhooks",
            }
            result = post_once(target[0], body, headers, settings.timeout_s)
            code, error = result.status, result.error
            if result.ok:
                status = "sent"
            elif attempt >= settings.max_attempts:
                status = "failed"
            else:
                status = "pending"
        finished = utcnow()
        wait = backoff_s(attempt, settings.retry_backoff_s, settings.retry_backoff_max_s)
        with self._sessions.begin() as session:
            session.execute(
                update(SqlWebhookDelivery)
                .where(SqlWebhookDelivery.id == delivery_id)
                .values(
                    status=status,
                    attempts=attempt,
                    response_status=code,
                    last_error=error[:MAX_ERROR] or None,
                    last_attempt_at=finished,
                    delivered_at=finished if status == "sent" else None,
                    next_attempt_at=max(now, finished) + timedelta(seconds=wait),
                )
            )
        if status == "failed":
            log.warning("webhook delivery %s (%s) failed for good: %s", delivery_id, event, error)
        return {"sent": "sent", "pending": "retried", "failed": "failed"}[status]
