"""Which version answers a request of a model under rollout, in each serving process.

:class:`RolloutRouter` keeps the running rollouts in memory, read from the database every
``AIWEB_ROLLOUT__REFRESH_S`` (so a change made anywhere is followed everywhere within
twice that), and adds this process's request, error and comparison counts to them at
the same time. The request path only reads a dictionary and hashes a user id.

Assignment. With ``sticky`` and a user id, a user's bucket is the first 8 bytes of
SHA-256(rollout id, user id) read as a fraction of 2**64: uniform over users, fixed for
the rollout, and independent between rollouts. The user meets the candidate while the
bucket is under the rollout's traffic, so a larger step only adds users to the
candidate, never moves one back. Without a user id (or without ``sticky``), each request
draws its own number.

Under a canary or an A/B test, a sample of the candidate's answers is scored again by the
baseline for the agreement of the two versions: at most ``AIWEB_ROLLOUT__AGREEMENT_RATE``
a second per process (a token bucket; by default 20, a few thousand samples a minute over
a few processes, while scoring every answer twice would cost each one a second model
call). Shadow scoring runs off the request path: the copy waits in a bounded queue that
``workers`` tasks drain; when the queue is full, the copy is dropped and counted
(``aiweb_rollout_shadow_dropped_total``). The answer was sent before the copy is scored.
Copies share the process's CPU with the requests, so they also keep to a budget of
wall-clock time (``AIWEB_ROLLOUT__SHADOW_BUDGET`` seconds of scoring per second, a token
bucket): a copy taken while the budget is spent is dropped and counted too. Under load a
copy takes longer, so fewer are scored; the shadow gives way instead of slowing the
answers (``make bench-rollout`` measures it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import anyio.to_thread

from aiweb.config import RolloutSettings
from aiweb.monitoring.metrics import ROLLOUT_REQUESTS, ROLLOUT_SHADOW_DROPPED
from aiweb.rollout.service import ActiveRollout, Counts, RolloutService, publish_metrics

log = logging.getLogger("aiweb.rollout")

#: ``predict(ref, body) -> answer``: the task's predictor the route called
Call = Callable[[str, Any], Awaitable[Mapping[str, Any]]]

#: ``compare(served, other) -> (compared, agreed)``: of two versions' answers to the same
#: body, the outputs both decided and how many of them alike (the task's, see
#: :attr:`aiweb.contract.PredictShapes.compare`); the agreement gate reads the sums
Compare = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[int, int]]


def bucket(rollout_id: str, user_id: str) -> float:
    """The user's place in ``[0, 1)`` for one rollout: the first 8 bytes of
    SHA-256(``rollout_id`` NUL ``user_id``) over 2**64 (any string, lone surrogates too)."""
    digest = hashlib.sha256(
        rollout_id.encode() + b"\0" + user_id.encode("utf-8", "surrogatepass")
    ).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class Route:
    """Where one request goes.

    Attributes:
        rollout: the running rollout.
        ref: the reference to answer with (``name`` for the baseline — what
            ``production`` points at — or ``name:candidate``).
        variant: ``baseline`` or ``candidate``: which version answers.
        other: a reference that also scores the request off the request path (the
            candidate in shadow mode; the baseline for a doubly-scored canary request),
            or ``None``.
    """

    rollout: ActiveRollout
    ref: str
    variant: str
    other: str | None


@dataclass(frozen=True)
class _Copy:
    """A request to score again, waiting in the queue (see :meth:`RolloutRouter.also_score`)."""

    route: Route
    call: Call
    body: Any
    served: Mapping[str, Any]
    compare: Compare | None


class _Tally:
    """This process's counts since the last flush, per rollout."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, rollout_id: str, field: str, n: int = 1) -> None:
        self.counts.setdefault(rollout_id, {})[field] = (
            self.counts.setdefault(rollout_id, {}).get(field, 0) + n
        )

    def take(self) -> dict[str, Counts]:
        taken, self.counts = self.counts, {}
        return {rid: Counts(**c) for rid, c in taken.items()}

    def give_back(self, counts: Mapping[str, Counts]) -> None:
        for rid, c in counts.items():
            for f in fields(Counts):
                if n := getattr(c, f.name):
                    self.add(rid, f.name, n)


