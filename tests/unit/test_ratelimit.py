"""Rate limiter on in-memory storage: budgets, headers, scopes, settings errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from aiweb.config import RateLimitSettings, Settings
from aiweb.errors import AiwebError, RateLimitedError
from aiweb.security import ratelimit
from aiweb.security.ratelimit import (
    SCOPES,
    RateLimiter,
    RateLimitResult,
    describe_limit,
)


def _settings(**overrides: Any) -> RateLimitSettings:
    base: dict[str, Any] = {
        "predict": "3/minute",
        "train": "3/minute",
        "admin": "3/minute",
        "anonymous": "3/minute",
    }
    base.update(overrides)
    return RateLimitSettings(**base)


@pytest.fixture
def limiter() -> Iterator[RateLimiter]:
    rl = RateLimiter(_settings())
    try:
        yield rl
    finally:
        rl.close()


def test_budget_allows_then_refuses_with_headers(limiter: RateLimiter) -> None:
    results = [limiter.hit("key:alice", "predict") for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, True]
    assert [r.remaining for r in results] == [2, 1, 0]
    for result in results:
        headers = result.headers()
        assert headers["RateLimit-Limit"] == "3"
        assert int(headers["RateLimit-Reset"]) > 0
        assert "Retry-After" not in headers
    assert [r.headers()["RateLimit-Remaining"] for r in results] == ["2", "1", "0"]

    refused = limiter.hit("key:alice", "predict")
    assert not refused.allowed
    headers = refused.headers()
    assert headers["RateLimit-Limit"] == "3"
    assert headers["RateLimit-Remaining"] == "0"
    assert 0 < int(headers["RateLimit-Reset"]) <= 60
    assert 1 <= int(headers["Retry-After"]) <= 60


def test_refused_hits_are_not_counted() -> None:
    rl = RateLimiter(_settings(predict="1/second"))
    try:
        assert rl.hit("key:a", "predict").allowed
        for _ in range(5):
            assert not rl.hit("key:a", "predict").allowed
        time.sleep(1.05)
        # a fixed window counting refusals would still refuse here; the moving window
        # only holds the one accepted request, which has left the window
        assert rl.hit("key:a", "predict").allowed
    finally:
        rl.close()


def test_check_raises_rate_limited_error(limiter: RateLimiter) -> None:
    for _ in range(3):
        ok = limiter.check("key:alice", "predict")
        assert ok.allowed
    with pytest.raises(RateLimitedError) as info:
        limiter.check("key:alice", "predict")
    err = info.value
    assert isinstance(err, AiwebError)
    assert err.status == 429
    assert err.slug == "rate-limited"
    assert err.title == "Too many requests"
    assert "rate limit of 3 per 1 minute for scope 'predict' exceeded" in err.detail
    retry_after = int(err.headers["Retry-After"])
    assert retry_after >= 1
    assert f"retry in {retry_after} s" in err.detail
    assert err.headers["RateLimit-Limit"] == "3"
    assert err.headers["RateLimit-Remaining"] == "0"
    assert int(err.headers["RateLimit-Reset"]) >= 1


def test_identities_are_independent(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert limiter.hit("key:alice", "predict").allowed
    assert not limiter.hit("key:alice", "predict").allowed
    assert limiter.hit("key:bob", "predict").allowed
    assert limiter.hit("ip:127.0.0.1", "predict").allowed


def test_scopes_are_independent(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert limiter.hit("key:alice", "predict").allowed
    assert not limiter.hit("key:alice", "predict").allowed
    for scope in ("train", "admin", "anonymous"):
        result = limiter.hit("key:alice", scope)
        assert result.allowed
        assert result.remaining == 2


def test_each_scope_has_its_own_budget() -> None:
    rl = RateLimiter(RateLimitSettings(predict="5/minute", train="2/hour"))
    try:
        assert rl.hit("key:a", "predict").limit == 5
        assert rl.hit("key:a", "train").limit == 2
        assert rl.hit("key:a", "admin").limit == 300  # the default
        assert rl.hit("ip:10.0.0.1", "anonymous").limit == 60
    finally:
        rl.close()


def test_disabled_always_allows() -> None:
    rl = RateLimiter(_settings(enabled=False, predict="1/minute"))
    try:
        assert not rl.enabled
        for _ in range(20):
            result = rl.hit("key:alice", "predict")
            assert result.allowed
            assert result.limit == 1
            assert result.remaining == 1
            assert rl.check("key:alice", "predict").allowed
    finally:
        rl.close()


def test_reset_clears_counters(limiter: RateLimiter) -> None:
    for _ in range(3):
        limiter.hit("key:alice", "predict")
    assert not limiter.hit("key:alice", "predict").allowed
    limiter.reset()
    assert limiter.hit("key:alice", "predict").remaining == 2


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("budget", ["lots", "1200/fortnight", "", "1200/minute extra"])
def test_invalid_budget_names_the_setting(scope: str, budget: str) -> None:
    with pytest.raises(ValueError, match=f"AIWEB_RATE_LIMIT__{scope.upper()}"):
        RateLimiter(_settings(**{scope: budget}))


def test_several_limits_in_one_budget_are_refused() -> None:
    with pytest.raises(ValueError, match=r"AIWEB_RATE_LIMIT__TRAIN.*exactly one"):
        RateLimiter(_settings(train="1/second; 100/minute"))


def test_zero_budget_is_refused() -> None:
    with pytest.raises(ValueError, match=r"AIWEB_RATE_LIMIT__ADMIN.*ENABLED=false"):
        RateLimiter(_settings(admin="0/minute"))


def test_budget_from_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIWEB_RATE_LIMIT__PREDICT", "fast")
    settings = Settings()
    with pytest.raises(ValueError, match="AIWEB_RATE_LIMIT__PREDICT"):
        RateLimiter(settings.rate_limit, settings.redis_url)


def test_unknown_scope_is_refused(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="unknown rate limit scope 'root'"):
        limiter.hit("key:alice", "root")


def test_invalid_redis_url_is_refused() -> None:
    with pytest.raises(ValueError, match="AIWEB_REDIS_URL"):
        RateLimiter(_settings(), "http://user:secret@example.invalid/")


def test_rate_limited_error_is_a_429() -> None:
    err = RateLimitedError("rate limit of 3 per 1 minute for scope 'predict' exceeded")
    assert err.status == 429
    assert err.slug == "rate-limited"
    assert err.title == "Too many requests"
    assert "3 per 1 minute" in str(err)
    assert err.headers == {}


def test_result_headers() -> None:
    allowed = RateLimitResult(allowed=True, limit=10, remaining=4, reset_s=30)
    assert allowed.headers() == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "4",
        "RateLimit-Reset": "30",
    }
    refused = RateLimitResult(allowed=False, limit=10, remaining=0, reset_s=0)
    assert refused.headers()["Retry-After"] == "1"


def test_describe_limit() -> None:
    rl = RateLimiter(_settings(predict="1200/minute", train="10 per 2 seconds"))
    try:
        assert describe_limit(rl.limit_for("predict")) == "1200 per 1 minute"
        assert describe_limit(rl.limit_for("train")) == "10 per 2 seconds"
    finally:
        rl.close()


def test_redis_failure_fails_open_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis error lets the request through; the warning is rate-limited."""
    rl = RateLimiter(_settings(predict="1/minute"), "redis://127.0.0.1:1/0")
    calls = 0

    def broken(*_args: object, **_kwargs: object) -> bool:
        nonlocal calls
        calls += 1
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(rl._strategy, "hit", broken)
    try:
        with caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
            for _ in range(5):
                assert rl.hit("key:alice", "predict").allowed
                assert rl.check("key:alice", "predict").allowed
            assert calls == 1  # Redis is left alone for a few seconds after a failure
            monkeypatch.setattr(rl, "_skip_redis_until", 0.0)
            assert rl.hit("key:alice", "predict").allowed
            assert calls == 2
        warnings = [r for r in caplog.records if r.name == ratelimit.__name__]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert "ConnectionError" in warnings[0].getMessage()
    finally:
        rl.close()


def test_memory_storage_errors_are_not_swallowed(
    limiter: RateLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> bool:
        raise OSError("boom")

    monkeypatch.setattr(limiter._strategy, "hit", broken)
    with pytest.raises(OSError, match="boom"):
        limiter.hit("key:alice", "predict")


def test_close_is_idempotent() -> None:
    rl = RateLimiter(_settings())
    rl.hit("key:a", "predict")
    rl.close()
    rl.close()
