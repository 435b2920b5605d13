"""The prediction cache: class scores by (model version, input text).

A served model version is a pure function of its input, so its scores can be reused for
a text seen before. Keys are ``<prefix>:<name>:<version>:<artifact sha256[:16]>:<text
sha256>``: a version that an alias moves away from is simply never asked for again (its
entries age out), and a re-created database cannot collide with an old entry because the
artifact digest is part of the key. Predictions served from the cache still get their own
prediction id and are logged like any other.

Two stores, chosen by settings:

- :class:`MemoryPredictionCache` — an LRU per process with a TTL (the embedded default);
- :class:`RedisPredictionCache` — shared by every worker and server when
  ``AIWEB_REDIS_URL`` is set (``MGET`` to read, a pipelined ``SET … EX`` to write). Redis
  being down never fails a prediction: the cache reports a miss and logs a warning.

Hits and misses are counted in ``aiweb_prediction_cache_hits_total`` and
``aiweb_prediction_cache_misses_total``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aiweb.config import CacheSettings
from aiweb.monitoring.metrics import PREDICTION_CACHE_HITS, PREDICTION_CACHE_MISSES
from aiweb.registry.entities import ModelVersion

log = logging.getLogger(__name__)

Row = npt.NDArray[np.float64]


def version_key(version: ModelVersion, prefix: str = "aiweb:pc") -> str:
    """The key prefix of one model version's entries."""
    digest = (version.artifact_sha256 or "")[:16]
    return f"{prefix}:{version.name}:{version.version}:{digest}"


def text_key(vkey: str, text_sha256: str) -> str:
    """The key of a text under a version prefix, from the text's hex sha256 (the digest
    the prediction log records, so each text is hashed once per request)."""
    return f"{vkey}:{text_sha256}"


class PredictionCache(Protocol):
    """What the predict path needs from a cache."""

    settings: CacheSettings

    async def get_many(self, keys: list[str], n_classes: int) -> list[Row | None]:
        """The cached score rows of ``keys`` (``None`` for a miss), in order."""
        ...

    async def set_many(self, items: dict[str, Row]) -> None:
        """Store score rows (float64 arrays of length ``n_classes``) with the TTL."""
        ...

    async def aclose(self) -> None: ...


def _count(rows: list[Row | None]) -> None:
    hits = sum(1 for r in rows if r is not None)
    if hits:
        PREDICTION_CACHE_HITS.inc(hits)
    if len(rows) - hits:
        PREDICTION_CACHE_MISSES.inc(len(rows) - hits)


class MemoryPredictionCache:
    """An in-process LRU of score rows with a time to live.

    Args:
        settings: ``ttl_s`` and ``max_entries``.
        clock: monotonic seconds (a test may pass its own).
    """

    def __init__(
        self, settings: CacheSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Row]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get_many(self, keys: list[str], n_classes: int) -> list[Row | None]:
        now = self._clock()
        out: list[Row | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                out.append(None)
            elif entry[0] <= now:
                del self._entries[key]
                out.append(None)
            else:
                self._entries.move_to_end(key)
                out.append(entry[1])
        _count(out)
        return out

    async def set_many(self, items: dict[str, Row]) -> None:
        expires = self._clock() + self.settings.ttl_s
        for key, row in items.items():
            self._entries[key] = (expires, row)
            self._entries.move_to_end(key)
        while len(self._entries) > self.settings.max_entries:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisPredictionCache:
    """Score rows in Redis, shared by every process, as raw float64 bytes with ``EX``.

    Args:
        settings: ``ttl_s``.
        url: ``redis://…`` (``AIWEB_REDIS_URL``).
    """

    def __init__(self, settings: CacheSettings, url: str) -> None:
        self.settings = settings
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
        )
        self._warned_at = 0.0

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:  # at most once a minute
            self._warned_at = now
            log.warning("prediction cache unavailable (serving without it): %s", exc)

    async def get_many(self, keys: list[str], n_classes: int) -> list[Row | None]:
        try:
            raw = await self._client.mget(keys)
        except (RedisError, OSError) as exc:
            self._warn(exc)
            out: list[Row | None] = [None] * len(keys)
        else:
            out = []
            for value in raw:
                if value is None or len(value) != 8 * n_classes:
                    out.append(None)
                else:
                    out.append(np.frombuffer(value, dtype=np.float64))
        _count(out)
        return out

    async def set_many(self, items: dict[str, Row]) -> None:
        if not items:
            return
        ttl = max(1, round(self.settings.ttl_s))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, row in items.items():
                    pipe.set(key, np.ascontiguousarray(row, dtype=np.float64).tobytes(), ex=ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._warn(exc)

    async def aclose(self) -> None:
        await self._client.aclose()


def make_prediction_cache(settings: CacheSettings, redis_url: str | None) -> PredictionCache | None:
    """The cache the settings ask for: ``None`` when disabled, Redis when a URL is set."""
    if not settings.enabled:
        return None
    if redis_url:
        return RedisPredictionCache(settings, redis_url)
    return MemoryPredictionCache(settings)
