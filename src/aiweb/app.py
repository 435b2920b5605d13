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
from collections.abc import AsyncIterator

from fastapi import FastAPI

from aiweb import __version__
from aiweb.api import problems
from aiweb.api.hygiene import SecurityHeadersMiddleware, add_cors
from aiweb.api.limits import InputLimitsMiddleware
from aiweb.api.middleware import MetricsMiddleware, RequestIdMiddleware
from aiweb.api.router import api_routers
from aiweb.classification.service import PredictionService
from aiweb.config import Settings, get_settings
from aiweb.dashboard.session import SessionCodec
from aiweb.dashboard.users import UserService
from aiweb.db.migrate import upgrade
from aiweb.db.session import make_session_factory
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.jobs.embedded import EmbeddedRunner
from aiweb.jobs.env import env_from
from aiweb.jobs.service import JobService, make_dispatcher
from aiweb.monitoring.alerts import AlertSender
from aiweb.monitoring.drift import DriftService
from aiweb.monitoring.feedback import FeedbackService
from aiweb.monitoring.logs import init_sentry
from aiweb.monitoring.metrics import JobsCollector, observe_batch, worker_exited
from aiweb.monitoring.prediction_log import PredictionLogger
from aiweb.recommendations.cache import make_recommendation_cache
from aiweb.recommendations.service import RecommendationService
from aiweb.recommendations.store import RecommendationStore
from aiweb.registry.factory import build_registry
from aiweb.registry.loader import ModelLoader
from aiweb.search.service import SearchService
from aiweb.search.store import SearchStore
from aiweb.security.keys import KeyService
from aiweb.security.ratelimit import RateLimiter
from aiweb.security.secrets import resolve_secret_key
from aiweb.serving import balance
from aiweb.serving.cache import make_prediction_cache
from aiweb.serving.gc import tune_after_load
from aiweb.serving.threads import limit_blas_threads

log = logging.getLogger("aiweb")

DESCRIPTION = """
Self-hosted AI features for web applications: classify text with models trained on
your own data, versioned in a registry and served at low latency. Training and batch
scoring run as background jobs (`/v1/jobs`) on uploaded data (`/v1/datasets`).

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) `application/problem+json`.
"""


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """Build the aiweb ASGI app.

    Args:
        settings: configuration; read from the environment when ``None``.
        migrate: run the database migrations at start (``aiweb serve`` runs them once
            before starting several workers, and passes ``False`` to each).
    """
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        init_sentry(settings.sentry_dsn)
        secret_key = resolve_secret_key(settings)
        registry, engine = build_registry(settings)
        if migrate:
            upgrade(engine)
        assert registry.audit is not None
        sessions = make_session_factory(engine)
        rate_limiter = RateLimiter(settings.rate_limit, settings.redis_url)
        # one embedder pool for the embed route, collections and classifiers on MiniLM
        # features: each embedding model version is loaded once per process
        embedders = EmbedderPool(
            registry,
            settings.embeddings,
            on_batch=observe_batch,
            refresh_s=settings.serving.alias_refresh_s,
        )
        loader = ModelLoader(
            registry, settings.serving, on_batch=observe_batch, embedders=embedders
        )
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
        app.state.loader = loader
        app.state.metrics_collectors = [JobsCollector(engine)]
        app.state.prediction_logger = logger
        app.state.feedback = FeedbackService(
            sessions,
            registry.store,
            logger,
            wait_s=2 * settings.prediction_log.flush_interval_s + 0.5,
        )
        alerts = AlertSender(sessions, settings.alert_webhook_url, settings.alerts)
        app.state.drift = DriftService(sessions, registry, alerts=alerts)
        cache = make_prediction_cache(settings.cache, settings.redis_url)
        app.state.predictions = PredictionService(loader, logger, settings, cache)
        job_env = env_from(settings, registry, engine, owns_engine=False)
        runner = None if settings.broker_url else EmbeddedRunner(job_env)
        dispatcher = runner.dispatcher if runner is not None else make_dispatcher(settings)
        app.state.job_env = job_env
        app.state.datasets = job_env.datasets
        app.state.jobs = JobService(job_env.jobs, dispatcher, registry, job_env.datasets, settings)
        app.state.job_runner = runner
        recommendations = RecommendationService(
            RecommendationStore(engine),
            registry,
            settings,
            make_recommendation_cache(settings.cache, settings.redis_url),
        )
        app.state.recommendations = recommendations
        app.state.embedders = embedders
        search = SearchService(
            SearchStore(
                engine,
                pgvector_m=settings.search.pgvector_m,
                pgvector_ef_construction=settings.search.pgvector_ef_construction,
            ),
            embedders,
            registry,
            settings,
            app.state.jobs,
            on_query=observe_batch,
            # the indexes load after start-up: keep them out of full collections too
            on_loaded=lambda: tune_after_load(settings.serving, collect=False),
        )
        app.state.search = search
        restore_blas = limit_blas_threads(settings.serving.blas_threads)
        await loader.refresh()
        await recommendations.warm()
        tune_after_load(settings.serving, collect=True)
        refresher = asyncio.create_task(loader.refresh_forever(settings.serving.alias_refresh_s))
        if runner is not None:
            await asyncio.to_thread(runner.start)
        search.start()
        try:
            yield
        finally:
            if runner is not None:
                await asyncio.to_thread(runner.stop)
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await loader.aclose()
            await recommendations.aclose()
            await embedders.aclose()
            await asyncio.to_thread(search.close)
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
    )
    problems.install(app)
    for router in api_routers():
        app.include_router(router)
    if settings.dashboard.enabled:
        from aiweb.dashboard.routes import install as install_dashboard

        install_dashboard(app)
    # added innermost first: CORS runs first (browsers can read every error), then the
    # metrics (timing everything below), the request id, the security headers, and the
    # input limits next to the app
    app.add_middleware(
        InputLimitsMiddleware,
        max_body_bytes=settings.limits.max_body_bytes,
        max_json_depth=settings.limits.max_json_depth,
        max_upload_bytes=settings.limits.max_upload_bytes,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware)
    if balance.table() is not None:  # several workers (aiweb serve), see serving.balance
        app.add_middleware(balance.ConnectionBalanceMiddleware)
    add_cors(app, settings.cors_origins)
    return app


def app_factory() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings from the environment,
    migrations already run by ``aiweb serve``."""
    return create_app(get_settings(), migrate=False)
