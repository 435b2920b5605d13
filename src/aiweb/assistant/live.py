"""Live delivery of a conversation's events to the sockets watching it.

A visitor's widget holds a WebSocket on whichever server process its connection landed
on, while the operator's reply (or the bot's, for a message sent over REST) may be
written by another process. :class:`Hub` carries each conversation's events to every
socket subscribed to it:

- **one process** (no ``AIWEB_REDIS_URL``): in memory — a queue per socket;
- **several** (``aiweb serve --workers N``, or several replicas): Redis pub/sub, one
  channel per conversation (``aiweb:conv:<id>``); every process holds one pattern
  subscription and hands what arrives to its local sockets. A publisher never delivers
  locally as well, so each socket gets each event once.

Events are small JSON objects: ``{"type": "message", "message": {…}}`` (a stored
message, with its ``seq``), ``{"type": "status", "status": …}``, ``{"type": "typing",
"typing": true|false}``. They are hints for a live page: the messages stay in the
database, and a socket that reconnects asks for those after the last ``seq`` it showed,
so an event lost while Redis is away costs nothing but latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("aiweb.assistant")

__all__ = ["CHANNEL_PREFIX", "QUEUE_SIZE", "Hub"]

#: Redis channel of a conversation: ``aiweb:conv:<id>``.
CHANNEL_PREFIX = "aiweb:conv:"
#: Events a slow socket may have waiting before the oldest are dropped.
QUEUE_SIZE = 256


class Hub:
    """Subscriptions of this process's sockets to conversations, and publishing.

    Args:
        redis_url: Redis for several processes; ``None``: this process only.
    """

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self._local: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect to Redis and listen, when it is configured."""
        if self.redis_url is None:
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.redis_url)
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()

    @contextlib.asynccontextmanager
    async def subscribe(self, conversation_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue of the events of ``conversation_id`` while the context is open."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._local.setdefault(conversation_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._local.get(conversation_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._local[conversation_id]

    async def publish(self, conversation_id: str, event: dict[str, Any]) -> None:
        """Send ``event`` to every socket watching ``conversation_id``, in any process.
        A Redis error is logged: the socket catches up when it reconnects."""
        if self._redis is None:
            self._deliver(conversation_id, event)
            return
        try:
            await self._redis.publish(CHANNEL_PREFIX + conversation_id, json.dumps(event))
        except Exception:
            log.warning("live event for conversation %s not published", conversation_id)

    def _deliver(self, conversation_id: str, event: dict[str, Any]) -> None:
        for queue in list(self._local.get(conversation_id, ())):
            if queue.full():  # a socket that does not read: drop its oldest event
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.psubscribe(CHANNEL_PREFIX + "*")
                async for item in pubsub.listen():
                    if item.get("type") != "pmessage":
                        continue
                    channel = item["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    try:
                        event = json.loads(item["data"])
                    except ValueError:
                        continue
                    self._deliver(channel[len(CHANNEL_PREFIX) :], event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live events: Redis subscription lost; retrying", exc_info=True)
                await asyncio.sleep(1.0)
