"""Adaptive micro-batching: requests that arrive together run as one model call.

Each model version gets one :class:`MicroBatcher`. A request submits its list of
inputs; a single consumer task takes the first waiting request, then every request
already queued (up to ``max_batch_size`` inputs), and runs them as one call in a
worker thread, so the event loop never blocks. Under no load a request runs alone at
once (no added latency); under load batches grow by themselves. When more than one
request was waiting, the consumer also waits up to ``max_wait_ms`` for stragglers; a
wait that gathered nothing (every caller was already in the batch, as with a few
clients that each wait for their answer) makes the next waits be skipped, for 1, 2, 4 …
up to 64 batches, so that a few clients do not pay it on every call.

A caller whose requests reach the batcher one at a time, however many are in flight (a
``grpc.aio`` server accepts one call per turn of the event loop), sets
:data:`BATCH_WAIT_S` for its requests: a batch holding one of them waits that long for
more, so the batch fills as it would from one socket read of many requests.

The queue is bounded: a full queue raises :class:`~aiweb.errors.QueueFullError` (503
with ``Retry-After``) instead of letting latency grow without bound.

Several versions of one model can share one consumer (a :class:`BatchGroup`): a canary or
an A/B test splits a model's traffic over two versions, and with a consumer each, every
window of concurrent requests became two half-size batches, two thread hops and two
model calls competing for the same cores. The group's consumer gathers the requests of
all its versions in one window, as one batcher would, and runs each version's share as
one call, one version after the other, in a single worker-thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import anyio.to_thread

from aiweb.errors import QueueFullError

T = TypeVar("T")

BATCH_WAIT_S: ContextVar[float | None] = ContextVar("aiweb_batch_wait_s", default=None)
"""How long (seconds) a batch holding a request submitted in this context may wait for
more requests, instead of the batcher's ``max_wait_ms`` (the longer of the two is
taken). ``None``: the batcher's own."""

#: most batches whose wait is skipped after waits that gathered nothing
MAX_SKIPPED_WAITS = 64


class SupportsSlice(Protocol):
    """A batch result whose rows are cut out per request with ``result[start:stop]``."""

    def __getitem__(self, index: slice, /) -> Any: ...


#: The result of one model call: an array, or any row container that slices.
R = TypeVar("R", bound=SupportsSlice)

BatchFn = Callable[[list[T]], R]


@dataclass
class _Pending(Generic[T, R]):
    owner: MicroBatcher[T, R]
    items: list[T]
    future: asyncio.Future[R]
    wait_s: float | None = None
    enqueued: float = field(default_factory=time.perf_counter)