class ScoringBudget:
    """Wall-clock seconds of scoring allowed per second (or, with :meth:`take`, copies a
    second): a token bucket (Turner 1986)
    that fills at ``rate`` tokens a second up to ``rate`` (one second's worth), from which
    each scored copy takes the seconds it took. A copy is admitted while the bucket is not
    empty, so concurrent copies may overdraw it; the debt is repaid before the next.

    Args:
        rate: seconds of scoring per second (> 0).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._at = clock()

    def _fill(self) -> None:
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def admit(self) -> bool:
        """Whether a copy may be scored now."""
        self._fill()
        return self._tokens > 0

    def spend(self, seconds: float) -> None:
        """Take the ``seconds`` (wall clock) a copy took."""
        self._fill()
        self._tokens -= seconds

    def take(self, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens when the bucket holds them (never overdrawn): used with
        a rate in copies per second, one copy at a time."""
        self._fill()
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False


class RolloutRouter:
    """The running rollouts of this process, and where a request goes.

    Args:
        service: reads the running rollouts and takes the counts.
        settings: refresh period and shadow queue size.
        workers: concurrent shadow scorings.
    """

    def __init__(self, service: RolloutService, settings: RolloutSettings, workers: int = 8):
        self._service = service
        self._settings = settings
        self._workers = workers
        self._by_model: dict[str, ActiveRollout] = {}
        self._tally = _Tally()
        self._budget = ScoringBudget(settings.shadow_budget)
        self._agreement = ScoringBudget(settings.agreement_rate)  # copies per second
        self._queue: asyncio.Queue[_Copy] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._preloaded: set[str] = set()  # rollouts whose candidate this process loads
        self._preloads: set[asyncio.Task[None]] = set()
        self._counters: dict[tuple[str, str], Any] = {}

    # -- the request path -------------------------------------------------------------

    def route(self, name: str, user_id: str | None) -> Route | None:
        """Where a request for ``name`` (its ``production``) goes, or ``None`` when no
        rollout of ``name`` runs."""
        rollout = self._by_model.get(name)
        if rollout is None:
            return None
        if rollout.sticky and user_id is not None:
            place = bucket(rollout.id, user_id)
        else:
            place = random.random()  # noqa: S311 - a traffic split, not a secret
        chosen = place < rollout.traffic
        candidate = f"{name}:{rollout.candidate}"
        if rollout.mode == "shadow":
            return Route(rollout, name, "baseline", candidate if chosen else None)
        if chosen:
            again = rollout.doubly_scored and self._agreement.take()
            return Route(rollout, candidate, "candidate", name if again else None)
        return Route(rollout, name, "baseline", None)

    def _requests(self, model: str, variant: str) -> Any:
        """``aiweb_rollout_requests_total{model, variant}``, its child kept (a labels
        lookup per request costs more than the count)."""
        child = self._counters.get((model, variant))
        if child is None:
            child = self._counters[(model, variant)] = ROLLOUT_REQUESTS.labels(model, variant)
        return child

    def answered(self, route: Route, *, error: bool) -> None:
        """Count a request ``route.variant`` answered (``error``: with a server error)."""
        rid = route.rollout.id
        self._tally.add(rid, f"requests_{route.variant}")
        if error:
            self._tally.add(rid, f"errors_{route.variant}")
        self._requests(route.rollout.model, route.variant).inc()

    def also_score(
        self,
        route: Route,
        call: Call,
        body: Any,
        served: Mapping[str, Any],
        compare: Compare | None = None,
    ) -> None:
        """Queue the scoring of ``body`` by ``route.other`` (never awaited by the request);
        a full queue or a spent budget (:class:`ScoringBudget`) drops it and counts the
        drop.

        Args:
            route: where the request went (:meth:`route`); nothing to do without
                ``route.other``.
            call: the task's predictor, ``call(ref, body) -> answer``.
            body: the validated body, scored again by ``route.other``.
            served: the answer the request got.
            compare: counts the outputs both versions answered alike (the agreement
                gate); ``None``: the answers are not compared.
        """
        if route.other is None:
            return
        if self._queue is None:
            self._queue = asyncio.Queue(self._settings.shadow_queue)
        if not self._budget.admit():
            self._dropped(route)
            return
        try:
            self._queue.put_nowait(_Copy(route, call, body, served, compare))
        except asyncio.QueueFull:
            self._dropped(route)
            return
        if not self._tasks:
            self._tasks = [
                asyncio.get_running_loop().create_task(self._score_copies())
                for _ in range(self._workers)
            ]

    def _dropped(self, route: Route) -> None:
        self._tally.add(route.rollout.id, "shadow_dropped")
        ROLLOUT_SHADOW_DROPPED.labels(route.rollout.model).inc()

    async def _score_copies(self) -> None:
        assert self._queue is not None
        while True:
            copy = await self._queue.get()
            try:
                if self._budget.admit():  # spent while the copy waited: give way
                    await self._score(copy)
                else:
                    self._dropped(copy.route)
            except Exception:  # never let one copy stop the worker
                log.exception("shadow scoring of %s failed", copy.route.other)
            finally:
                self._queue.task_done()

    async def _score(self, copy: _Copy) -> None:
        route = copy.route
        assert route.other is not None
        rid = route.rollout.id
        shadow = route.rollout.mode == "shadow"
        began = time.monotonic()
        try:
            answer = await copy.call(route.other, copy.body)
        except Exception as exc:
            self._budget.spend(time.monotonic() - began)
            if shadow and getattr(exc, "status", 500) >= 500:
                self._tally.add(rid, "requests_candidate")
                self._tally.add(rid, "errors_candidate")
            return
        self._budget.spend(time.monotonic() - began)
        if shadow:
            self._tally.add(rid, "requests_candidate")
            self._requests(route.rollout.model, "shadow").inc()
        if copy.compare is not None:
            compared, agreed = copy.compare(copy.served, answer)
            if compared:
                self._tally.add(rid, "compared", compared)
                self._tally.add(rid, "agreed", agreed)

    async def drain(self) -> None:
        """Wait until every queued copy is scored (tests; shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    # -- the refresher ----------------------------------------------------------------

    def sync(self) -> set[str]:
        """Add this process's counts to the database and re-read the running rollouts
        (blocking: run in a thread). A rollout that ended keeps routing until
        :meth:`forget` (the caller first makes ``production`` current, so no user meets
        the old version in between).

        Returns:
            The models whose rollout ended since the last read.
        """
        counts = self._tally.take()
        if counts:
            try:
                self._service.add_counts(counts)
            except Exception:
                self._tally.give_back(counts)  # counted on the next try
                raise
        active = self._service.active()
        running = {r.model: r for r in active}
        ended = set(self._by_model) - set(running)
        for name in ended:
            running[name] = self._by_model[name]
        self._by_model = running
        publish_metrics(active, self._service.states(sorted(ended)) if ended else {})
        return ended

    def forget(self, name: str) -> None:
        """Stop routing ``name`` by its ended rollout."""
        self._by_model.pop(name, None)

    async def follow(
        self,
        on_ended: Callable[[str], Awaitable[None]] | None = None,
        preload: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """:meth:`sync`; start ``preload("name:candidate")`` in the background for each
        rollout this process has not seen before (so the candidate's first requests do
        not wait for it to load: they join that load); then for each model whose rollout
        ended: ``on_ended(name)`` (re-resolve ``production``, which a promotion moved),
        then :meth:`forget`."""
        ended = await anyio.to_thread.run_sync(self.sync)
        if preload is not None:
            for rollout in list(self._by_model.values()):
                if rollout.id not in self._preloaded and rollout.model not in ended:
                    self._preloaded.add(rollout.id)
                    ref = f"{rollout.model}:{rollout.candidate}"
                    task = asyncio.get_running_loop().create_task(self._preload(preload, ref))
                    self._preloads.add(task)
                    task.add_done_callback(self._preloads.discard)
        for name in sorted(ended):
            try:
                if on_ended is not None:
                    await on_ended(name)
            finally:
                self.forget(name)

    @staticmethod
    async def _preload(preload: Callable[[str], Awaitable[None]], ref: str) -> None:
        try:
            await preload(ref)
        except Exception as exc:  # its requests will meet (and count) the same error
            log.warning("rollout candidate %s not preloaded: %s", ref, exc)

    def refresh_soon(self) -> None:
        """Re-read now (this process changed a rollout); safe from any thread."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._wake.set)

    async def run(
        self,
        on_ended: Callable[[str], Awaitable[None]] | None = None,
        preload: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """:meth:`follow` every ``refresh_s`` (and when woken) until cancelled.

        Args:
            on_ended: awaited with the name of each model whose rollout ended.
            preload: loads a rollout's candidate (``name:3``) ahead of its requests.
        """
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self.follow(on_ended, preload)
            except Exception:
                log.warning("rollouts not refreshed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.refresh_s)
            self._wake.clear()

    async def close_workers(self) -> None:
        """Stop the shadow workers (copies still queued are not scored) and the preloads."""
        for task in [*self._tasks, *self._preloads]:
            task.cancel()
        for task in [*self._tasks, *self._preloads]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._preloads.clear()
        self._queue = None

    async def close(self) -> None:
        """Stop the shadow workers and add the last counts to the database."""
        await self.close_workers()
        with contextlib.suppress(Exception):
            counts = self._tally.take()
            if counts:
                await anyio.to_thread.run_sync(self._service.add_counts, counts)
