"""Keep-alive connections spread evenly over ``aiweb serve --workers N`` processes.

The workers share one listening socket and the kernel gives each new connection to
whichever worker calls ``accept()`` first, so a client that opens a few keep-alive
connections at once (a web app's HTTP connection pool, a load generator) often lands
them all, or most, on one worker while the other idles: measured with wrk's 4
connections on 2 workers, search p99 was 21-23 ms when they split 2+2 and 26-46 ms when
3+1 or 4+0 (docs/benchmarks.md). Kernels do not move an accepted connection, and
``SO_REUSEPORT`` only hashes connections over the workers at random.

So each worker publishes how many connections it holds in a small shared table (a file
of ``workers`` int64 slots, memory-mapped; one slot per worker, claimed with a POSIX
record lock that the kernel drops when the worker dies, so a replacement worker takes
its slot over). A worker holding more than its fair share, ``ceil(total / workers)``,
answers its next response with ``Connection: close`` (RFC 9112 section 9.6); the client
reconnects, an idle worker is the likeliest to accept, and the counts even out. This is
what HAProxy's and Envoy's connection limits do to an upstream, done by the workers
themselves. One closed connection costs the client a loopback or LAN reconnect
(~0.1-0.3 ms), only while the workers are uneven.

Parts: :class:`ConnectionTable` (the shared table), the HTTP protocol that counts this
worker's connections in it (:class:`aiweb.serving.protocol.GuardedHTTPProtocol`, which
``aiweb serve`` always runs) and :class:`ConnectionBalanceMiddleware` (pure ASGI: adds
the header). ``aiweb serve`` makes the table when it runs several workers and
``AIWEB_SERVING__BALANCE_CONNECTIONS`` is true (the default).
"""

from __future__ import annotations

import fcntl
import logging
import math
import mmap
import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiweb.monitoring.metrics import HTTP_CONNECTIONS_REBALANCED

log = logging.getLogger(__name__)

TABLE_ENV = "AIWEB_SERVE_CONNECTION_TABLE"
"""Environment variable with the shared table's path, set by ``aiweb serve`` for its
workers (they inherit it)."""

_SLOT = 8  # bytes per worker: one native int64


def create_table(path: str, workers: int) -> None:
    """Create (or reset) the shared table at ``path`` for ``workers`` worker processes.

    Raises:
        ValueError: ``workers`` < 1.
        OSError: the file cannot be written.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers}")
    with open(path, "wb") as f:
        f.write(b"\0" * (_SLOT * workers))


class ConnectionTable:
    """One worker's view of the shared connection counts.

    Args:
        path: the file made by :func:`create_table`; its size gives the worker count.

    ``slot`` is ``None`` when every slot is held by a live process (more workers than
    the table was made for); such a worker counts nothing and never closes connections.
    All methods run on the worker's event loop thread.
    """

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR)
        size = os.fstat(self._fd).st_size
        if size < _SLOT or size % _SLOT:
            os.close(self._fd)
            raise ValueError(f"{path} is not a connection table ({size} bytes)")
        self._map = mmap.mmap(self._fd, size)
        self._counts = memoryview(self._map).cast("q")
        self.workers = size // _SLOT
        self.slot: int | None = None
        for i in range(self.workers):
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SLOT, i * _SLOT)
            except OSError:
                continue  # a live worker holds it
            self.slot = i
            self._counts[i] = 0  # a dead worker's count, if it had this slot
            break
        self.held = 0
        """Connections this worker holds."""
        self.closing = 0
        """Connections told to close whose loss this worker has not yet seen."""

    def opened(self) -> None:
        """Count a connection this worker accepted."""
        self.held += 1
        self._publish()

    def lost(self) -> None:
        """Count a connection of this worker that closed (either side)."""
        self.held = max(0, self.held - 1)
        self.closing = max(0, self.closing - 1)
        self._publish()

    def counts(self) -> list[int]:
        """Every worker's published connection count (a worker that died keeps its
        last count until a replacement takes its slot)."""
        return list(self._counts)

    def over_share(self) -> bool:
        """Whether this worker holds more connections than ``ceil(total / workers)``,
        not counting those already told to close (the total does count them: their
        clients reconnect); when it does, the caller closes one and this counts it as
        closing."""
        if self.slot is None or self.workers < 2:
            return False
        mine = self.held - self.closing
        if mine <= math.ceil(sum(self._counts) / self.workers):
            return False
        self.closing += 1
        return True

    def _publish(self) -> None:
        if self.slot is not None:
            self._counts[self.slot] = self.held

    def close(self) -> None:
        """Release the slot and unmap the table."""
        self._counts.release()
        self._map.close()
        os.close(self._fd)  # drops the slot's lock
        self.slot = None


_table: ConnectionTable | None = None
_loaded = False


def table() -> ConnectionTable | None:
    """This process's :class:`ConnectionTable`, opened on first use from ``$TABLE_ENV``;
    ``None`` when the variable is unset (one worker, tests) or the table is unusable."""
    global _table, _loaded
    if not _loaded:
        _loaded = True
        path = os.environ.get(TABLE_ENV)
        if path:
            try:
                _table = ConnectionTable(path)
            except (OSError, ValueError) as e:
                log.warning("connection balancing off in worker %d: %s", os.getpid(), e)
            else:
                if _table.slot is None:
                    log.warning("connection balancing off in worker %d: no free slot", os.getpid())
    return _table


class ConnectionBalanceMiddleware:
    """Pure ASGI middleware: ``Connection: close`` on a response when this worker holds
    more than its share of the connections (see the module docs); else a pass-through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.table = table()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counter = self.table
        if scope["type"] != "http" or counter is None:
            await self.app(scope, receive, send)
            return

        async def send_balanced(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                closing = any(k == b"connection" for k, _ in headers)
                if not closing and counter.over_share():
                    HTTP_CONNECTIONS_REBALANCED.inc()
                    message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_balanced)
