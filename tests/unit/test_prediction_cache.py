from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np

from aiweb.config import CacheSettings
from aiweb.monitoring.prediction_log import text_sha256
from aiweb.registry.entities import ModelVersion
from aiweb.serving.cache import MemoryPredictionCache, make_prediction_cache, text_key, version_key


def version(number: int, sha: str) -> ModelVersion:
    return ModelVersion(
        name="sentiment",
        version=number,
        task="text-classification",
        status="ready",
        artifact_uri="models/sentiment/1/model.skops",
        artifact_format="skops",
        artifact_sha256=sha,
        labels=["negative", "positive"],
        signature={},
        lineage={},
        evaluation={},
        created_at=datetime.now(UTC),
    )


def row(p: float) -> np.ndarray:
    return np.array([1 - p, p])


def test_keys_differ_by_version_artifact_and_text() -> None:
    v1, v2, v1_rebuilt = version(1, "a" * 64), version(2, "a" * 64), version(1, "b" * 64)
    keys = {
        text_key(version_key(v), text_sha256(t)) for v in (v1, v2, v1_rebuilt) for t in ("x", "y")
    }
    assert len(keys) == 6
    assert text_key(version_key(v1), text_sha256("x")) == text_key(
        version_key(v1), text_sha256("x")
    )


def test_entries_expire_after_the_ttl() -> None:
    now = [100.0]
    cache = MemoryPredictionCache(CacheSettings(ttl_s=10), clock=lambda: now[0])

    async def main() -> None:
        await cache.set_many({"k": row(0.9)})
        now[0] = 109.9
        (hit,) = await cache.get_many(["k"], 2)
        assert hit is not None
        np.testing.assert_array_equal(hit, row(0.9))
        now[0] = 110.0
        assert await cache.get_many(["k"], 2) == [None]
        assert len(cache) == 0

    asyncio.run(main())


def test_least_recently_used_entries_go_first() -> None:
    cache = MemoryPredictionCache(CacheSettings(max_entries=2))

    async def main() -> None:
        await cache.set_many({"a": row(0.1), "b": row(0.2)})
        await cache.get_many(["a"], 2)  # a is now the most recently used
        await cache.set_many({"c": row(0.3)})
        got = await cache.get_many(["a", "b", "c"], 2)
        assert [g is not None for g in got] == [True, False, True]

    asyncio.run(main())


def test_settings_choose_the_store() -> None:
    assert make_prediction_cache(CacheSettings(enabled=False), None) is None
    assert isinstance(make_prediction_cache(CacheSettings(), None), MemoryPredictionCache)
