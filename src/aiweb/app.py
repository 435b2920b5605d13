"""The FastAPI application factory.

``create_app(settings)`` builds nothing at import time: the lifespan opens the database
(migrating it when asked), loads and warms every aliased model version, starts the
prediction-log writer and the alias refresher, and undoes all of it on shutdown
(flushing the prediction log, so a clean stop loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from functools import partial
from typing import Any

from fastapi import FastAPI, Request

from aiweb import __version__
from aiweb.api import apidocs, openapi_facts, problems, queries
from aiweb.api.hygiene import SecurityHeadersMiddleware, add_cors
from aiweb.api.limits import InputLimitsMiddleware
from aiweb.api.middleware import MetricsMiddleware, RequestIdMiddleware
from aiweb.api.oip import OipService
from aiweb.api.oip import router as oip_router
from aiweb.api.preauth import PreAuthMiddleware
from aiweb.api.predict import (
    PREDICT_PATH,
    ExplainTarget,
    FileBody,
    ModelRouter,
    PredictTarget,
    predict_router,
)
from aiweb.api.router import core_routers
from aiweb.api.routes import documents as document_routes
from aiweb.api.routes import images as image_routes
from aiweb.api.routes import jobs as job_routes
from aiweb.api.routes import webhooks as webhook_routes
from aiweb.config import Settings, get_settings
from aiweb.contract import FileInput, Readiness, Task, TaskContext, TaskRuntime
from aiweb.dashboard.routes import FILE_FORM_PATHS
from aiweb.dashboard.routes import install as install_dashboard
from aiweb.dashboard.session import SessionCodec
from aiweb.dashboard.users import UserService
from aiweb.db.migrate import upgrade
from aiweb.db.session import make_session_factory
from aiweb.documents.service import DocumentService
from aiweb.images.service import ImageService
from aiweb.jobs.celery_app import make_dispatcher
from aiweb.jobs.embedded import EmbeddedRunner
from aiweb.jobs.env import env_from
from aiweb.jobs.litter import sweep as sweep_litter
from aiweb.jobs.service import JobService
from aiweb.jobs.types import JobTypes
from aiweb.monitoring.alerts import AlertSender
from aiweb.monitoring.drift import DriftService
from aiweb.monitoring.feedback import FeedbackService
from aiweb.monitoring.logs import init_sentry
from aiweb.monitoring.metrics import JobsCollector, observe_batch, worker_exited
from aiweb.monitoring.prediction_log import PredictionLogger
from aiweb.registry.factory import build_registry
from aiweb.rollout.guard import guard_registry
from aiweb.rollout.router import RolloutRouter
from aiweb.rollout.service import RolloutService
from aiweb.security.keys import KeyService
from aiweb.security.ratelimit import RateLimiter
from aiweb.security.secrets import resolve_secret_key
from aiweb.serving import balance
from aiweb.serving.cache import make_prediction_cache
from aiweb.serving.gc import limit_malloc_arenas, tune_after_load
from aiweb.serving.threads import limit_blas_threads
from aiweb.tasks import installed, pruners, rollout_quality
from aiweb.tasks import job_types as all_job_types
from aiweb.webhooks.service import WebhookService

log = logging.getLogger("aiweb")

DESCRIPTION = """
Self-hosted AI features for web applications: classify text with models trained on
your own data, versioned in a registry and served at low latency. Training and batch
scoring run as background jobs (`/v1/jobs`) on uploaded data (`/v1/datasets`).

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) `application/problem+json`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    migrate: bool = True,
    tasks: Sequence[Task] | None = None,
) -> FastAPI:
    """Build the aiweb ASGI app.

    Args:
        settings: configuration; read from the environment when ``None``.
        migrate: run the database migrations at start (``aiweb serve`` runs them once
            before starting several workers, and passes ``False`` to each).
        tasks: the tasks to serve; :func:`aiweb.tasks.installed` when ``None``.
    """
    settings = settings or get_settings()
    tasks = tuple(installed() if tasks is None else tasks)
    # theirs and the core's (privacy-erase), with the metrics rollouts are judged on
    job_types = JobTypes(all_job_types(tasks), rollout_quality(tasks), pruners(tasks))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        init_sentry(settings.sentry_dsn)
        limit_malloc_arenas(settings.serving.malloc_arenas)  # before the serving threads
        secret_key = resolve_secret_key(settings)
        registry, engine = build_registry(settings)
        guard_registry(registry)  # no deletion of what a running rollout serves
        for task in tasks:  # nor of what a task is built on (an assistant's models)
            if task.deletion_guard is not None:
                registry.guard_deletions(task.deletion_guard)
        if migrate:
            upgrade(engine)
        assert registry.audit is not None
        sessions = make_session_factory(engine)
        rate_limiter = RateLimiter(settings.rate_limit, settings.redis_url)
        logger = PredictionLogger(
            engine,
            flush_interval_s=settings.prediction_log.flush_interval_s,
            max_batch_rows=settings.prediction_log.max_batch_rows,
            max_queue_rows=settings.prediction_log.max_queue_rows,
        )
        logger.start()
        app.state.settings = settings
        app.state.secret_key = secret_key
        app.state.engine = engine
        app.state.audit = registry.audit
        app.state.keys = KeyService(sessions, registry.audit)
        app.state.dashboard_db = sessions
        app.state.dashboard_users = UserService(sessions, registry.audit)
        app.state.dashboard_sessions = SessionCodec(
            secret_key, settings.dashboard.session_max_age_s
        )
        app.state.rate_limiter = rate_limiter
        app.state.registry = registry
        app.state.metrics_collectors = [JobsCollector(engine)]
        app.state.prediction_logger = logger
        app.state.feedback = FeedbackService(
            sessions,
            registry.store,
            logger,
            wait_s=2 * settings.prediction_log.flush_interval_s + 0.5,
            max_waiters=settings.prediction_log.feedback_max_waiters,
            span_labels={
                mt: t.span_label for t in tasks if t.span_label is not None for mt in t.model_tasks
            },
        )
        app.state.webhooks = WebhookService(sessions, settings.webhooks)
        alerts = AlertSender(sessions, settings.alert_webhook_url, settings.alerts)
        app.state.drift = DriftService(sessions, registry, alerts=alerts)
        app.state.rollouts = RolloutService(
            sessions,
            registry,
            settings.rollout,
            alert_url=settings.alert_webhook_url,
            alerts=settings.alerts,
            quality=job_types.rollout_quality,
        )
        rollout_router = RolloutRouter(app.state.rollouts, settings.rollout)
        app.state.rollout_router = rollout_router
        cache = make_prediction_cache(settings.cache, settings.redis_url)
        job_env = env_from(settings, registry, engine, owns_engine=False)
        # what a killed process left (upload scratch copies, dataset files with no row,
        # scratch directories of finished jobs); the scheduler tick sweeps again later
        await asyncio.to_thread(sweep_litter, settings, sessions, registry.artifacts)
        runner = None if settings.broker_url else EmbeddedRunner(job_env, job_types)
        dispatcher = runner.dispatcher if runner is not None else make_dispatcher(settings)
        app.state.job_env = job_env
        app.state.datasets = job_env.datasets
        app.state.documents = DocumentService(
            sessions, registry.artifacts, settings, registry.audit
        )
        app.state.images = ImageService(sessions, registry.artifacts, settings, registry.audit)
        app.state.jobs = JobService(
            job_env.jobs, dispatcher, registry, job_env.datasets, settings, job_types
        )
        app.state.job_runner = runner
        context = TaskContext(
            settings=settings,
            engine=engine,
            registry=registry,
            jobs=app.state.jobs,
            prediction_log=logger,
            prediction_cache=cache,
            on_batch=observe_batch,
            images=app.state.images,
        )
        runtimes: list[TaskRuntime] = []
        for task in tasks:
            if task.start is not None:
                runtime = await task.start(context)
                runtimes.append(runtime)
                for attribute, value in runtime.state.items():
                    setattr(app.state, attribute, value)
        app.state.model_router = ModelRouter(
            registry,
            _predict_targets(tasks, runtimes_by_task(tasks, runtimes)),
            {mt: t.use_instead for t in tasks if t.use_instead for mt in t.model_tasks},
        )
        app.state.readiness = partial(_readiness, runtimes)
        by_task = runtimes_by_task(tasks, runtimes)
        app.state.oip = OipService(  # the Open Inference Protocol (/v2)
            registry,
            {
                model_task: started.v2
                for task in tasks
                if (started := by_task.get(task.name)) is not None and started.v2 is not None
                for model_task in task.model_tasks
            },
            metadata_ttl_s=settings.serving.alias_refresh_s,
        )
        restore_blas = limit_blas_threads(settings.serving.blas_threads)
        for runtime in runtimes:
            if runtime.started is not None:
                await runtime.started()
        tune_after_load(settings.serving, collect=True)
        if runner is not None:
            await asyncio.to_thread(runner.start)
        rollout_refresher = asyncio.create_task(
            rollout_router.run(registry.alias_moved, app.state.model_router.preload)
        )
        try:
            yield
        finally:
            rollout_refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rollout_refresher
            await rollout_router.close()
            app.state.rollouts.close()
            if runner is not None:
                await asyncio.to_thread(runner.stop)
            for runtime in reversed(runtimes):
                if runtime.close is not None:
                    await runtime.close()
            if cache is not None:
                await cache.aclose()
            logger.close()
            alerts.close()
            rate_limiter.close()
            engine.dispose()
            restore_blas()
            worker_exited()

    app = FastAPI(
        title="aiweb",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: apidocs.install, from vendored files
        redoc_url=None,
    )
    problems.install(app)
    openapi_facts.install(app, settings)  # NUL, 64-bit integers, setting bounds
    queries.install(app)  # a one-value query parameter given twice: 422
    variants = [(t.predict.request, t.predict.response) for t in tasks if t.predict is not None]
    explained = [(t.explain.request, t.explain.response) for t in tasks if t.explain is not None]
    routers = [
        *core_routers(),
        predict_router(variants, _model_router, explained),
        oip_router,
        *(router for task in tasks for router in task.routers),
        job_routes.router(job_types),
        webhook_routes.router,
        document_routes.router,
        image_routes.router,
    ]
    for router in routers:
        app.include_router(router)
    apidocs.install(app)  # before the dashboard's /static mount
    if settings.dashboard.enabled:
        install_dashboard(app)
    # added innermost first: CORS runs first (browsers can read every error), then the
    # metrics (timing everything below), the request id, the security headers, the key
    # check of requests with a body (before any of it is read), and the input limits
    # next to the app
    app.add_middleware(
        InputLimitsMiddleware,
        max_body_bytes=settings.limits.max_body_bytes,
        max_json_depth=settings.limits.max_json_depth,
        max_upload_bytes=settings.limits.max_upload_bytes,
        file_form_paths=FILE_FORM_PATHS,
        max_image_bytes=settings.limits.max_image_bytes,
        image_body_paths=(*image_routes.RAW_BODY_PATHS, PREDICT_PATH),
    )
    app.add_middleware(PreAuthMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware)
    if balance.table() is not None:  # several workers (aiweb serve), see serving.balance
        app.add_middleware(balance.ConnectionBalanceMiddleware)
    add_cors(app, settings.cors_origins)
    return app


