"""Per-user cache of recommendation lists.

An entry is one user's ranked list under one model version and one set of options; the
key names the version (name, number, artifact digest), so moving the ``production``
alias simply stops asking for the old entries. Recording an interaction for a user
drops all of that user's entries at once:

- :class:`MemoryRecommendationCache`: a dict per user in an LRU over users, with a TTL
  (one process; with several workers set ``AIWEB_REDIS_URL`` so every worker sees the
  invalidation);
- :class:`RedisRecommendationCache`: one Redis hash per user (``HGET``/``HSET`` + ``EXPIRE``,
  ``DEL`` to invalidate), shared by every worker. Redis being down never fails a request:
  the cache reports a miss and logs a warning.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aiweb.config import CacheSettings

log = logging.getLogger(__name__)

#: ``[[item_id, score, reason], …]``, best first
Entry = list[list[Any]]


class RecommendationCache(Protocol):
    """What serving needs from the cache."""

    async def get(self, user_id: str, key: str) -> Entry | None: ...

    async def set(self, user_id: str, key: str, entry: Entry) -> None: ...

    async def invalidate(self, user_ids: list[str]) -> None: ...

    async def aclose(self) -> None: ...


class MemoryRecommendationCache:
    """In-process: ``max_users`` users (least recently used dropped), entries live ``ttl_s``.

    Args:
        ttl_s: seconds an entry is served.
        max_users: users kept.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self, ttl_s: float, max_users: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_users = max_users
        self._clock = clock
        self._users: OrderedDict[str, dict[str, tuple[float, Entry]]] = OrderedDict()
        # the event loop reads and writes; an erasure job drops users from its thread
        self._lock = threading.Lock()
        _LIVE_MEMORY_CACHES.add(self)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._users.values())

    async def get(self, user_id: str, key: str) -> Entry | None:
        with self._lock:
            entries = self._users.get(user_id)
            if entries is None:
                return None
            hit = entries.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del entries[key]
                return None
            self._users.move_to_end(user_id)
            return hit[1]

    async def set(self, user_id: str, key: str, entry: Entry) -> None:
        with self._lock:
            self._users.setdefault(user_id, {})[key] = (self._clock() + self.ttl_s, entry)
            self._users.move_to_end(user_id)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)

    async def invalidate(self, user_ids: list[str]) -> None:
        self.drop(user_ids)

    def drop(self, user_ids: list[str]) -> int:
        """Drop the users' entries (from any thread). Returns how many entries went."""
        with self._lock:
            dropped = 0
            for user in user_ids:
                entries = self._users.pop(user, None)
                dropped += len(entries) if entries is not None else 0
            return dropped

    async def aclose(self) -> None:
        with self._lock:
            self._users.clear()
        _LIVE_MEMORY_CACHES.discard(self)


#: the memory caches alive in this process (an erasure job empties a user's entries in
#: each; those of other processes expire after ``ttl_s``: set ``AIWEB_REDIS_URL``)
_LIVE_MEMORY_CACHES: weakref.WeakSet[MemoryRecommendationCache] = weakref.WeakSet()


class RedisRecommendationCache:
    """Shared by every process: hash ``<prefix>:<user_id>`` of ``key -> JSON list``.

    Args:
        url: ``redis://…``.
        ttl_s: seconds a user's entries live after the last write.
        prefix: key prefix.
    """

    #: the default key prefix
    PREFIX = "aiweb:rec"

    def __init__(self, url: str, ttl_s: float, prefix: str = PREFIX) -> None:
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
        )
        self._warned_at = 0.0

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}:{user_id}"

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("recommendation cache unavailable (serving without it): %s", exc)

    async def get(self, user_id: str, key: str) -> Entry | None:
        try:
            raw = await self._client.hget(self._key(user_id), key)  # type: ignore[misc]
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return None
        if raw is None:
            return None
        value: Entry = orjson.loads(raw)
        return value

    async def set(self, user_id: str, key: str, entry: Entry) -> None:
        name = self._key(user_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(name, key, orjson.dumps(entry).decode("utf-8"))
                pipe.expire(name, max(1, round(self.ttl_s)))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn(exc)

    async def invalidate(self, user_ids: list[str]) -> None:
        """Drop the users' entries. On a Redis error the interactions stay stored (they were
        committed first) and a warning is logged; entries then expire after ``ttl_s``."""
        if not user_ids:
            return
        try:
            await self._client.delete(*(self._key(u) for u in user_ids))
        except (RedisError, OSError) as exc:
            self._warn(exc)

    async def aclose(self) -> None:
        await self._client.aclose()


def erase_cached(settings: CacheSettings, redis_url: str | None, user_id: str) -> int:
    """Drop every cached list of ``user_id`` (an erasure): in Redis when a URL is set, and
    in this process's memory caches. Blocking (an erasure job's thread).

    Returns:
        How many cached lists were dropped.

    Raises:
        redis.exceptions.RedisError: Redis is unreachable (the job retries).
    """
    dropped = sum(cache.drop([user_id]) for cache in list(_LIVE_MEMORY_CACHES))
    if redis_url and settings.enabled:
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            key = f"{RedisRecommendationCache.PREFIX}:{user_id}"
            with client.pipeline(transaction=True) as pipe:
                pipe.hlen(key)
                pipe.delete(key)
                entries, _ = pipe.execute()
            dropped += int(entries)
        finally:
            client.close()
    return dropped


def make_recommendation_cache(
    settings: CacheSettings, redis_url: str | None
) -> RecommendationCache | None:
    """``None`` when the prediction cache is disabled; Redis when a URL is set; else memory.

    Uses the prediction cache's settings: ``enabled``, ``ttl_s``, and ``max_entries`` as
    the number of users kept in memory.
    """
    if not settings.enabled:
        return None
    if redis_url:
        return RedisRecommendationCache(redis_url, settings.ttl_s)
    return MemoryRecommendationCache(settings.ttl_s, settings.max_entries)
