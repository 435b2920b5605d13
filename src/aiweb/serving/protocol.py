"""The HTTP/1.1 protocol ``aiweb serve`` runs: uvicorn's (httptools) with bounds on what a
client may make the server hold, and for how long.

uvicorn's httptools protocol buffers a request's line and headers without limit (an
8 MB header was served; a 64 MB one froze the event loop for 3 s and grew the process by
300 MB), and waits for a slow client for ever (a connection sending its headers or body
a byte at a time stayed open indefinitely). :class:`GuardedHTTPProtocol` adds, per
connection:

* **head size**: the request line and headers of one request may take at most
  ``AIWEB_SERVING__MAX_HEADER_BYTES`` (default 64 KB). Bytes are counted as they arrive,
  before the parser sees them; past the limit the client gets ``431 Request Header
  Fields Too Large`` and the connection is closed, so no more than the limit (plus one
  socket read) is ever held.
* **head time**: the whole head must arrive within ``AIWEB_SERVING__HEADER_TIMEOUT_S``
  (default 10 s) of connecting, or of the first byte of the next request on a kept-alive
  connection; a total, not an idle gap, so a client trickling a byte every few seconds
  is cut off too. Then ``408 Request Timeout`` and close.
* **body idle**: while a request's body is incomplete and the server is ready to read,
  a pause longer than ``AIWEB_SERVING__BODY_TIMEOUT_S`` (default 30 s) between two parts
  ends it: ``408`` when no response has started, and close. Time during which the
  server itself stopped reading (the app is busy with what it already has) never
  counts.
* **keep-alive**: an idle kept-alive connection is closed after
  ``AIWEB_SERVING__KEEP_ALIVE_TIMEOUT_S`` (default 5 s).

The error bodies are ``application/problem+json`` (the shape of
:func:`aiweb.api.problems.problem_response`, without ``request_id``: no request exists
yet). With several workers the protocol also counts this worker's connections in the
shared table of :mod:`aiweb.serving.balance`.

``aiweb serve`` always runs it (``uvicorn.run(..., http=PROTOCOL)``), one worker or many.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aiweb.config import ServingSettings
from aiweb.serving import balance

log = logging.getLogger(__name__)

PROTOCOL = "aiweb.serving.protocol:GuardedHTTPProtocol"
"""Import string of the protocol class, for ``uvicorn.run(http=...)``."""

__all__ = ["PROTOCOL", "ConnectionLimits", "GuardedHTTPProtocol", "configure", "limits"]


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds one connection is held to (see the module docs).

    Attributes:
        max_header_bytes: request line plus headers of one request, bytes.
        header_timeout_s: time to send a whole request head, seconds.
        body_timeout_s: longest pause between two parts of a body, seconds.
        keep_alive_timeout_s: idle time of a kept-alive connection, seconds.
    """

    max_header_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    keep_alive_timeout_s: float

    @classmethod
    def from_settings(cls, serving: ServingSettings) -> ConnectionLimits:
        """The limits set by ``AIWEB_SERVING__*``."""
        return cls(
            max_header_bytes=serving.max_header_bytes,
            header_timeout_s=serving.header_timeout_s,
            body_timeout_s=serving.body_timeout_s,
            keep_alive_timeout_s=serving.keep_alive_timeout_s,
        )


_limits: ConnectionLimits | None = None


def configure(value: ConnectionLimits | None) -> None:
    """Set the limits of the connections this process accepts from now on (``None``:
    read them again from the environment on the next connection)."""
    global _limits
    _limits = value


def limits() -> ConnectionLimits:
    """This process's limits: those given to :func:`configure`, else read once from the
    environment (``AIWEB_SERVING__*``; a worker of ``aiweb serve --workers N`` inherits
    the supervisor's)."""
    global _limits
    if _limits is None:
        from aiweb.config import get_settings

        _limits = ConnectionLimits.from_settings(get_settings().serving)
    return _limits


