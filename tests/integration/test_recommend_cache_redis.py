"""The per-user recommendation cache on the real Redis at ``127.0.0.1:6379``: shared by
every process, dropped for a user by a new interaction recorded by any of them, expiring
after its TTL, and never failing a request when Redis is away. Each test uses its own
Redis database and key prefix (or user ids) and deletes its keys afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from helpers import open_registry, redis_reachable
from test_recommend_api import catalogue, history

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.recommendations.cache import RedisRecommendationCache
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import RecommendationData, train_recommendation

REDIS_HOST = "redis://127.0.0.1:6379"
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


pytestmark = pytest.mark.skipif(
    not redis_reachable(REDIS_HOST), reason="no Redis on 127.0.0.1:6379"
)


@pytest.fixture
def tag() -> str:
    """What this test's keys start with."""
    return f"aiweb-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_url(tag: str) -> Iterator[str]:
    """A Redis database of its own (1-15, by the test's tag) for this test; every key the
    test made (its tag in the name) is deleted afterwards."""
    url = f"{REDIS_HOST}/{1 + int(tag[-4:], 16) % 15}"
    yield url
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"*{tag}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


ENTRY: list[list[Any]] = [["m1", 0.9, "collaborative"], ["m2", 0.5, "popular"]]


def test_entries_are_shared_dropped_per_user_and_expire(tag: str, redis_url: str) -> None:
    prefix = f"{tag}:rec"
    client = raw(redis_url)

    async def run() -> None:
        # two caches on one Redis, as two workers or servers have
        a = RedisRecommendationCache(redis_url, ttl_s=1.0, prefix=prefix)
        b = RedisRecommendationCache(redis_url, ttl_s=1.0, prefix=prefix)
        try:
            await a.set("alice", "movies:1:1", ENTRY)
            await a.set("alice", "movies:1:0", ENTRY[:1])
            await a.set("bob", "movies:1:1", ENTRY)
            assert await b.get("alice", "movies:1:1") == ENTRY
            assert await b.get("alice", "movies:1:0") == ENTRY[:1]
            assert await b.get("alice", "movies:2:1") is None  # another version: a miss
            assert client.hlen(f"{prefix}:alice") == 2
            assert 0 < client.pttl(f"{prefix}:alice") <= 1000
            await b.invalidate(["alice", "carol"])  # carol has nothing: no error
            assert await a.get("alice", "movies:1:1") is None
            assert await a.get("alice", "movies:1:0") is None
            assert not client.exists(f"{prefix}:alice")
            assert await a.get("bob", "movies:1:1") == ENTRY
            await asyncio.sleep(1.3)
            assert await a.get("bob", "movies:1:1") is None  # expired
            assert not client.exists(f"{prefix}:bob")
        finally:
            await a.aclose()
            await b.aclose()

    try:
        asyncio.run(run())
    finally:
        client.close()


def test_unreachable_redis_is_a_miss_never_an_error(tag: str) -> None:
    async def run() -> None:
        cache = RedisRecommendationCache(CLOSED_PORT_URL, ttl_s=10.0, prefix=tag)
        try:
            started = time.monotonic()
            assert await cache.get("alice", "movies:1:1") is None
            await cache.set("alice", "movies:1:1", ENTRY)
            await cache.invalidate(["alice"])
            assert time.monotonic() - started < 5
        finally:
            await cache.aclose()

    asyncio.run(run())


def _events(tag: str) -> list[dict[str, Any]]:
    """The API tests' interactions, for users (and event ids) of this test only."""
    return [
        {**e, "user_id": f"{tag}-{e['user_id']}", "event_id": f"{tag}-{e['event_id']}"}
        for e in history()
    ]


def test_two_app_instances_share_the_cache_and_its_invalidation(
    settings: Settings, auth_headers: dict[str, str], tag: str, redis_url: str
) -> None:
    """A list cached by one instance is dropped by an interaction the other records, so
    the first instance's next answer reflects it at once."""
    shared = settings.model_copy(update={"redis_url": redis_url})
    assert shared.cache.enabled
    user = f"{tag}-u3"
    key = f"aiweb:rec:{user}"
    client = raw(redis_url)
    with (
        TestClient(create_app(shared), headers=auth_headers) as a,
        TestClient(create_app(shared), headers=auth_headers) as b,
    ):
        assert a.post("/v1/items", json={"items": catalogue()}).status_code == 200
        assert a.post("/v1/interactions", json={"interactions": _events(tag)}).status_code == 200
        registry, engine = open_registry(shared)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            train_recommendation(registry, "shows", data, algorithm="ease", actor="tests")
        finally:
            engine.dispose()

        def recs(app: TestClient) -> list[str]:
            r = app.get(f"/v1/users/{user}/recommendations", params={"model": "shows", "n": 5})
            assert r.status_code == 200, r.text
            return [i["item_id"] for i in r.json()]

        first = recs(a)
        assert client.hlen(key) == 1  # a's list is in Redis
        assert recs(b) == first  # b is served the same list
        assert client.hlen(key) == 1
        top = first[0]
        r = b.post(
            "/v1/interactions",
            json={"interactions": [{"user_id": user, "item_id": top, "type": "purchase"}]},
        )
        assert r.json() == {"stored": 1, "duplicates": 0}
        assert not client.exists(key)  # b dropped the user's lists for every instance
        after = recs(a)
        assert top not in after  # a ranks again: the purchase is seen (exclude_seen)
        assert len(after) == 5
        assert client.hlen(key) == 1
        # another user's list was not touched
        other = f"{tag}-u4"
        assert a.get(f"/v1/users/{other}/recommendations", params={"model": "shows"}).is_success
        assert client.exists(f"aiweb:rec:{other}")
    client.close()
