"""The scheduler tick: start due retraining runs, recover lost jobs, and keep house
(retention of logged rows, crash litter).

Celery beat calls :func:`tick` (task ``aiweb.scheduler_tick``) in production; the
embedded runner inside ``aiweb serve`` calls it on its own timer. Ticking from several
processes at once is safe: each due run is taken by one of them only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiweb.db.session import make_session_factory
from aiweb.jobs.entities import Job
from aiweb.jobs.env import JobEnv
from aiweb.jobs.litter import sweep
from aiweb.jobs.schedules import Schedule
from aiweb.jobs.service import CeleryDispatcher, Dispatcher, JobService
from aiweb.jobs.types import JobTypes, Prune
from aiweb.monitoring.alerts import AlertSender
from aiweb.monitoring.drift import DriftService
from aiweb.monitoring.retention import prune_expired
from aiweb.rollout.service import RolloutService
from aiweb.webhooks.service import WebhookService, has_subscribers

log = logging.getLogger("aiweb.jobs")

#: A pending job due for this long with no runner taking it had its message lost.
LOST_PENDING_S = 600.0


def start_run(
    env: JobEnv,
    dispatcher: Dispatcher,
    types: JobTypes,
    schedule: Schedule,
    *,
    actor: str = "scheduler",
) -> Job:
    """Submit the training job of ``schedule`` (with its promotion rule) now.

    Raises:
        BrokerUnavailableError: the job could not be dispatched (none is left behind).
        InvalidInputError: the schedule's dataset or parameters are no longer valid.
    """
    service = JobService(env.jobs, dispatcher, env.registry, env.datasets, env.settings, types)
    # the training spec of the schedule's task (its ``task`` field, or the default one)
    spec = service.scheduled_spec(schedule.model, schedule.training, schedule.promotion)
    job = service.submit(spec, actor=actor)
    env.schedules.set_last_job(schedule.model, job.id)
    return job


def tick(env: JobEnv, dispatcher: Dispatcher, types: JobTypes) -> dict[str, int]:
    """One scheduler round (``types``: the installed job types, which the scheduled
    training jobs are of).

    1. Jobs whose runner died on their last attempt become ``failed``.
    2. With Celery: jobs whose runner died, and pending jobs whose message was lost,
       are dispatched again (the embedded runner finds them by polling).
    3. Every due schedule starts a training job; a failure to start one is logged and
       audited, and the schedule fires again at its next time.
    4. From time to time, drift of the production versions is checked (:func:`check_drift`).
    5. Every ``retention.interval_s`` (per process), rows older than their retention
       window are deleted in batches and crash litter is swept (:func:`housekeeping`).
    6. Due webhook deliveries are posted (:func:`deliver_webhooks`).
    7. Running rollouts are judged: stepped, promoted, held or rolled back
       (:func:`judge_rollouts`).

    Returns:
        Counts: ``{"failed", "redispatched", "scheduled", "drift_checked", "pruned",
        "litter", "webhooks_sent", "rollout_moves"}`` (``pruned``, ``litter``: rows and
        files removed this tick).
    """
    lease_s = env.settings.jobs.lease_s
    counts: dict[str, Any] = {"failed": 0, "redispatched": 0, "scheduled": 0}
    counts["failed"] = len(env.jobs.fail_exhausted(lease_s=lease_s))
    if isinstance(dispatcher, CeleryDispatcher):
        lost = env.jobs.stale_running(lease_s=lease_s) + env.jobs.lost_pending(
            older_than_s=LOST_PENDING_S
        )
        for job_id in lost:
            dispatcher.dispatch(job_id)
        counts["redispatched"] = len(lost)
    for schedule in env.schedules.take_due():
        try:
            job = start_run(env, dispatcher, types, schedule)
        except Exception as exc:
            detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
            log.error("scheduled retraining of %s not started: %s", schedule.model, detail)
            env.registry.record(
                "scheduler",
                "schedule.failed_to_start",
                f"model:{schedule.model}",
                after={"error": detail, "cron": schedule.cron},
            )
            continue
        log.info("scheduled retraining of %s: job %s", schedule.model, job.id)
        counts["scheduled"] += 1
    counts["drift_checked"] = check_drift(env)
    pruned, litter = housekeeping(env, pruners=types.pruners)
    counts["pruned"] = sum(pruned.values())
    counts["litter"] = sum(litter.values())
    counts["webhooks_sent"] = deliver_webhooks(env)
    counts["rollout_moves"] = judge_rollouts(env, types)
    return counts


def judge_rollouts(env: JobEnv, types: JobTypes | None = None) -> int:
    """7. Judge every running rollout's gates and apply the moves
    (:meth:`aiweb.rollout.RolloutService.evaluate`) with the installed tasks' own quality
    metrics (``types.rollout_quality``); a rollback's alert is sent before the tick ends.

    Returns:
        The number of moves made (steps, promotions, holds, rollbacks).
    """
    settings = env.settings
    service = RolloutService(
        make_session_factory(env.engine),
        env.registry,
        settings.rollout,
        alert_url=settings.alert_webhook_url,
        alerts=settings.alerts,
        quality=types.rollout_quality if types is not None else None,
    )
    try:
        return len(service.evaluate())
    except Exception:
        log.exception("rollouts not judged")
        return 0
    finally:
        service.close()


def deliver_webhooks(env: JobEnv) -> int:
    """6. Post the due webhook deliveries, one try each
    (:meth:`aiweb.webhooks.WebhookService.deliver_due`); failures are logged and the
    next tick tries again.

    Returns:
        The number of deliveries sent this round.
    """
    try:
        service = WebhookService(make_session_factory(env.engine), env.settings.webhooks)
        return service.deliver_due()["sent"]
    except Exception:
        log.exception("webhook deliveries failed")
        return 0


def housekeeping(
    env: JobEnv, *, force: bool = False, pruners: Mapping[str, Prune] | None = None
) -> tuple[dict[str, int], dict[str, int]]:
    """5. Every ``retention.interval_s`` in this process (at once when ``force``): delete
    prediction log, feedback and audit rows older than their window
    (:func:`aiweb.monitoring.retention.prune_expired`) and the tasks' own expired rows
    (``pruners``: ``{task: prune}``, counted as ``<task>.<what>``), then sweep crash
    litter (:func:`aiweb.jobs.litter.sweep`). Failures are logged; the next round tries
    again.

    Returns:
        ``({kind: rows deleted}, {kind: litter removed})``; both empty when it was not
        time yet.
    """
    now = time.monotonic()
    last = env.last_run.get("housekeeping")
    if not force and last is not None and now - last < env.settings.retention.interval_s:
        return {}, {}
    env.last_run["housekeeping"] = now
    sessions = make_session_factory(env.engine)
    pruned = prune_expired(sessions, env.settings.retention)
    for task, prune in (pruners or {}).items():
        try:
            for what, count in prune(env).items():
                pruned[f"{task}.{what}"] = int(count)
        except Exception:
            log.warning("retention: pruning %s failed; next round tries again", task, exc_info=True)
    if any(pruned.values()):
        try:
            env.registry.record(
                "scheduler", "retention.pruned", "retention", after={"deleted": pruned}
            )
        except Exception:
            log.warning("could not audit the retention round", exc_info=True)
    litter = sweep(env.settings, sessions, env.datasets.artifacts)
    return pruned, litter


_last_drift_check = 0.0


def check_drift(env: JobEnv, *, force: bool = False) -> int:
    """4. Every ``alerts.drift_check_interval_s`` (per process), compute drift of every
    production version, which alerts through ``AIWEB_ALERT_WEBHOOK_URL`` and the webhooks
    subscribed to ``drift.detected`` (each alert is
    claimed in the database, so several schedulers never send one twice).

    Returns:
        The number of versions checked (0 when it was not time yet or nobody listens).
    """
    global _last_drift_check
    settings = env.settings
    now = time.monotonic()
    if not force and now - _last_drift_check < settings.alerts.drift_check_interval_s:
        return 0
    sessions = make_session_factory(env.engine)
    if not settings.alert_webhook_url and not has_subscribers(sessions, "drift.detected"):
        return 0
    _last_drift_check = now
    alerts = AlertSender(sessions, settings.alert_webhook_url, settings.alerts)
    try:
        results = DriftService(sessions, env.registry, alerts=alerts).check_production(
            settings.alerts.drift_window
        )
    except Exception:
        log.exception("periodic drift check failed")
        return 0
    finally:
        alerts.close()  # wait for the alerts being sent
    return len(results)