def runtimes_by_task(
    tasks: Sequence[Task], runtimes: Sequence[TaskRuntime]
) -> dict[str, TaskRuntime]:
    """``{task name: its runtime}`` of the tasks that have a ``start``, in list order."""
    started = [task for task in tasks if task.start is not None]
    return {task.name: runtime for task, runtime in zip(started, runtimes, strict=True)}


def _predict_targets(
    tasks: Sequence[Task], runtimes: Mapping[str, TaskRuntime]
) -> dict[str, PredictTarget]:
    targets: dict[str, PredictTarget] = {}
    for task in tasks:
        runtime = runtimes.get(task.name)
        if task.predict is None or runtime is None or runtime.predictor is None:
            continue
        explain = None
        if task.explain is not None and runtime.explainer is not None:
            explain = ExplainTarget(task.explain.request, task.explain.response, runtime.explainer)
        for model_task in task.model_tasks:
            targets[model_task] = PredictTarget(
                task.predict.request,
                task.predict.response,
                runtime.predictor,
                explain,
                task.predict.compare,
                runtime.preload,
                _file_body(task.predict.file),
                task.predict.renders if runtime.renderer is not None else (),
                runtime.renderer,
            )
    return targets


def _file_body(file: FileInput | None) -> FileBody | None:
    if file is None:
        return None
    return FileBody(file.media_types, file.field, file.to_request)


def _model_router(request: Request) -> ModelRouter:
    router: ModelRouter = request.app.state.model_router
    return router


def _readiness(runtimes: Sequence[TaskRuntime]) -> dict[str, Any]:
    """``/readyz``: ready when every task that has a say is; the loaded versions and the
    failed aliases of them all."""
    parts: list[Readiness] = [r.readiness() for r in runtimes if r.readiness is not None]
    return {
        "ready": all(part.ready for part in parts),
        "loaded": [name for part in parts for name in part.loaded],
        "failed": {alias: why for part in parts for alias, why in part.failed.items()},
    }


def app_factory() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings from the environment,
    migrations already run by ``aiweb serve``."""
    return create_app(get_settings(), migrate=False)
