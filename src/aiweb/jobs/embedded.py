"""Jobs inside ``aiweb serve`` when no broker is configured (the embedded default).

A polling thread claims due jobs from the database and runs them on a small thread
pool, with the same :func:`aiweb.jobs.runner.execute` a Celery worker uses; another
timer runs the scheduler tick. At start, jobs left ``running`` by a dead ``aiweb
serve`` process of this host are put back to ``pending`` (or failed when out of
attempts), so a crash costs one attempt, not the job.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from aiweb.jobs.entities import Job
from aiweb.jobs.env import JobEnv
from aiweb.jobs.runner import Outcome, execute
from aiweb.jobs.scheduler import tick
from aiweb.jobs.service import EmbeddedDispatcher
from aiweb.jobs.store import runner_name
from aiweb.jobs.types import JobTypes

log = logging.getLogger("aiweb.jobs")

KIND = "embedded"


class EmbeddedRunner:
    """Runs jobs and the scheduler in this process.

    Args:
        env: where jobs live.
        types: the installed job types (their handlers run the jobs).
        concurrency: jobs run at once (``jobs.concurrency``); 0 runs only the scheduler.
    """

    def __init__(self, env: JobEnv, types: JobTypes, *, concurrency: int | None = None) -> None:
        self.env = env
        self.types = types
        self.settings = env.settings.jobs
        self.concurrency = self.settings.concurrency if concurrency is None else concurrency
        self.name = runner_name(KIND)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: dict[str, Future[Outcome | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.concurrency), thread_name_prefix="aiweb-job"
        )
        self._thread: threading.Thread | None = None
        self.dispatcher = EmbeddedDispatcher(self.wake)

    def wake(self) -> None:
        """Look for work now (a job was just submitted in this process)."""
        self._wake.set()

    def start(self) -> None:
        """Recover this host's orphaned jobs, then start polling."""
        recovered = self.env.jobs.requeue_dead_local(KIND)
        if recovered:
            log.warning("recovered %d job(s) left running by a dead process", len(recovered))
        self._thread = threading.Thread(target=self._loop, name="aiweb-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling; running jobs stop at their next progress step and go back to
        ``pending`` (a job busy in one long step is recovered at the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            futures = list(self._running.values())
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                log.warning("a job did not stop within %.0f s", timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def _loop(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_tick:
                    tick(self.env, self.dispatcher, self.types)
                    next_tick = time.monotonic() + self.settings.scheduler_interval_s
                self._fill()
            except Exception:  # the database may be briefly away: keep polling
                log.warning("job runner poll failed", exc_info=True)
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def _fill(self) -> None:
        free = self.concurrency - self.busy
        if free <= 0:
            return
        due = self.env.jobs.claimable(lease_s=self.settings.lease_s, limit=free * 2)
        for job_id in due:
            if self._stop.is_set() or free <= 0:
                return
            job = self.env.jobs.claim(job_id, self.name, lease_s=self.settings.lease_s)
            if job is None:  # another runner was quicker
                continue
            free -= 1
            with self._lock:
                self._running[job.id] = self._pool.submit(self._run, job.id, job)

    def _run(self, job_id: str, job: Job) -> Outcome | None:
        try:
            outcome = execute(self.env, job_id, self.name, self.types, stop=self._stop, claimed=job)
            log.info("job %s: %s %s", job_id, outcome.kind, outcome.detail)
            return outcome
        except Exception:
            log.exception("job %s: runner error", job_id)
            return None
        finally:
            with self._lock:
                self._running.pop(job_id, None)
            self._wake.set()  # a slot is free
