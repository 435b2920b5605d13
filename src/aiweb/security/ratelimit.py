"""Per-identity, per-scope rate limits on the ``limits`` library.

Each request is charged to an *identity* (``"key:<name>"`` for an API key,
``"ip:<address>"`` for a client without one) within a *scope* (``predict``, ``train``,
``admin`` or ``anonymous``), whose budget comes from :class:`~aiweb.config.RateLimitSettings`
in the ``limits`` notation (``"1200/minute"``, ``"10 per 2 seconds"``).

Algorithm: the *moving window* of the ``limits`` library
(:class:`limits.strategies.MovingWindowRateLimiter`, see
https://limits.readthedocs.io/en/stable/strategies.html#moving-window). Every accepted
request stores its timestamp; a request is accepted while fewer than ``amount``
timestamps fall in the last ``window`` seconds. Unlike a fixed window it allows no
burst of twice the budget across a window boundary, and a refused request is not
counted, so a client that keeps retrying is not locked out longer than needed. It costs
one timestamp per accepted request per identity (at most ``amount`` are kept).

Storage: in process memory by default (one budget per worker process); with
``AIWEB_REDIS_URL`` set, Redis (:class:`limits.storage.RedisStorage`, atomic Lua
scripts), so every worker and replica shares one budget. Keys are
``<namespace>:<scope>/<identity>/<amount>/<multiples>/<granularity>`` with namespace
``aiweb``; changing a budget therefore starts its counters afresh.

Headers follow the IETF draft *RateLimit header fields for HTTP*
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Limit``, ``RateLimit-Remaining``,
``RateLimit-Reset`` (delta seconds), plus ``Retry-After`` (RFC 9110) on a refusal.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Final

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from aiweb.config import RateLimitSettings
from aiweb.errors import RateLimitedError

__all__ = ["SCOPES", "RateLimitResult", "RateLimitedError", "RateLimiter"]

logger = logging.getLogger(__name__)

SCOPES: Final = ("predict", "train", "admin", "anonymous")
"""The scopes a budget is set for, one :class:`RateLimitSettings` field each."""

_REDIS_SOCKET_TIMEOUT_S: Final = 0.5
"""Connect and read timeout towards Redis: a dead Redis must not stall requests."""

_REDIS_RETRY_S: Final = 5.0
"""After a Redis failure, requests are let through without asking Redis for this long."""

_WARN_INTERVAL_S: Final = 60.0
"""At most one warning about an unreachable Redis per this many seconds."""


@dataclass(frozen=True)
class RateLimitResult:
    """The outcome of charging one request to a budget.

    Attributes:
        allowed: whether the request may proceed (and was counted).
        limit: requests allowed per window (the budget's amount).
        remaining: requests left in the current window after this one.
        reset_s: seconds until the oldest counted request leaves the window, i.e. until
            at least one more request is allowed (0 when nothing is counted).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    @property
    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: ``reset_s``, at least 1."""
        return max(1, self.reset_s)

    def headers(self) -> dict[str, str]:
        """The response header fields for this outcome.

        Returns:
            ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (IETF
            draft-ietf-httpapi-ratelimit-headers), plus ``Retry-After`` (integer
            seconds, at least 1) when the request was refused.
        """
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


def describe_limit(item: RateLimitItem) -> str:
    """A budget in words, e.g. ``"1200 per 1 minute"`` or ``"10 per 2 seconds"``."""
    unit = item.GRANULARITY.name
    return f"{item.amount} per {item.multiples} {unit}{'' if item.multiples == 1 else 's'}"


def _parse_budget(scope: str, value: str) -> RateLimitItem:
    setting = f"AIWEB_RATE_LIMIT__{scope.upper()}"
    try:
        items = parse_many(value)
    except ValueError as exc:
        raise ValueError(
            f"{setting}={value!r} is not a rate limit: {exc}; "
            "expected e.g. '1200/minute' or '10 per 2 seconds'"
        ) from exc
    if len(items) != 1:
        raise ValueError(
            f"{setting}={value!r} holds {len(items)} limits; give exactly one, e.g. '1200/minute'"
        )
    parsed = items[0]
    if parsed.amount < 1:
        raise ValueError(
            f"{setting}={value!r} allows no request at all; give at least 1 per window "
            "(to switch rate limits off set AIWEB_RATE_LIMIT__ENABLED=false)"
        )
    # The scope is the item's namespace: keys read <scope>/<identity>/<amount>/...
    return type(parsed)(parsed.amount, parsed.multiples, namespace=scope)


class RateLimiter:
    """Charges requests to per-identity, per-scope budgets (moving window, ``limits``).

    Storage is in process memory unless ``redis_url`` is given, in which case all
    processes using the same Redis and ``namespace`` share one budget per identity.

    **Fail open.** When Redis cannot be reached (or answers with an error), :meth:`hit`
    allows the request instead of failing it with a 500: an outage of the limiter's
    store should not become an outage of the API. A warning is logged at most once a
    minute, and for a few seconds after a failure Redis is not asked at all, so that a
    Redis that times out does not add its timeout to every request. While failing open
    no budget is enforced; watch for the ``aiweb.security.ratelimit`` warning.

    Thread-safe: one instance serves all threads of a process.

    Args:
        settings: whether limits are enabled and the budget of each scope.
        redis_url: ``redis://[:password@]host:port[/db]`` (or ``rediss://``,
            ``redis+unix://``); ``None`` for in-memory storage.
        namespace: prefix of every Redis key (``<namespace>:…``); :meth:`reset` clears
            exactly the keys under it. Tests pass a random one.

    Raises:
        ValueError: a budget is not valid ``limits`` notation, holds several limits or
            allows nothing (the message names the ``AIWEB_RATE_LIMIT__*`` setting), or
            ``redis_url`` is not a Redis URL.
    """

    def __init__(
        self,
        settings: RateLimitSettings,
        redis_url: str | None = None,
        *,
        namespace: str = "aiweb",
    ) -> None:
        self._settings = settings
        self._items: dict[str, RateLimitItem] = {
            scope: _parse_budget(scope, getattr(settings, scope)) for scope in SCOPES
        }
        self._storage: MemoryStorage | RedisStorage
        if redis_url:
            try:
                self._storage = RedisStorage(
                    redis_url,
                    key_prefix=namespace,
                    socket_connect_timeout=_REDIS_SOCKET_TIMEOUT_S,
                    socket_timeout=_REDIS_SOCKET_TIMEOUT_S,
                )
            except ValueError as exc:  # the URL itself is not echoed: it may hold a password
                raise ValueError(f"AIWEB_REDIS_URL is not a Redis URL: {exc}") from exc
        else:
            self._storage = MemoryStorage()
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._lock = threading.Lock()
        self._skip_redis_until = 0.0
        self._last_warning = -math.inf

    @property
    def enabled(self) -> bool:
        """Whether budgets are enforced (``AIWEB_RATE_LIMIT__ENABLED``)."""
        return self._settings.enabled

    @property
    def uses_redis(self) -> bool:
        """Whether budgets live in Redis (shared) rather than in this process."""
        return isinstance(self._storage, RedisStorage)

    def limit_for(self, scope: str) -> RateLimitItem:
        """The parsed budget of ``scope``.

        Raises:
            ValueError: ``scope`` is not one of :data:`SCOPES`.
        """
        try:
            return self._items[scope]
        except KeyError:
            raise ValueError(f"unknown rate limit scope {scope!r}; one of {SCOPES}") from None

    def hit(self, identity: str, scope: str) -> RateLimitResult:
        """Charge one request by ``identity`` to the budget of ``scope``.

        The request is counted only when allowed. When rate limits are disabled every
        request is allowed (``remaining == limit``, ``reset_s == 0``). When Redis is
        unreachable the request is allowed the same way (fail open, see the class).

        Args:
            identity: who pays, e.g. ``"key:<name>"`` or ``"ip:127.0.0.1"``.
            scope: one of :data:`SCOPES`.

        Returns:
            Whether the request may proceed, and the numbers for the response headers.

        Raises:
            ValueError: ``scope`` is unknown.
        """
        item = self.limit_for(scope)
        if not self._settings.enabled:
            return RateLimitResult(
                allowed=True, limit=item.amount, remaining=item.amount, reset_s=0
            )
        if self._skip_redis_until > time.monotonic():
            return RateLimitResult(
                allowed=True, limit=item.amount, remaining=item.amount, reset_s=0
            )
        try:
            allowed = self._strategy.hit(item, identity)
            stats = self._strategy.get_window_stats(item, identity)
        except (RedisError, StorageError, OSError) as exc:
            if not self.uses_redis:
                raise
            self._storage_failed(exc)
            return RateLimitResult(
                allowed=True, limit=item.amount, remaining=item.amount, reset_s=0
            )
        reset_s = max(0, math.ceil(stats.reset_time - time.time()))
        if allowed:
            return RateLimitResult(
                allowed=True,
                limit=item.amount,
                remaining=max(0, min(item.amount, stats.remaining)),
                reset_s=reset_s,
            )
        return RateLimitResult(
            allowed=False, limit=item.amount, remaining=0, reset_s=max(1, reset_s)
        )

    def check(self, identity: str, scope: str) -> RateLimitResult:
        """Like :meth:`hit`, but raise when the request is refused.

        Returns:
            The (allowed) result, whose :meth:`RateLimitResult.headers` the response
            should carry.

        Raises:
            RateLimitedError: the budget is spent; its detail states the limit and its
                headers carry ``Retry-After`` and the ``RateLimit-*`` fields.
            ValueError: ``scope`` is unknown.
        """
        result = self.hit(identity, scope)
        if not result.allowed:
            raise RateLimitedError(
                f"rate limit of {describe_limit(self._items[scope])} for scope {scope!r} "
                f"exceeded; retry in {result.retry_after_s} s",
                headers=result.headers(),
            )
        return result

    def reset(self) -> None:
        """Clear every counter (for tests).

        With Redis this deletes every key under this limiter's namespace, i.e. the
        counters of all processes sharing it.
        """
        self._storage.reset()
        self._skip_redis_until = 0.0

    def close(self) -> None:
        """Release the storage: stop the memory storage's expiry timer, or close the
        Redis connections. Safe to call more than once."""
        if isinstance(self._storage, MemoryStorage):
            self._storage.timer.cancel()
        else:
            self._storage.storage.close()

    def _storage_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._skip_redis_until = now + _REDIS_RETRY_S
        with self._lock:
            if now - self._last_warning < _WARN_INTERVAL_S:
                return
            self._last_warning = now
        logger.warning(
            "rate limit storage (Redis) unavailable, letting requests through unlimited "
            "for now: %s: %s",
            type(exc).__name__,
            exc,
        )
