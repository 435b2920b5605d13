"""What a running job's handler sees: :class:`JobContext`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from aiweb.jobs.entities import Job, JobCancelled, JobInterrupted, LeaseLost

log = logging.getLogger("aiweb.jobs")


class JobContext:
    """What a handler sees of its job: parameters, progress, a scratch directory.

    Progress is kept in memory and written by the heartbeat thread (at most twice a
    second), so reporting it is cheap enough to call per chunk.

    Attributes:
        job: the job as claimed (``job.attempts`` is this attempt).
        workdir: a scratch directory, removed after the attempt.
    """

    def __init__(self, job: Job, workdir: Path, stop: threading.Event) -> None:
        self.job = job
        self.workdir = workdir
        self._stop = stop
        self._lock = threading.Lock()
        self._progress = 0.0
        self._message = "started"
        self._dirty = True
        self.cancel_requested = False
        self.lease_lost = False
        self.cleanups: list[Callable[[], None]] = []

    def when_finished(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` once the job is finished for good (succeeded, failed or
        cancelled, recorded in the database), not when this attempt is retried or
        interrupted: what a retry still needs (an input file) is removed only then.
        A cleanup that raises is logged and ignored."""
        self.cleanups.append(cleanup)

    def run_cleanups(self) -> None:
        """Run the :meth:`when_finished` callbacks (the runner calls this)."""
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception:
                log.exception("job %s: a cleanup failed", self.job.id)

    @property
    def attempt(self) -> int:
        return self.job.attempts

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report ``fraction`` (0 to 1) done, with what is happening now.

        Raises:
            JobCancelled: a cancellation was requested.
            LeaseLost: another runner took the job over.
            JobInterrupted: this process is shutting down.
        """
        with self._lock:
            self._progress = min(1.0, max(0.0, fraction))
            if message is not None:
                self._message = message
            self._dirty = True
        self.check()

    def check(self) -> None:
        """Raise if the job must stop now (see :meth:`progress`).

        Cheap (no I/O: the heartbeat thread reads the cancellation flag from the database
        with each beat, every 0.5 s while progress changes), so long loops call it, or
        :meth:`progress`, once per iteration (a task's iterative fits do, from their
        progress callbacks)."""
        if self.lease_lost:
            raise LeaseLost(f"job {self.job.id} was taken over by another runner")
        if self.cancel_requested:
            raise JobCancelled(f"job {self.job.id} was cancelled")
        if self._stop.is_set():
            raise JobInterrupted(f"job {self.job.id} interrupted by shutdown")

    def snapshot(self) -> tuple[float, str, bool]:
        """``(progress, message, changed since the last snapshot)``."""
        with self._lock:
            dirty, self._dirty = self._dirty, False
            return self._progress, self._message, dirty
