"""Dashboard users: a username and an argon2id password hash.

Passwords are hashed with argon2id (RFC 9106) through ``argon2-cffi``'s
:class:`~argon2.PasswordHasher` with its default (RFC 9106 "low memory") parameters, and
rehashed on login when those defaults change. The password itself is never stored or
logged. Every change is written to the audit log.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aiweb.db.orm import SqlDashboardUser, utcnow
from aiweb.errors import ConflictError, InvalidInputError, UserNotFound
from aiweb.names import check_name
from aiweb.security.audit import AuditLog

MIN_PASSWORD_CHARS = 12
"""Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask for 12)."""

MAX_PASSWORD_CHARS = 1024
"""Longest password accepted (bounds the hashing work an attacker can ask for)."""

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("aiweb: equalise the timing of unknown usernames")


@dataclass(frozen=True)
class DashboardUser:
    """A dashboard login (never the hash)."""

    username: str
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None
    stamp: str = ""
    """Changes whenever the password does (a digest of the hash): sessions carry it."""

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def check_password(password: str) -> None:
    """Refuse passwords that are too short or too long.

    Raises:
        InvalidInputError: under :data:`MIN_PASSWORD_CHARS` or over
            :data:`MAX_PASSWORD_CHARS` characters.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInputError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInputError(f"a password has at most {MAX_PASSWORD_CHARS} characters")


def _to_user(row: SqlDashboardUser) -> DashboardUser:
    return DashboardUser(
        username=row.username,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        last_login_at=row.last_login_at,
        disabled_at=row.disabled_at,
        stamp=hashlib.sha256(row.password_hash.encode()).hexdigest()[:16],
    )


class UserService:
    """Create, verify, list and disable dashboard users.

    Args:
        session_factory: sessions on the migrated database.
        audit: where changes are recorded.
    """

    def __init__(self, session_factory: sessionmaker[Session], audit: AuditLog) -> None:
        self._sessions = session_factory
        self._audit = audit

    def create(self, username: str, password: str, *, actor: str = "") -> DashboardUser:
        """Add a user.

        Raises:
            InvalidInputError: a bad username (the model-name rules) or password.
            ConflictError: the username is taken.
        """
        check_name(username, "username")
        check_password(password)
        now = utcnow()
        try:
            with self._sessions() as session, session.begin():
                row = SqlDashboardUser(
                    username=username,
                    password_hash=_HASHER.hash(password),
                    created_at=now,
                    password_changed_at=now,
                )
                session.add(row)
                session.flush()
                user = _to_user(row)
        except IntegrityError:
            raise ConflictError(f"dashboard user {username!r} exists") from None
        self._audit.record(actor, "user.created", f"user:{username}")
        return user

    def set_password(self, username: str, password: str, *, actor: str = "") -> None:
        """Replace a user's password; sessions opened before it end.

        Raises:
            UserNotFound; InvalidInputError: a bad password.
        """
        check_password(password)
        with self._sessions() as session, session.begin():
            row = self._row(session, username)
            row.password_hash = _HASHER.hash(password)
            row.password_changed_at = utcnow()
        self._audit.record(actor, "user.password_changed", f"user:{username}")

    def disable(self, username: str, *, actor: str = "") -> None:
        """Stop a user from logging in; their open sessions end at the next request.

        Raises:
            UserNotFound.
        """
        with self._sessions() as session, session.begin():
            row = self._row(session, username)
            if row.disabled_at is None:
                row.disabled_at = utcnow()
        self._audit.record(actor, "user.disabled", f"user:{username}")

    def get(self, username: str) -> DashboardUser:
        """One user. Raises: UserNotFound."""
        with self._sessions() as session:
            return _to_user(self._row(session, username))

    def list(self) -> list[DashboardUser]:
        """Every user, by name."""
        with self._sessions() as session:
            rows = session.scalars(select(SqlDashboardUser).order_by(SqlDashboardUser.username))
            return [_to_user(r) for r in rows]

    def verify(self, username: str, password: str) -> DashboardUser | None:
        """The user when ``password`` is theirs and they are active, else ``None``.

        Unknown usernames cost one argon2 verification too, so timing does not tell
        which usernames exist. A hash made with older parameters is upgraded.
        """
        if len(password) > MAX_PASSWORD_CHARS:
            return None
        with self._sessions() as session, session.begin():
            row = session.scalar(
                select(SqlDashboardUser).where(SqlDashboardUser.username == username)
            )
            if row is None:
                with contextlib.suppress(VerificationError):
                    _HASHER.verify(_DUMMY_HASH, password)
                return None
            try:
                _HASHER.verify(row.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            if row.disabled_at is not None:
                return None
            if _HASHER.check_needs_rehash(row.password_hash):
                row.password_hash = _HASHER.hash(password)
            row.last_login_at = utcnow()
            session.flush()
            return _to_user(row)

    @staticmethod
    def _row(session: Session, username: str) -> SqlDashboardUser:
        row = session.scalar(select(SqlDashboardUser).where(SqlDashboardUser.username == username))
        if row is None:
            raise UserNotFound(f"no dashboard user named {username!r}")
        return row
