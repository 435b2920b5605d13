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

Storage: in process memory by default; for the workers of one ``aiweb serve --workers N``
a memory-mapped file they share (:class:`SharedWindows`, the same moving windows, found
through ``$AIWEB_SERVE_RATE_TABLE``), so the workers of one server share one budget; with
``AIWEB_REDIS_URL`` set, Redis (:class:`limits.storage.RedisStorage`, atomic Lua
scripts), so every worker and replica shares one budget. Keys are
``<namespace>:<scope>/<identity>/<amount>/<multiples>/<granularity>`` with namespace
``aiweb``; changing a budget therefore starts its counters afresh.

Headers follow the IETF draft *RateLimit header fields for HTTP*
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Limit``, ``RateLimit-Remaining``,
``RateLimit-Reset`` (delta seconds), plus ``Retry-After`` (RFC 9110) on a refusal.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
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

__all__ = [
    "SCOPES",
    "SHARED_TABLE_ENV",
    "RateLimitResult",
    "RateLimitedError",
    "RateLimiter",
    "SharedWindows",
    "create_shared_table",
]

logger = logging.getLogger(__name__)

SCOPES: Final = ("predict", "train", "admin", "anonymous", "chat", "conversation")
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


SHARED_TABLE_ENV: Final = "AIWEB_SERVE_RATE_TABLE"
"""Environment variable with the path of the :class:`SharedWindows` file, set by
``aiweb serve --workers N`` (without Redis) for its workers, which inherit it."""

_HEAD = struct.Struct("=qdqq")  # key hash, expires (monotonic s), oldest index, count
_STAMP = struct.Struct("=d")
_PROBES = 16


class SharedWindows:
    """Moving windows shared by the processes of one machine through a memory-mapped
    file: the budget of ``aiweb serve --workers N`` without Redis.

    The file holds ``slots`` windows; each is a ring of the timestamps
    (``time.monotonic()``, one clock for every process of the machine) of the requests
    it accepted in its period, at most ``capacity``. A request is accepted while fewer
    than ``amount`` timestamps are younger than ``period_s``: the moving window of the
    ``limits`` library, the same answer as with one process. A window is found by a hash
    of its key (linear probing over :data:`_PROBES` slots); when all of those hold live
    windows of other keys, the one that expires first is dropped (its key starts afresh:
    a lenient answer, never a wrong refusal). Every operation runs under a lock on the
    file (``flock``) and a lock of the process.

    Args:
        path: the file made by :meth:`create`.

    Raises:
        ValueError: the file is not such a table.
        OSError: it cannot be opened.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR)
        size = os.fstat(self._fd).st_size
        try:
            header = os.pread(self._fd, 16, 0)
            if len(header) != 16:
                raise ValueError(f"{path} is not a rate-limit table ({size} bytes)")
            slots, capacity = struct.unpack("=qq", header)
            self.slots: int = int(slots)
            """Windows in the table."""
            self.capacity: int = int(capacity)
            """Most requests one window holds (the largest budget's amount)."""
            self._slot_bytes = _HEAD.size + _STAMP.size * self.capacity
            if self.slots < 1 or self.capacity < 1 or size != 16 + self.slots * self._slot_bytes:
                raise ValueError(f"{path} is not a rate-limit table ({size} bytes)")
        except ValueError:
            os.close(self._fd)
            raise
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()

    @staticmethod
    def create(path: str, capacity: int, slots: int = 1024) -> None:
        """Create (or reset) a table at ``path`` of ``slots`` windows holding up to
        ``capacity`` timestamps each (the largest budget's amount); a sparse file of
        ``16 + slots * (32 + 8 * capacity)`` bytes.

        Raises:
            ValueError: ``capacity`` or ``slots`` < 1.
            OSError: the file cannot be written.
        """
        if capacity < 1 or slots < 1:
            raise ValueError("capacity and slots must be >= 1")
        size = 16 + slots * (_HEAD.size + _STAMP.size * capacity)
        with open(path, "wb") as f:
            f.write(struct.pack("=qq", slots, capacity))
            f.truncate(size)

    def hit(
        self, key: str, amount: int, period_s: float, now: float | None = None
    ) -> tuple[bool, int, float]:
        """Charge one request to the window of ``key`` (``amount`` per ``period_s``).

        Args:
            key: the budget's identity (scope, identity, amount and period in it).
            amount: requests accepted per period; at most :attr:`capacity`.
            period_s: the window, seconds.
            now: ``time.monotonic()`` (for tests).

        Returns:
            ``(accepted, remaining, reset_s)``: whether counted, requests left in the
            window after it, seconds until the oldest counted request leaves it.

        Raises:
            ValueError: ``amount`` is above :attr:`capacity`.
        """
        if amount > self.capacity:
            raise ValueError(f"amount {amount} is above the table's capacity {self.capacity}")
        now = time.monotonic() if now is None else now
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        code = int.from_bytes(digest, "little", signed=True) or 1  # 0 marks a free slot
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                return self._hit(code, amount, period_s, now)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, code: int, now: float) -> int:
        first = code % self.slots
        free: int | None = None
        victim, victim_expires = first, math.inf
        for probe in range(min(_PROBES, self.slots)):
            index = (first + probe) % self.slots
            held, expires, _, _ = _HEAD.unpack_from(self._map, self._offset(index))
            if held == code:
                return index
            if held == 0 or expires <= now:
                if free is None:
                    free = index
            elif expires < victim_expires:
                victim, victim_expires = index, expires
        chosen = victim if free is None else free
        _HEAD.pack_into(self._map, self._offset(chosen), code, now, 0, 0)
        return chosen

    def _offset(self, index: int) -> int:
        return 16 + index * self._slot_bytes

    def _hit(self, code: int, amount: int, period_s: float, now: float) -> tuple[bool, int, float]:
        base = self._offset(self._slot(code, now))
        _, expires, oldest, count = _HEAD.unpack_from(self._map, base)
        stamps = base + _HEAD.size
        horizon = now - period_s
        while count and _STAMP.unpack_from(self._map, stamps + 8 * oldest)[0] <= horizon:
            oldest = (oldest + 1) % amount
            count -= 1
        accepted = count < amount
        if accepted:
            _STAMP.pack_into(self._map, stamps + 8 * ((oldest + count) % amount), now)
            count += 1
            expires = now + period_s
        first = _STAMP.unpack_from(self._map, stamps + 8 * oldest)[0] if count else now - period_s
        _HEAD.pack_into(self._map, base, code, expires, oldest, count)
        return accepted, amount - count, max(0.0, first + period_s - now)

    def reset(self) -> None:
        """Forget every window."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                for index in range(self.slots):
                    _HEAD.pack_into(self._map, self._offset(index), 0, 0.0, 0, 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Unmap the table and close the file."""
        self._map.close()
        os.close(self._fd)


