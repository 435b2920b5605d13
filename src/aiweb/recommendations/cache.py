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
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import orjson
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

    def __len__(self) -> int:
        return sum(len(v) for v in self._users.values())

    async def get(self, user_id: str, key: str) -> Entry | None:
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
        self._users.setdefault(user_id, {})[key] = (self._clock() + self.ttl_s, entry)
        self._users.move_to_end(user_id)
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)

    async def invalidate(self, user_ids: list[str]) -> None:
        for user in user_ids:
            self._users.pop(user, None)

    async def aclose(self) -> None:
        self._users.clear()


class RedisRecommendationCache:
    """Shared by every process: hash ``<prefix>:<user_id>`` of ``key -> JSON list``.

    Args:
        url: ``redis://…``.
        ttl_s: seconds a user's entries live after the last write.
        prefix: key prefix.
    """

    def __init__(self, url: str, ttl_s: float, prefix: str = "aiweb:rec") -> None:
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
