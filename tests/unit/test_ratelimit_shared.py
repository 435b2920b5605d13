"""The rate-limit windows the workers of one `aiweb serve` share (no Redis): the same
moving window as one process, one budget however many processes charge it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from aiweb.config import RateLimitSettings
from aiweb.security.ratelimit import (
    SHARED_TABLE_ENV,
    RateLimiter,
    SharedWindows,
    create_shared_table,
)


@pytest.fixture
def table(tmp_path: Path) -> SharedWindows:
    path = tmp_path / "windows"
    SharedWindows.create(str(path), capacity=10, slots=8)
    return SharedWindows(str(path))


def test_a_moving_window(table: SharedWindows) -> None:
    hits = [table.hit("k", 3, 60, now=100 + i) for i in range(5)]
    assert hits == [
        (True, 2, 60.0),
        (True, 1, 59.0),
        (True, 0, 58.0),
        (False, 0, 57.0),  # refused, and not counted
        (False, 0, 56.0),
    ]
    # the first request leaves the window at 160: one more may come, no burst of 3
    assert table.hit("k", 3, 60, now=160.5) == (True, 0, 0.5)
    assert table.hit("k", 3, 60, now=160.7)[0] is False
    assert table.hit("k", 3, 60, now=161.5) == (True, 0, 0.5)
    # other keys have their own windows
    assert table.hit("other", 3, 60, now=161.5) == (True, 2, 60.0)


def test_a_full_table_forgets_the_window_that_ends_first(table: SharedWindows) -> None:
    table.hit("old", 1, 10, now=0)
    for i in range(8):
        table.hit(f"k{i}", 1, 100, now=1)  # 8 slots: one had to go, "old" ends first
    # the 8 newer windows were all kept ...
    assert [table.hit(f"k{i}", 1, 100, now=2)[0] for i in range(8)] == [False] * 8
    # ... and "old" starts afresh: lenient, never a wrong refusal
    assert table.hit("old", 1, 10, now=2)[0] is True


def test_a_budget_larger_than_the_table_is_refused(table: SharedWindows) -> None:
    with pytest.raises(ValueError, match="capacity"):
        table.hit("k", 11, 60)


def test_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="not a rate-limit table"):
        SharedWindows(str(path))


def charge(path: str, hits: int, accepted: Any) -> None:
    table = SharedWindows(path)
    accepted.put(sum(table.hit("key:shared", 50, 60)[0] for _ in range(hits)))
    table.close()


def test_processes_share_one_budget(tmp_path: Path) -> None:
    path = str(tmp_path / "windows")
    SharedWindows.create(path, capacity=50)
    ctx = multiprocessing.get_context("spawn")
    accepted = ctx.Queue()
    workers = [ctx.Process(target=charge, args=(path, 40, accepted)) for _ in range(3)]
    for worker in workers:
        worker.start()
    counts = [accepted.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert sum(counts) == 50  # 120 requests from 3 processes, one budget of 50


def test_limiters_of_one_server_share_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = RateLimitSettings(predict="4/minute")
    path = str(tmp_path / "windows")
    create_shared_table(path, settings)
    monkeypatch.setenv(SHARED_TABLE_ENV, path)
    first, second = RateLimiter(settings), RateLimiter(settings)
    try:
        assert first.shared
        assert second.shared
        results = [(first if i % 2 else second).hit("key:a", "predict") for i in range(6)]
        assert [r.allowed for r in results] == [True] * 4 + [False] * 2
        assert [r.remaining for r in results[:4]] == [3, 2, 1, 0]
        assert results[4].headers()["Retry-After"]
        first.reset()  # for tests: clears the shared windows too
        assert second.hit("key:a", "predict").allowed
    finally:
        first.close()
        second.close()


def test_without_the_table_a_limiter_counts_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SHARED_TABLE_ENV, raising=False)
    limiter = RateLimiter(RateLimitSettings())
    try:
        assert not limiter.shared
    finally:
        limiter.close()