def _problem(status: int, reason: bytes, slug: str, title: str, detail: str) -> bytes:
    body = orjson.dumps(
        {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    )
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class GuardedHTTPProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol, holding each connection to
    :func:`limits` and counting it in the worker balance table when there is one.

    Args: those of uvicorn's ``HttpToolsProtocol`` (uvicorn makes one per connection).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bounds = limits()
        self._max_head = bounds.max_header_bytes
        self._head_timeout = bounds.header_timeout_s
        self._body_timeout = bounds.body_timeout_s
        # read by uvicorn's keep-alive timer (loop.call_later takes a float)
        self.timeout_keep_alive = bounds.keep_alive_timeout_s  # type: ignore[assignment]
        self._in_head = True  # the next bytes belong to a request line or headers
        self._head_bytes = 0
        self._messages = 0  # requests whose body ended (to tell pipelined heads apart)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0  # loop time of the last body bytes
        self._counted = False
        self._rejected = False

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        counter = balance.table()
        if counter is not None:
            counter.opened()
            self._counted = True
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            counter = balance.table()
            if counter is not None:
                counter.lost()
            self._counted = False
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        if not self._in_head:
            super().data_received(data)
            return
        if self._head_timer is None:
            self._arm_head_timer()
        allowance = self._max_head - self._head_bytes
        if len(data) <= allowance:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # More than the head may take, if it is all head: give the parser what the head
        # may take, then see whether the head ended within it.
        messages = self._messages
        self._head_bytes += allowance
        if allowance:
            super().data_received(data[:allowance])
        if self.transport.is_closing() or self._rejected:
            return
        if self._in_head and self._messages == messages:
            self._reject_head()
            return
        self.data_received(data[allowance:])

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timers()  # the WebSocket protocol takes the connection over
        self._rejected = True
        super().handle_websocket_upgrade()

    # -- parser callbacks ---------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._body_seen = self.loop.time()
        self._body_timer = self.loop.call_later(self._body_timeout, self._body_timeout_check)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._messages += 1
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # -- limits -------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _idle(self) -> bool:
        """No response is being made on this connection."""
        return self.cycle is None or self.cycle.response_complete

    def _close_with(self, response: bytes | None) -> None:
        self._rejected = True
        self._cancel_timers()
        if self.transport.is_closing():
            return
        if response is not None:
            self.transport.write(response)
        self.transport.close()

    def _reject_head(self) -> None:
        log.warning(
            "request head from %s over %d bytes: answered 431",
            self.client[0] if self.client else "?",
            self._max_head,
        )
        self._close_with(
            _problem(
                431,
                b"Request Header Fields Too Large",
                "request-header-fields-too-large",
                "Request header fields too large",
                f"the request line and headers are larger than {self._max_head} bytes "
                "(AIWEB_SERVING__MAX_HEADER_BYTES)",
            )
            if self._idle()
            else None
        )

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if not self._idle():  # a pipelined head waits for the response being made
            self._arm_head_timer()
            return
        self._close_with(
            _problem(
                408,
                b"Request Timeout",
                "request-timeout",
                "Request timeout",
                f"the request line and headers did not arrive within {self._head_timeout:g} s "
                "(AIWEB_SERVING__HEADER_TIMEOUT_S)",
            )
            if self._head_bytes
            else None
        )

    def _body_timeout_check(self) -> None:
        self._body_timer = None
        if self._in_head or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # the app is not reading: not the client's pause
            self._body_seen = now
        left = self._body_seen + self._body_timeout - now
        if left > 0:
            self._body_timer = self.loop.call_later(left, self._body_timeout_check)
            return
        cycle = self.cycle
        answer = None
        if cycle is not None and not cycle.response_started:
            answer = _problem(
                408,
                b"Request Timeout",
                "request-timeout",
                "Request timeout",
                f"no part of the request body arrived for {self._body_timeout:g} s "
                "(AIWEB_SERVING__BODY_TIMEOUT_S)",
            )
            cycle.response_started = True  # the app's own answer goes nowhere
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self._close_with(answer)
