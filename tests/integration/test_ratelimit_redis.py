"""Rate limiter on the real Redis at ``redis://127.0.0.1:6379``: one budget shared by
separate processes, and failing open when Redis is unreachable.

Every test uses its own random namespace and identity and deletes its keys afterwards.
The module is skipped when Redis cannot be reached.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier

import pytest
import redis
from helpers import redis_reachable

from aiweb.config import RateLimitSettings
from aiweb.errors import RateLimitedError
from aiweb.security import ratelimit
from aiweb.security.ratelimit import RateLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


if not redis_reachable(REDIS_URL):
    pytest.skip(f"Redis is not reachable at {REDIS_URL}", allow_module_level=True)


def _budget(value: str) -> RateLimitSettings:
    return RateLimitSettings(predict=value, train=value, admin=value, anonymous=value)


@pytest.fixture
def namespace() -> Iterator[str]:
    """A random key namespace; every key under it is deleted afterwards."""
    ns = f"aiweb-test-{uuid.uuid4().hex}"
    yield ns
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{ns}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def identity() -> str:
    return f"key:test-{uuid.uuid4().hex[:12]}"


def _redis_keys(namespace: str) -> list[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return list(client.scan_iter(match=f"{namespace}:*"))
    finally:
        client.close()


def _hit_in_process(
    namespace: str,
    identity: str,
    hits: int,
    barrier: Barrier,
    results: multiprocessing.Queue[tuple[int, list[bool]]],
) -> None:
    """Run in a spawned process: its own limiter on the shared Redis."""
    limiter = RateLimiter(_budget("10/minute"), REDIS_URL, namespace=namespace)
    try:
        barrier.wait(timeout=60)  # both processes start hitting together
        allowed = [limiter.hit(identity, "predict").allowed for _ in range(hits)]
    finally:
        limiter.close()
    results.put((os.getpid(), allowed))


def test_processes_share_one_budget(namespace: str, identity: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results: multiprocessing.Queue[tuple[int, list[bool]]] = ctx.Queue()
    procs = [
        ctx.Process(target=_hit_in_process, args=(namespace, identity, 8, barrier, results))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert len({pid for pid, _ in outcomes}) == 2
    assert all(len(allowed) == 8 for _, allowed in outcomes)
    assert sum(sum(allowed) for _, allowed in outcomes) == 10
    results.close()
    results.join_thread()

    # a third limiter (this process) sees the spent budget
    limiter = RateLimiter(_budget("10/minute"), REDIS_URL, namespace=namespace)
    try:
        with pytest.raises(RateLimitedError) as info:
            limiter.check(identity, "predict")
        assert info.value.headers["RateLimit-Limit"] == "10"
        assert info.value.headers["RateLimit-Remaining"] == "0"
        assert int(info.value.headers["Retry-After"]) >= 1
        assert "10 per 1 minute" in info.value.detail
    finally:
        limiter.close()


def test_redis_budget_headers_and_reset(namespace: str, identity: str) -> None:
    limiter = RateLimiter(_budget("3/minute"), REDIS_URL, namespace=namespace)
    try:
        assert limiter.uses_redis
        results = [limiter.hit(identity, "train") for _ in range(4)]
        assert [r.allowed for r in results] == [True, True, True, False]
        assert [r.remaining for r in results] == [2, 1, 0, 0]
        assert all(r.limit == 3 for r in results)
        assert all(0 < r.reset_s <= 60 for r in results)
        assert int(results[-1].headers()["Retry-After"]) >= 1
        # scopes and identities are independent in Redis too
        assert limiter.hit(identity, "predict").allowed
        assert limiter.hit(f"{identity}-other", "train").allowed

        keys = _redis_keys(namespace)
        assert keys
        assert all(key.startswith(f"{namespace}:".encode()) for key in keys)
        limiter.reset()
        assert _redis_keys(namespace) == []
        assert limiter.hit(identity, "train").remaining == 2
    finally:
        limiter.close()


def test_unreachable_redis_fails_open(
    namespace: str, identity: str, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(_budget("1/minute"), CLOSED_PORT_URL, namespace=namespace)
    try:
        with caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
            for _ in range(3):
                result = limiter.hit(identity, "predict")
                assert result.allowed
                assert limiter.check(identity, "anonymous").allowed
        warnings = [r for r in caplog.records if r.name == ratelimit.__name__]
        assert len(warnings) == 1
        assert "unavailable" in warnings[0].getMessage()
    finally:
        limiter.close()
