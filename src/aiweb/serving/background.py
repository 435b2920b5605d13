"""Background re-reads for stale-while-revalidate caches on the serving path.

A request that finds its cached value too old answers with it and starts a re-read
here, instead of awaiting the database itself: awaiting it cost the unlucky request
100-400 ms under load, when the query's thread waited for the GIL behind a busy event
loop (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class BackgroundRefresh:
    """At most one running task per name on the running event loop; failures logged.

    Args:
        what: the owner's name in the log (``"recommendations"``, ``"embedder pool"``).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work()`` as a task unless one named ``name`` is still running. An error
        it raises is logged, never raised to a request."""
        if name in self._tasks:
            return

        async def run() -> None:
            try:
                await work()
            except Exception:
                log.warning("%s: background re-read of %s failed", self.what, name, exc_info=True)
            finally:
                self._tasks.pop(name, None)

        self._tasks[name] = asyncio.get_running_loop().create_task(run())

    def running(self) -> list[str]:
        """Names of the tasks still running."""
        return list(self._tasks)

    async def aclose(self) -> None:
        """Cancel the running tasks and wait for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
