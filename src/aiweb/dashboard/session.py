"""Dashboard sessions: a signed cookie, and the CSRF token each form carries.

The session cookie holds ``{"kind", "name", "csrf", "sid"}`` signed and timestamped with
``itsdangerous`` (HMAC-SHA1 over the app's secret key, salt ``aiweb.dashboard``); it is
``HttpOnly``, ``SameSite=Strict``, ``Path=/`` and ``Secure`` on HTTPS. Nothing secret
is in it: a key login stores the key's *name*, and each request checks that the key is
still active and an admin key, and that a user is still enabled and has the password
they logged in with (a digest of its hash travels as the session's stamp) — so
revoking a key, disabling a user or changing a password ends those sessions at once.

Sessions are revocable server-side: ``sid`` is 256 random bits, and the session is live
only while :class:`SessionStore` holds a row for it (the sha256 of ``sid``, in the
database, so every worker agrees). Logging out deletes the row: a copy of the cookie
replayed afterwards is refused like no cookie at all. Cookies without ``sid`` (made
before sessions were stored) are refused too.

CSRF: every state-changing form carries the session's random token (synchronizer-token
pattern, OWASP CSRF Prevention Cheat Sheet), htmx requests send it in ``X-CSRF-Token``;
the login form, before any session exists, uses a double-submit cookie. Both compare in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from aiweb.db.orm import SqlDashboardSession, utcnow

SESSION_COOKIE = "aiweb_session"
FLASH_COOKIE = "aiweb_flash"
FLASH_MAX_AGE_S = 120
LOGIN_CSRF_COOKIE = "aiweb_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SALT = "aiweb.dashboard"


@dataclass(frozen=True)
class DashboardSession:
    """Who is logged in.

    Attributes:
        kind: ``key`` (logged in with an admin API key) or ``user`` (username/password).
        name: the key's or the user's name; the audit log's actor is ``dashboard:<name>``.
        csrf: the token forms must send back.
        issued_at: when the cookie was signed (UTC).
        stamp: a user's password stamp at login (a new password ends the session).
        sid: the session's random id (its row in :class:`SessionStore` keeps it live).
    """

    kind: Literal["key", "user"]
    name: str
    csrf: str
    issued_at: datetime
    stamp: str = ""
    sid: str = ""

    @property
    def actor(self) -> str:
        return f"dashboard:{self.name}"


class SessionCodec:
    """Sign and read session cookies.

    Args:
        secret_key: the app's secret key (``AIWEB_SECRET_KEY``).
        max_age_s: lifetime of a session, seconds.
    """

    def __init__(self, secret_key: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self._flash = URLSafeTimedSerializer(secret_key, salt=_SALT + ".flash")
        self.max_age_s = max_age_s

    def sign_flash(self, kind: str, text: str) -> str:
        """A one-shot message for the next page (``kind``: ``ok`` or ``error``)."""
        return self._flash.dumps({"kind": kind, "text": text[:500]})

    def read_flash(self, value: str | None) -> dict[str, str] | None:
        """The message in a flash cookie, or ``None`` if absent, forged or older than
        :data:`FLASH_MAX_AGE_S`."""
        if not value:
            return None
        try:
            data = self._flash.loads(value, max_age=FLASH_MAX_AGE_S)
        except BadSignature:  # SignatureExpired is a BadSignature
            return None
        if isinstance(data, dict) and data.get("kind") in ("ok", "error"):
            return {"kind": str(data["kind"]), "text": str(data.get("text", ""))}
        return None

    def issue(
        self, kind: Literal["key", "user"], name: str, stamp: str = ""
    ) -> tuple[str, DashboardSession]:
        """A new cookie value and the session it holds (with a fresh CSRF token and session
        id; :meth:`SessionStore.open` makes it live)."""
        csrf = secrets.token_urlsafe(32)
        sid = secrets.token_urlsafe(32)
        payload = {"kind": kind, "name": name, "csrf": csrf, "stamp": stamp, "sid": sid}
        value = self._serializer.dumps(payload)
        now = datetime.now(UTC).replace(microsecond=0)
        session = DashboardSession(
            kind=kind, name=name, csrf=csrf, issued_at=now, stamp=stamp, sid=sid
        )
        return value, session

    def read(self, value: str | None) -> DashboardSession | None:
        """The session in a cookie, or ``None`` if absent, forged, malformed or expired."""
        if not value or len(value) > 4096:
            return None
        try:
            data, signed_at = self._serializer.loads(
                value, max_age=self.max_age_s, return_timestamp=True
            )
        except BadSignature:  # SignatureExpired is a BadSignature
            return None
        if not _valid_payload(data):
            return None
        return DashboardSession(
            kind=data["kind"],
            name=data["name"],
            csrf=data["csrf"],
            issued_at=signed_at,
            stamp=str(data.get("stamp", "")),
            sid=data["sid"],
        )


def _valid_payload(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and data.get("kind") in ("key", "user")
        and isinstance(data.get("name"), str)
        and isinstance(data.get("csrf"), str)
        and isinstance(data.get("sid"), str)
        and 0 < len(data["sid"]) <= 128
    )


def _sid_digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    """The live dashboard sessions, in the database (shared by every worker).

    Only the sha256 of a session id is stored, so the table alone lets no one in.

    Args:
        sessions: sessions on the migrated database.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def open(self, session: DashboardSession, max_age_s: int) -> None:
        """Make ``session`` live for ``max_age_s`` seconds (and forget expired ones)."""
        now = utcnow()
        with self._sessions.begin() as db:
            db.execute(delete(SqlDashboardSession).where(SqlDashboardSession.expires_at <= now))
            db.add(
                SqlDashboardSession(
                    id_sha256=_sid_digest(session.sid),
                    kind=session.kind,
                    name=session.name[:128],
                    created_at=now,
                    expires_at=now + timedelta(seconds=max_age_s),
                )
            )

    def is_live(self, sid: str) -> bool:
        """Whether the session ``sid`` was opened, not closed and has not expired."""
        if not sid:
            return False
        with self._sessions() as db:
            expires_at = db.scalar(
                select(SqlDashboardSession.expires_at).where(
                    SqlDashboardSession.id_sha256 == _sid_digest(sid)
                )
            )
        return expires_at is not None and expires_at > utcnow()

    def close(self, sid: str) -> bool:
        """End the session ``sid`` (logout). Returns whether it was live."""
        with self._sessions.begin() as db:
            result = db.execute(
                delete(SqlDashboardSession).where(SqlDashboardSession.id_sha256 == _sid_digest(sid))
            )
        return bool(getattr(result, "rowcount", 0))


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison of CSRF tokens (``False`` when one is missing)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def is_https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (uvicorn applies X-Forwarded-Proto)."""
    return request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age_s: int, *, path: str = "/"
) -> None:
    """Set a dashboard cookie: HttpOnly, SameSite=Strict, Secure on HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age_s,
        path=path,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str, *, path: str = "/") -> None:
    """Delete a dashboard cookie."""
    response.delete_cookie(
        name, path=path, httponly=True, samesite="strict", secure=is_https(request)
    )
