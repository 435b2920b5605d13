"""The assistant's live events (:mod:`aiweb.assistant.live`): a conversation's events
reach the sockets subscribed to it in this process, and, over Redis pub/sub, in another
process's hub — once each."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from helpers import redis_reachable

from aiweb.assistant.live import Hub

REDIS = "redis://127.0.0.1:6379/0"


async def _next(queue: asyncio.Queue[dict[str, object]]) -> dict[str, object]:
    return await asyncio.wait_for(queue.get(), timeout=5)


def test_in_memory_events_reach_only_their_conversation() -> None:
    async def run() -> None:
        hub = Hub()
        async with hub.subscribe("a") as a, hub.subscribe("b") as b:
            await hub.publish("a", {"type": "status", "status": "agent"})
            assert await _next(a) == {"type": "status", "status": "agent"}
            assert b.empty()
        await hub.publish("a", {"type": "status"})  # nobody listens: dropped
        assert not hub._local

    asyncio.run(run())


@pytest.mark.skipif(not redis_reachable(REDIS), reason="needs Redis on 127.0.0.1:6379")
def test_redis_carries_events_between_hubs_once() -> None:
    async def run() -> None:
        one, two = Hub(REDIS), Hub(REDIS)  # two server processes
        await one.start()
        await two.start()
        conversation = uuid.uuid4().hex
        try:
            async with one.subscribe(conversation) as here, two.subscribe(conversation) as there:
                await asyncio.sleep(0.3)  # the pattern subscriptions are in place
                event = {"type": "message", "message": {"seq": 5, "text": "Sam here."}}
                await two.publish(conversation, event)
                assert await _next(here) == event
                assert await _next(there) == event  # the publisher's own sockets too
                await asyncio.sleep(0.2)
                assert here.empty()
                assert there.empty()  # once each
        finally:
            await one.close()
            await two.close()

    asyncio.run(run())
