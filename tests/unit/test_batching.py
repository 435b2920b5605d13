from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from aiweb.errors import QueueFullError
from aiweb.serving.batching import BATCH_WAIT_S, BatchGroup, MicroBatcher


class Recorder:
    """Model stand-in: returns each input's number, records the batches it saw."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items: list[int]) -> npt.NDArray[np.float64]:
        self.gate.wait(5)
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        if any(i < 0 for i in items):
            raise ValueError("negative input")
        self.batches.append(list(items))
        return np.array([[float(i), float(i) * 2] for i in items])


def test_concurrent_requests_get_their_own_rows_in_order() -> None:
    model = Recorder(delay_s=0.01)

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=2)
        requests = [list(range(k * 10, k * 10 + (k % 4) + 1)) for k in range(40)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        for req, res in zip(requests, results, strict=True):
            assert res[:, 0].tolist() == [float(i) for i in req]
        await batcher.aclose()

    asyncio.run(main())
    assert len(model.batches) < 40, "concurrent requests were not batched"
    assert max(len(b) for b in model.batches) > 4


def test_a_failing_request_fails_alone() -> None:
    model = Recorder()
    model.gate.clear()  # hold the first call so the others queue up together

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=0)
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.05)
        good = [asyncio.ensure_future(batcher.submit([i])) for i in (2, 3)]
        bad = asyncio.ensure_future(batcher.submit([-1]))
        more = asyncio.ensure_future(batcher.submit([4]))
        await asyncio.sleep(0.05)
        model.gate.set()
        assert (await first)[0, 0] == 1.0
        assert [(await g)[0, 0] for g in good] == [2.0, 3.0]
        assert (await more)[0, 0] == 4.0
        with pytest.raises(ValueError, match="negative"):
            await bad
        await batcher.aclose()

    asyncio.run(main())


def test_full_queue_raises_503_with_retry_after() -> None:
    model = Recorder()
    model.gate.clear()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=1, max_wait_ms=0, max_queue=2)
        running = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.05)  # the consumer holds request 0 in the model call
        waiting = [asyncio.ensure_future(batcher.submit([i])) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError) as info:
            await batcher.submit([3])
        assert info.value.status == 503
        assert info.value.headers["Retry-After"] == "1"
        model.gate.set()
        await asyncio.gather(running, *waiting)
        await batcher.aclose()

    asyncio.run(main())


def test_a_lone_request_is_not_delayed_by_max_wait() -> None:
    model = Recorder()

    async def main() -> float:
        batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=500)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await batcher.submit([1])
        elapsed = loop.time() - start
        await batcher.aclose()
        return elapsed

    # generous bound: only checks the 500 ms wait is not applied to a request alone
    assert asyncio.run(main()) < 0.4


def _held_then_trickled(model: Recorder, batcher: MicroBatcher[int, Any]) -> Any:
    """Requests 1 and 2 queue while request 0 runs; 3, 4 and 5 come 50 ms after the
    batch of 1 and 2 was formed (as gRPC calls reach the batcher, one by one)."""

    async def main() -> None:
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.05)  # request 0 is in the model call, held
        queued = [asyncio.ensure_future(batcher.submit([i])) for i in (1, 2)]
        await asyncio.sleep(0.01)
        model.gate.set()
        await asyncio.sleep(0.05)
        late = [asyncio.ensure_future(batcher.submit([i])) for i in (3, 4, 5)]
        await asyncio.gather(first, *queued, *late)
        await batcher.aclose()

    return main()


def test_batch_wait_of_the_requests_context_fills_the_batch() -> None:
    """A request submitted with BATCH_WAIT_S makes its batch wait that long for more,
    beyond the batcher's max_wait_ms; without it the batch runs at once."""
    plain = Recorder()
    asyncio.run(_held_then_trickled(plain, MicroBatcher(plain, max_wait_ms=0)))
    assert plain.batches == [[0], [1, 2], [3, 4, 5]]

    hinted = Recorder()
    token = BATCH_WAIT_S.set(1.0)  # the tasks made in main() copy this context
    try:
        asyncio.run(_held_then_trickled(hinted, MicroBatcher(hinted, max_wait_ms=0)))
    finally:
        BATCH_WAIT_S.reset(token)
    assert hinted.batches == [[0], [1, 2, 3, 4, 5]]


def test_fruitless_waits_are_skipped_ever_longer() -> None:
    """Two clients that each wait for their answer: every batch holds both, so a wait
    for more gathers nothing. After each fruitless wait the next 1, 2, 4 … batches skip
    theirs."""
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=20)

    async def closed_loop(rounds: int) -> None:
        for r in range(rounds):
            await asyncio.gather(batcher.submit([2 * r]), batcher.submit([2 * r + 1]))

    async def main() -> None:
        await closed_loop(40)
        # waited at rounds 0, 2, 5, 10, 19 and 36; skipped the 34 others
        assert (batcher.waits, batcher.skipped_waits) == (6, 34)
        assert all(len(b) == 2 for b in model.batches)
        await batcher.aclose()

    asyncio.run(main())


