"""Throttling of failed dashboard logins: per account and per client address, with delays
that double on each consecutive failure.

Each failed login counts against its client address (``addr:<address>``) and, for a
username/password login, against that account (``user:<username>``). Once a scope has
had its free failures (``AIWEB_DASHBOARD__LOGIN_FREE_FAILURES_PER_ACCOUNT``, ``…_PER_ADDRESS``),
every further failure makes it wait ``login_base_delay_s * 2**(failures - free)`` seconds
(at most ``login_max_delay_s``) before its next attempt is even checked; an attempt in
that time gets 429 with ``Retry-After`` whatever the credentials. A successful login
clears its account's count (not its address's: a valid login must not reset a guessing
address); failures are forgotten ``login_failure_memory_s`` after the last one.

So an attacker hammering one account or from one address slows down only that account
and that address: anyone else — another account, the admin's key from another address —
logs in as usual. API-key logins count against the address only: a key has 256 random
bits, which no throttle needs to protect, and a per-key count would only let an attacker
lock the admin out.

The counts are rows in ``dashboard_login_throttle`` (shared by every worker); checking an
attempt once delays apply reserves the scope's next slot with one conditional
``UPDATE``, so concurrent attempts cannot slip through together.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aiweb.config import DashboardSettings
from aiweb.db.orm import SqlLoginThrottle, utcnow


def account_scope(username: str) -> str:
    """The throttle scope of a username (its digest when it is odd or long)."""
    if username.isprintable() and len(username) <= 128 and username.isascii():
        return f"user:{username}"
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"user#{digest}"


def address_scope(address: str) -> str:
    """The throttle scope of a client address."""
    return f"addr:{address[:150]}"


@dataclass(frozen=True)
class Refusal:
    """An attempt refused unchecked: which scope waits, and for how long (seconds)."""

    scope: str
    retry_after_s: int


class LoginThrottle:
    """Counts failed logins per scope and decides whether an attempt may be checked.

    Args:
        sessions: sessions on the migrated database.
        settings: the dashboard settings (free failures, delays, memory).
        clock: the current UTC time (tests pass their own).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: DashboardSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock

    def free_failures(self, scope: str) -> int:
        """Failures a scope may have before delays start."""
        if scope.startswith("addr:"):
            return self._settings.login_free_failures_per_address
        return self._settings.login_free_failures_per_account

    def delay_s(self, scope: str, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure: 0 while free,
        then ``login_base_delay_s`` doubling with each failure, at most
        ``login_max_delay_s``."""
        over = failures - self.free_failures(scope)
        if over <= 0:
            return 0.0
        base = self._settings.login_base_delay_s
        return float(min(base * 2.0 ** min(over - 1, 60), self._settings.login_max_delay_s))

    def admit(self, scopes: Sequence[str]) -> Refusal | None:
        """Whether an attempt on ``scopes`` may be checked now: ``None`` when it may (its
        slot is reserved), else the :class:`Refusal` of the first scope that waits."""
        now = self._clock()
        memory = timedelta(seconds=self._settings.login_failure_memory_s)
        with self._sessions.begin() as db:
            for scope in scopes:
                row = db.get(SqlLoginThrottle, scope)
                if row is None or now - row.last_failure_at > memory:
                    continue
                if self.delay_s(scope, row.failures) == 0:
                    continue
                if row.next_attempt_at > now:
                    return Refusal(scope, _ceil_s(row.next_attempt_at - now))
                # reserve the slot: concurrent attempts find it taken and wait
                hold = now + timedelta(seconds=self.delay_s(scope, row.failures))
                reserved = db.execute(
                    update(SqlLoginThrottle)
                    .where(SqlLoginThrottle.scope == scope)
                    .where(SqlLoginThrottle.next_attempt_at <= now)
                    .values(next_attempt_at=hold)
                    .execution_options(synchronize_session=False)
                )
                if not getattr(reserved, "rowcount", 1):
                    return Refusal(scope, max(1, _ceil_s(hold - now)))
        return None

    def failed(self, scopes: Sequence[str]) -> dict[str, int]:
        """Count a failed attempt against each scope. Returns each scope's consecutive
        failures now."""
        now = self._clock()
        memory = timedelta(seconds=self._settings.login_failure_memory_s)
        counts: dict[str, int] = {}
        for scope in scopes:
            for _ in range(3):  # a concurrent first failure may insert the row first
                try:
                    counts[scope] = self._count_failure(scope, now, memory)
                    break
                except IntegrityError:
                    continue
        with self._sessions.begin() as db:  # forget scopes quiet for long
            db.execute(
                delete(SqlLoginThrottle).where(SqlLoginThrottle.last_failure_at < now - memory)
            )
        return counts

    def _count_failure(self, scope: str, now: datetime, memory: timedelta) -> int:
        table = SqlLoginThrottle
        with self._sessions.begin() as db:
            # one atomic UPDATE first: it takes the row's write lock on every database
            counted = db.execute(
                update(table)
                .where(table.scope == scope)
                .values(
                    failures=case(
                        (table.last_failure_at < now - memory, 1), else_=table.failures + 1
                    ),
                    last_failure_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not getattr(counted, "rowcount", 0):
                db.add(table(scope=scope, failures=1, last_failure_at=now, next_attempt_at=now))
                db.flush()  # IntegrityError when another attempt inserted it first
            failures = int(db.scalar(select(table.failures).where(table.scope == scope)) or 1)
            db.execute(
                update(table)
                .where(table.scope == scope)
                .values(next_attempt_at=now + timedelta(seconds=self.delay_s(scope, failures)))
                .execution_options(synchronize_session=False)
            )
            return failures

    def succeeded(self, scopes: Sequence[str]) -> None:
        """Clear the counts of ``scopes`` (a successful login's account)."""
        if not scopes:
            return
        with self._sessions.begin() as db:
            db.execute(delete(SqlLoginThrottle).where(SqlLoginThrottle.scope.in_(list(scopes))))


def _ceil_s(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))
