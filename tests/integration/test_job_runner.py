"""The job state machine on a real database: claims, leases, fencing, retries, recovery."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from aiweb.config import Settings
from aiweb.db.orm import SqlJob, utcnow
from aiweb.errors import ConflictError, InvalidInputError
from aiweb.jobs.context import JobContext
from aiweb.jobs.entities import LeaseLost, TransientJobError
from aiweb.jobs.env import JobEnv, build_job_env
from aiweb.jobs.runner import backoff_s, execute
from aiweb.jobs.types import JobType, JobTypes
from aiweb.tasks import job_types


@pytest.fixture
def env(settings: Settings) -> Iterator[JobEnv]:
    fast = settings.model_copy(
        update={"jobs": settings.jobs.model_copy(update={"lease_s": 2.0, "max_attempts": 3})}
    )
    job_env = build_job_env(fast, migrate=True)
    yield job_env
    job_env.close()


@pytest.fixture
def test_handlers() -> dict[str, Any]:
    """What the handlers of the test job types did."""
    return {"runs": 0}


@pytest.fixture
def types(test_handlers: dict[str, Any]) -> JobTypes:
    """Job types for these tests, installed next to the real ones."""
    calls = test_handlers

    def ok(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        calls["runs"] += 1
        for i in range(5):
            ctx.progress(i / 5, f"step {i}")
        return {"answer": 42}

    def flaky(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        calls["runs"] += 1
        ctx.when_finished(lambda: calls.setdefault("cleaned", []).append(ctx.attempt))
        if ctx.attempt < int(ctx.job.params.get("succeed_on", 99)):
            raise TransientJobError("the service blinked")
        return {"attempt": ctx.attempt}

    def broken(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        raise InvalidInputError("column 'text' is empty on line 3")

    def slow(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        calls["started"] = True
        for i in range(400):
            ctx.progress(i / 400)
            time.sleep(0.01)
        return {}

    tests = [JobType("ok", ok), JobType("flaky", flaky), JobType("broken", broken)]
    return JobTypes([*job_types(), *tests, JobType("slow", slow)])


def make(env: JobEnv, type_: str = "ok", **params: Any) -> str:
    return env.jobs.create(type_, params, submitted_by="tests", max_attempts=3).id


def test_a_job_runs_once_to_success_with_progress(
    env: JobEnv, test_handlers: dict[str, Any], types: JobTypes
) -> None:
    job_id = make(env)
    outcome = execute(env, job_id, "t:1", types)
    assert outcome.kind == "succeeded"
    job = env.jobs.get(job_id)
    assert (job.status, job.progress, job.result, job.attempts) == (
        "succeeded",
        1.0,
        {"answer": 42},
        1,
    )
    assert job.runner == "t:1"
    assert job.started_at is not None
    assert job.finished_at is not None
    # idempotent by job id: a redelivered message does nothing twice
    again = execute(env, job_id, "t:2", types)
    assert again.kind == "skipped"
    assert test_handlers["runs"] == 1


def test_a_slow_handler_import_happens_before_the_claim_not_on_the_lease(
    env: JobEnv, types: JobTypes
) -> None:
    # CI once lost a job this way: the first attempt in a fresh worker imported its
    # handlers (scikit-learn, PyTorch via skops) after claiming, for longer than the
    # lease, with no heartbeat; another runner took the job over, twice, until it failed.
    # execute is handed the job types built, their modules imported: a fresh worker
    # builds them (slowly) before anything claims a job
    lease_s = env.settings.jobs.lease_s

    def slow_import() -> JobTypes:
        time.sleep(2 * lease_s)
        return types

    job_id = make(env)
    outcomes: list[Any] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(execute(env, job_id, "t:slow", slow_import()))
    )
    thread.start()
    time.sleep(lease_s + 0.5)  # the import is still under way, longer than a lease
    assert env.jobs.get(job_id).status == "pending"  # not claimed: no lease to lapse
    thread.join(timeout=30)
    assert [o.kind for o in outcomes] == ["succeeded"]
    assert env.jobs.get(job_id).attempts == 1


def test_only_one_of_many_concurrent_claims_wins(env: JobEnv) -> None:
    job_id = make(env)
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def claim(i: int) -> None:
        barrier.wait()
        if env.jobs.claim(job_id, f"t:{i}", lease_s=60) is not None:
            wins.append(f"t:{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert env.jobs.get(job_id).runner == wins[0]


def test_a_dead_runner_loses_the_job_after_its_lease_and_cannot_write_it(env: JobEnv) -> None:
    job_id = make(env)
    first = env.jobs.claim(job_id, "t:dead", lease_s=2)
    assert first is not None
    assert env.jobs.claim(job_id, "t:new", lease_s=2) is None  # lease still fresh
    with env.engine.begin() as conn:
        conn.execute(update(SqlJob).values(heartbeat_at=utcnow() - timedelta(seconds=5)))
    second = env.jobs.claim(job_id, "t:new", lease_s=2)
    assert second is not None
    assert second.attempts == 2
    # the old attempt is fenced off: it can neither report nor finish
    with pytest.raises(LeaseLost):
        env.jobs.heartbeat(job_id, first.attempts, progress=0.5)
    with pytest.raises(LeaseLost):
        env.jobs.finish(job_id, first.attempts, "succeeded", result={"stale": True})
    env.jobs.finish(job_id, second.attempts, "succeeded", result={"fresh": True})
    assert env.jobs.get(job_id).result == {"fresh": True}


def test_transient_errors_retry_with_backoff_then_succeed(
    env: JobEnv, test_handlers: dict[str, Any], types: JobTypes
) -> None:
    job_id = make(env, "flaky", succeed_on=2)
    first = execute(env, job_id, "t:1", types)
    assert first.kind == "retry"
    assert "cleaned" not in test_handlers  # a retry still needs the job's inputs
    assert first.delay_s == pytest.approx(env.settings.jobs.retry_backoff_s)
    job = env.jobs.get(job_id)
    assert job.status == "pending"
    assert "the service blinked" in (job.error or "")
    assert job.run_after > utcnow() - timedelta(seconds=1)
    time.sleep(first.delay_s + 0.05)
    assert execute(env, job_id, "t:1", types).kind == "succeeded"
    assert env.jobs.get(job_id).result == {"attempt": 2}
    assert test_handlers["cleaned"] == [2]  # once, after success


def test_transient_errors_fail_after_max_attempts(
    env: JobEnv, test_handlers: dict[str, Any], types: JobTypes
) -> None:
    job_id = make(env, "flaky")
    kinds = []
    for _ in range(3):
        outcome = execute(env, job_id, "t:1", types)
        kinds.append(outcome.kind)
        time.sleep(outcome.delay_s + 0.05)
    assert kinds == ["retry", "retry", "failed"]
    assert test_handlers["cleaned"] == [3]  # once, when no attempts are left
    job = env.jobs.get(job_id)
    assert job.status == "failed"
    assert "attempt 3 of 3" in (job.error or "")
    assert execute(env, job_id, "t:1", types).kind == "skipped"


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(a, 5, 30) for a in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]


def test_permanent_errors_fail_at_once(env: JobEnv, types: JobTypes) -> None:
    job_id = make(env, "broken")
    assert execute(env, job_id, "t:1", types).kind == "failed"
    job = env.jobs.get(job_id)
    assert job.attempts == 1
    assert job.error == "column 'text' is empty on line 3"


def test_cancelling_a_running_job_stops_it(env: JobEnv, types: JobTypes) -> None:
    job_id = make(env, "slow")
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(execute(env, job_id, "t:1", types)))
    t.start()
    while env.jobs.get(job_id).status != "running":
        time.sleep(0.01)
    job = env.jobs.cancel(job_id)
    assert job.cancel_requested
    t.join(10)
    assert result[0].kind == "cancelled"
    assert env.jobs.get(job_id).status == "cancelled"
    done = make(env)
    execute(env, done, "t:1", types)
    with pytest.raises(ConflictError):
        env.jobs.cancel(done)


def test_shutdown_puts_a_running_job_back_to_pending(
    env: JobEnv, test_handlers: dict[str, Any], types: JobTypes
) -> None:
    job_id = make(env, "slow")
    stop = threading.Event()
    result: list[Any] = []
    t = threading.Thread(
        target=lambda: result.append(execute(env, job_id, "t:1", types, stop=stop))
    )
    t.start()
    while env.jobs.get(job_id).status != "running":
        time.sleep(0.01)
    stop.set()
    t.join(10)
    assert result[0].kind == "interrupted"
    job = env.jobs.get(job_id)
    assert job.status == "pending"
    assert execute(env, job_id, "t:2", types).kind == "succeeded"


def test_jobs_of_dead_local_processes_are_recovered_at_start(env: JobEnv) -> None:
    import socket

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    host = socket.gethostname()
    orphan = make(env)
    alive = make(env)
    exhausted = make(env)
    assert env.jobs.claim(orphan, f"embedded:{host}:{dead_pid}", lease_s=60)
    assert env.jobs.claim(alive, f"embedded:{host}:1", lease_s=60)  # pid 1 is alive
    with env.engine.begin() as conn:
        conn.execute(update(SqlJob).where(SqlJob.id == exhausted).values(attempts=2))
    assert env.jobs.claim(exhausted, f"embedded:{host}:{dead_pid}", lease_s=60)
    recovered = env.jobs.requeue_dead_local("embedded")
    assert sorted(recovered) == sorted([orphan, exhausted])
    assert env.jobs.get(orphan).status == "pending"
    assert "died" in (env.jobs.get(orphan).error or "")
    assert env.jobs.get(alive).status == "running"
    failed = env.jobs.get(exhausted)
    assert failed.status == "failed"
    assert "no attempts left" in (failed.error or "")


def test_fail_exhausted_gives_the_reason(env: JobEnv) -> None:
    job_id = make(env)
    with env.engine.begin() as conn:
        conn.execute(update(SqlJob).where(SqlJob.id == job_id).values(attempts=2))
    assert env.jobs.claim(job_id, "celery:elsewhere:7", lease_s=2)
    with env.engine.begin() as conn:
        conn.execute(update(SqlJob).values(heartbeat_at=utcnow() - timedelta(seconds=5)))
    assert env.jobs.fail_exhausted(lease_s=2) == [job_id]
    job = env.jobs.get(job_id)
    assert job.status == "failed"
    assert "celery:elsewhere:7" in (job.error or "")
    assert "attempt 3 of 3" in (job.error or "")