class RateLimiter:
    """Charges requests to per-identity, per-scope budgets (moving window, ``limits``).

    Storage is in process memory unless ``redis_url`` is given, in which case all
    processes using the same Redis and ``namespace`` share one budget per identity.
    Without Redis, when ``$AIWEB_SERVE_RATE_TABLE`` names a :class:`SharedWindows` file
    (``aiweb serve --workers N`` sets it for its workers), the processes that share it
    share one budget per identity.

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
        self._shared: SharedWindows | None = None
        table = None if redis_url else os.environ.get(SHARED_TABLE_ENV)
        if table:
            self._shared = _open_shared(table, max(item.amount for item in self._items.values()))
        self._lock = threading.Lock()
        self._skip_redis_until = 0.0
        self._last_warning = -math.inf

    @property
    def enabled(self) -> bool:
        """Whether budgets are enforced (``AIWEB_RATE_LIMIT__ENABLED``)."""
        return self._settings.enabled

    @property
    def shared(self) -> bool:
        """Whether budgets live in a table shared by the workers of ``aiweb serve``."""
        return self._shared is not None

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
        if self._shared is not None:
            accepted, remaining, reset = self._shared.hit(
                f"{scope}/{identity}/{item.amount}/{item.get_expiry()}",
                item.amount,
                item.get_expiry(),
            )
            if accepted:
                return RateLimitResult(True, item.amount, remaining, math.ceil(reset))
            return RateLimitResult(False, item.amount, 0, max(1, math.ceil(reset)))
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
        if self._shared is not None:
            self._shared.reset()
        self._skip_redis_until = 0.0

    def close(self) -> None:
        """Release the storage: stop the memory storage's expiry timer, or close the
        Redis connections. Safe to call more than once."""
        if isinstance(self._storage, MemoryStorage):
            self._storage.timer.cancel()
        else:
            self._storage.storage.close()
        if self._shared is not None:
            self._shared.close()
            self._shared = None

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


def create_shared_table(path: str, settings: RateLimitSettings) -> None:
    """Create the :class:`SharedWindows` file for the workers of one ``aiweb serve``:
    windows as large as the largest budget of ``settings``, up to 4096 of them (fewer for
    very large budgets, so that the sparse file stays under 256 MiB).

    Raises:
        ValueError: a budget is not valid (see :class:`RateLimiter`).
        OSError: the file cannot be written.
    """
    capacity = max(_parse_budget(scope, getattr(settings, scope)).amount for scope in SCOPES)
    slots = max(64, min(4096, (256 << 20) // (_HEAD.size + _STAMP.size * capacity)))
    SharedWindows.create(path, capacity, slots)


def _open_shared(path: str, largest: int) -> SharedWindows | None:
    """The workers' shared table at ``path``, or ``None`` (with a warning: this process
    then counts on its own) when it cannot be used."""
    try:
        shared = SharedWindows(path)
    except (OSError, ValueError) as exc:
        logger.warning("rate limits per worker %d: %s", os.getpid(), exc)
        return None
    if shared.capacity < largest:
        logger.warning(
            "rate limits per worker %d: the shared table holds %d requests per window, "
            "a budget allows %d",
            os.getpid(),
            shared.capacity,
            largest,
        )
        shared.close()
        return None
    return shared
