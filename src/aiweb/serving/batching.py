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
    items: list[T]
    future: asyncio.Future[R]
    wait_s: float | None = None
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[T, R]):
    """Batch concurrent calls of ``fn`` (rows in, one result row per input out).

    Args:
        fn: the model call: ``list`` of ``n`` inputs -> array (or other sliceable row
            container, such as :class:`aiweb.embeddings.Embeddings`) with ``n`` rows.
        max_batch_size: most inputs in one call (a single larger request runs alone).
        max_wait_ms: extra wait for more requests once a batch is forming under load.
        max_queue: most requests waiting; beyond it :meth:`submit` raises.
        on_batch: optional hook called with ``(batch_size, seconds)`` after each call.

    Attributes:
        waits: how many batches waited for more requests.
        skipped_waits: how many batches skipped their wait after fruitless ones.
    """

    def __init__(
        self,
        fn: BatchFn[T, R],
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 1.0,
        max_queue: int = 2048,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._fn = fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending[T, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.waits = 0
        self.skipped_waits = 0
        self._skip = 0  # batches left whose wait is skipped
        self._backoff = 0  # how many were skipped after the last fruitless wait

    def _ensure_started(self) -> asyncio.Queue[_Pending[T, R]]:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._queue

    async def submit(self, items: Sequence[T]) -> R:
        """Run ``items`` in the next batch and return their rows, in order.

        Raises:
            QueueFullError: ``max_queue`` requests are already waiting.
            Exception: whatever ``fn`` raised for the batch holding these items.
        """
        if self._closed:
            raise QueueFullError(
                "this model version is being unloaded; retry", headers={"Retry-After": "1"}
            )
        queue = self._ensure_started()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(_Pending(list(items), future, BATCH_WAIT_S.get()))
        except asyncio.QueueFull:
            raise QueueFullError(
                f"{self.max_queue} requests are already waiting for this model; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        return await future

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
        live = [p for p in batch if not p.future.done()]  # skip callers that gave up
        if not live:
            return
        inputs: list[T] = [item for p in live for item in p.items]
        started = time.perf_counter()
        try:
            result = await anyio.to_thread.run_sync(self._fn, inputs)
        except Exception as exc:
            if len(live) > 1:
                # one bad request must not fail its neighbours: retry each alone
                for p in live:
                    await self._execute([p])
                return
            if not live[0].future.done():
                live[0].future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(inputs), time.perf_counter() - started)
        offset = 0
        for p in live:
            n = len(p.items)
            if not p.future.done():
                p.future.set_result(result[offset : offset + n])
            offset += n

    async def aclose(self) -> None:
        """Stop the consumer; waiting requests get their results first when possible."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                p = self._queue.get_nowait()
                if not p.future.done():
                    p.future.set_exception(
                        QueueFullError(
                            "model version unloaded; retry", headers={"Retry-After": "1"}
                        )
                    )