def test_a_wait_that_gathers_a_request_ends_the_back_off() -> None:
    model = Recorder()
    batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=300)

    async def pair() -> None:
        await asyncio.gather(batcher.submit([1]), batcher.submit([2]))

    async def main() -> None:
        await pair()  # a fruitless wait: the next batch skips its wait
        await pair()
        assert (batcher.waits, batcher.skipped_waits) == (1, 1)
        both = asyncio.ensure_future(pair())
        await asyncio.sleep(0.05)  # a third client comes while the pair's batch waits
        await asyncio.gather(both, batcher.submit([3]))
        assert model.batches[-1] == [1, 2, 3]
        await pair()  # no skip after a wait that paid off
        assert (batcher.waits, batcher.skipped_waits) == (3, 1)
        await batcher.aclose()

    asyncio.run(main())


# -- a group: the versions of one model share one consumer ---------------------------


def test_a_group_runs_each_versions_share_as_one_call_in_one_window() -> None:
    """Requests of two versions waiting together become one call per version, both in
    the same worker-thread hop (a canary splits one window, not two batchers')."""
    hold, v1, v2 = Recorder(), Recorder(), Recorder()
    hold.gate.clear()  # the first call holds the consumer while the others queue up
    hops: list[tuple[str, int]] = []

    def tracked(name: str, model: Recorder) -> Any:
        def fn(items: list[int]) -> npt.NDArray[np.float64]:
            hops.append((name, threading.get_ident()))
            return model(items)

        return fn

    async def main() -> None:
        group: BatchGroup[int, Any] = BatchGroup(max_batch_size=64, max_wait_ms=0)
        first = MicroBatcher(tracked("hold", hold), group=group)
        one = MicroBatcher(tracked("v1", v1), group=group)
        two = MicroBatcher(tracked("v2", v2), group=group)
        held = asyncio.ensure_future(first.submit([0]))
        await asyncio.sleep(0.05)
        mixed = [(one if k % 2 else two, [k, k + 100]) for k in range(1, 9)]
        futures = [asyncio.ensure_future(b.submit(items)) for b, items in mixed]
        await asyncio.sleep(0.05)
        hold.gate.set()
        assert (await held)[0, 0] == 0.0
        for (_b, items), fut in zip(mixed, futures, strict=True):
            assert (await fut)[:, 0].tolist() == [float(i) for i in items]
        assert first.waits == one.waits == group.waits  # the group's counts
        await group.aclose()

    asyncio.run(main())
    assert v1.batches == [[1, 101, 3, 103, 5, 105, 7, 107]]
    assert v2.batches == [[2, 102, 4, 104, 6, 106, 8, 108]]
    after_hold = hops[1:]
    assert sorted(name for name, _t in after_hold) == ["v1", "v2"]
    assert len({t for _n, t in after_hold}) == 1, "the two calls took two thread hops"


def test_a_failing_version_in_a_group_fails_only_its_bad_request() -> None:
    hold, good, bad = Recorder(), Recorder(), Recorder()
    hold.gate.clear()

    async def main() -> None:
        group: BatchGroup[int, Any] = BatchGroup(max_batch_size=64, max_wait_ms=0)
        first = MicroBatcher(hold, group=group)
        ok = MicroBatcher(good, group=group)
        flaky = MicroBatcher(bad, group=group)
        held = asyncio.ensure_future(first.submit([0]))
        await asyncio.sleep(0.05)
        fine = [asyncio.ensure_future(ok.submit([i])) for i in (1, 2)]
        other = asyncio.ensure_future(flaky.submit([3]))
        broken = asyncio.ensure_future(flaky.submit([-1]))
        await asyncio.sleep(0.05)
        hold.gate.set()
        await held
        assert [(await f)[0, 0] for f in fine] == [1.0, 2.0]
        assert (await other)[0, 0] == 3.0
        with pytest.raises(ValueError, match="negative"):
            await broken
        await group.aclose()

    asyncio.run(main())
    assert good.batches == [[1, 2]]
    assert bad.batches == [[3]]  # after the shared call failed, each alone


def test_closing_a_group_member_refuses_its_requests_only() -> None:
    hold, stays, goes = Recorder(), Recorder(), Recorder()
    hold.gate.clear()

    async def main() -> None:
        group: BatchGroup[int, Any] = BatchGroup(max_batch_size=64, max_wait_ms=0)
        first = MicroBatcher(hold, group=group)
        kept = MicroBatcher(stays, group=group)
        leaving = MicroBatcher(goes, group=group)
        held = asyncio.ensure_future(first.submit([0]))
        await asyncio.sleep(0.05)
        waiting_kept = asyncio.ensure_future(kept.submit([1]))
        waiting_gone = asyncio.ensure_future(leaving.submit([2]))
        await asyncio.sleep(0.01)
        await leaving.aclose()
        with pytest.raises(QueueFullError) as refused:
            await leaving.submit([3])
        assert refused.value.headers == {"Retry-After": "1"}
        hold.gate.set()
        await held
        assert (await waiting_kept)[0, 0] == 1.0
        with pytest.raises(QueueFullError):
            await waiting_gone
        assert (await kept.submit([4]))[0, 0] == 4.0  # the shared consumer still runs
        await group.aclose()

    asyncio.run(main())
    assert goes.batches == []
    assert stays.batches == [[1], [4]]