class _Failed:
    """A version's model call that raised, inside a group's thread hop."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class _Consumer(Generic[T, R]):
    """The bounded queue and the consumer task of one batcher, or of a group of them."""

    def __init__(self, max_batch_size: int, max_wait_ms: float, max_queue: int) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Pending[T, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.waits = 0
        self.skipped_waits = 0
        self._skip = 0  # batches left whose wait is skipped
        self._backoff = 0  # how many were skipped after the last fruitless wait

    def put(self, pending: _Pending[T, R]) -> None:
        """Queue ``pending`` (starting the consumer on first use).

        Raises:
            QueueFullError: ``max_queue`` requests are already waiting.
        """
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise QueueFullError(
                f"{self.max_queue} requests are already waiting for this model; retry shortly",
                headers={"Retry-After": "1"},
            ) from None

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            first = await queue.get()
            batch = [first]
            size = len(first.items)
            while size < self.max_batch_size and not queue.empty():
                nxt = queue.get_nowait()
                batch.append(nxt)
                size += len(nxt.items)
            if len(batch) > 1 and size < self.max_batch_size:
                size = await self._wait_for_more(queue, batch, size)
            await self._execute(batch)

    async def _wait_for_more(
        self, queue: asyncio.Queue[_Pending[T, R]], batch: list[_Pending[T, R]], size: int
    ) -> int:
        """Add requests that arrive within the batch's wait (the longest of
        ``max_wait_ms`` and its requests' :data:`BATCH_WAIT_S`) to ``batch``, up to
        ``max_batch_size`` inputs; skip the wait after fruitless ones (module docs).
        Returns the batch's size."""
        wait_s = max([self.max_wait_s, *(p.wait_s for p in batch if p.wait_s is not None)])
        if wait_s <= 0:
            return size
        if self._skip > 0:
            self._skip -= 1
            self.skipped_waits += 1
            return size
        self.waits += 1
        before = len(batch)
        deadline = time.perf_counter() + wait_s
        while size < self.max_batch_size:
            timeout = deadline - time.perf_counter()
            if timeout <= 0:
                break
            try:
                nxt = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            batch.append(nxt)
            size += len(nxt.items)
        if len(batch) == before:  # nobody came: the callers were all in the batch
            self._backoff = min(max(1, 2 * self._backoff), MAX_SKIPPED_WAITS)
            self._skip = self._backoff
        else:
            self._backoff = 0
        return size

    async def _execute(self, batch: list[_Pending[T, R]]) -> None:
        """Run ``batch``: one model call per batcher it holds requests of, all in one
        worker-thread hop; a failed call is retried request by request."""
        live: list[_Pending[T, R]] = []
        for p in batch:
            if p.future.done():  # the caller gave up
                continue
            if p.owner.closed:
                p.future.set_exception(_unloaded())
                continue
            live.append(p)
        if not live:
            return
        shares: dict[MicroBatcher[T, R], list[_Pending[T, R]]] = {}
        for p in live:
            shares.setdefault(p.owner, []).append(p)
        calls = [(owner, [item for p in ps for item in p.items]) for owner, ps in shares.items()]
        outcomes = await anyio.to_thread.run_sync(_call_each, calls)
        for (owner, inputs), (result, seconds) in zip(calls, outcomes, strict=True):
            pending = shares[owner]
            if isinstance(result, _Failed):
                if len(pending) > 1:
                    # one bad request must not fail its neighbours: retry each alone
                    for p in pending:
                        await self._execute([p])
                elif not pending[0].future.done():
                    pending[0].future.set_exception(result.exc)
                continue
            if owner.on_batch is not None:
                owner.on_batch(len(inputs), seconds)
            offset = 0
            for p in pending:
                n = len(p.items)
                if not p.future.done():
                    p.future.set_result(result[offset : offset + n])
                offset += n

    def fail_waiting(self, owner: MicroBatcher[T, R] | None = None) -> None:
        """Fail the waiting requests (of ``owner`` only, when given) as unloaded."""
        if self._queue is None:
            return
        kept: list[_Pending[T, R]] = []
        while not self._queue.empty():
            p = self._queue.get_nowait()
            if owner is not None and p.owner is not owner:
                kept.append(p)
            elif not p.future.done():
                p.future.set_exception(_unloaded())
        for p in kept:
            self._queue.put_nowait(p)

    async def aclose(self) -> None:
        """Stop the consumer task and fail every waiting request."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.fail_waiting()


def _unloaded() -> QueueFullError:
    return QueueFullError("model version unloaded; retry", headers={"Retry-After": "1"})


def _call_each(
    calls: list[tuple[MicroBatcher[T, R], list[T]]],
) -> list[tuple[R | _Failed, float]]:
    """Each batcher's model call on its inputs, one after the other (in a worker
    thread): ``(result or the exception, seconds)`` per call."""
    outcomes: list[tuple[R | _Failed, float]] = []
    for owner, inputs in calls:
        started = time.perf_counter()
        try:
            result: R | _Failed = owner.fn(inputs)
        except Exception as exc:
            result = _Failed(exc)
        outcomes.append((result, time.perf_counter() - started))
    return outcomes


class BatchGroup(Generic[T, R]):
    """One consumer shared by several :class:`MicroBatcher` (the versions of one model).

    A window gathers the waiting requests of every member (up to ``max_batch_size``
    inputs in all, waiting as one batcher would) and runs each member's share as one
    call, the members one after the other, in a single worker-thread hop (module docs).

    Args:
        max_batch_size, max_wait_ms, max_queue: as :class:`MicroBatcher`'s, for the
            requests of all members together.

    Attributes:
        waits, skipped_waits: as :class:`MicroBatcher`'s, over all members.
    """

    def __init__(
        self, *, max_batch_size: int = 64, max_wait_ms: float = 1.0, max_queue: int = 2048
    ) -> None:
        self._consumer: _Consumer[T, R] = _Consumer(max_batch_size, max_wait_ms, max_queue)

    @property
    def waits(self) -> int:
        return self._consumer.waits

    @property
    def skipped_waits(self) -> int:
        return self._consumer.skipped_waits

    async def aclose(self) -> None:
        """Stop the shared consumer; every waiting request fails as unloaded (503)."""
        await self._consumer.aclose()


class MicroBatcher(Generic[T, R]):
    """Batch concurrent calls of ``fn`` (rows in, one result row per input out).

    Args:
        fn: the model call: ``list`` of ``n`` inputs -> array (or other sliceable row
            container, such as :class:`aiweb.embeddings.Embeddings`) with ``n`` rows.
        max_batch_size: most inputs in one call (a single larger request runs alone).
        max_wait_ms: extra wait for more requests once a batch is forming under load.
        max_queue: most requests waiting; beyond it :meth:`submit` raises.
        on_batch: optional hook called with ``(batch_size, seconds)`` after each call.
        group: share this group's consumer (and its ``max_*`` settings, which then
            replace the three above) with the group's other batchers; ``None``: a
            consumer of its own.

    Attributes:
        waits: how many batches waited for more requests (the group's, in a group).
        skipped_waits: how many batches skipped their wait after fruitless ones.
        closed: :meth:`aclose` was called; new and waiting requests are refused (503).
    """

    def __init__(
        self,
        fn: BatchFn[T, R],
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 1.0,
        max_queue: int = 2048,
        on_batch: Callable[[int, float], None] | None = None,
        group: BatchGroup[T, R] | None = None,
    ) -> None:
        self.fn = fn
        self.on_batch = on_batch
        self._group = group
        self._consumer: _Consumer[T, R] = (
            group._consumer
            if group is not None
            else _Consumer(max_batch_size, max_wait_ms, max_queue)
        )
        self.closed = False

    @property
    def max_batch_size(self) -> int:
        return self._consumer.max_batch_size

    @property
    def max_wait_s(self) -> float:
        return self._consumer.max_wait_s

    @property
    def max_queue(self) -> int:
        return self._consumer.max_queue

    @property
    def waits(self) -> int:
        return self._consumer.waits

    @property
    def skipped_waits(self) -> int:
        return self._consumer.skipped_waits

    async def submit(self, items: Sequence[T]) -> R:
        """Run ``items`` in the next batch and return their rows, in order.

        Raises:
            QueueFullError: ``max_queue`` requests are already waiting, or the batcher
                is closed (its version is being unloaded).
            Exception: whatever ``fn`` raised for the batch holding these items.
        """
        if self.closed:
            raise QueueFullError(
                "this model version is being unloaded; retry", headers={"Retry-After": "1"}
            )
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._consumer.put(_Pending(self, list(items), future, BATCH_WAIT_S.get()))
        return await future

    async def aclose(self) -> None:
        """Stop taking requests; waiting ones fail with a 503 to retry. A batcher of its
        own stops its consumer; a group's member leaves the shared consumer running."""
        self.closed = True
        if self._group is None:
            await self._consumer.aclose()
        else:
            self._consumer.fail_waiting(self)
