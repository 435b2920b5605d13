"""All routes of the app."""

from __future__ import annotations

from fastapi import APIRouter

from aiweb.api import health
from aiweb.classification import routes as classification_routes
from aiweb.datasets import routes as dataset_routes
from aiweb.embeddings import routes as embedding_routes
from aiweb.jobs import routes as job_routes
from aiweb.monitoring import routes as monitoring_routes
from aiweb.recommendations import routes as recommendation_routes
from aiweb.registry import routes as registry_routes
from aiweb.search import routes as search_routes
from aiweb.security import routes as security_routes


def build_router() -> APIRouter:
    """The app's router: health probes and ``/v1``."""
    router = APIRouter()
    router.include_router(health.router)
    router.include_router(monitoring_routes.router)
    router.include_router(registry_routes.router)
    router.include_router(classification_routes.router)
    router.include_router(embedding_routes.router)
    router.include_router(security_routes.router)
    router.include_router(dataset_routes.router)
    router.include_router(job_routes.router)
    router.include_router(recommendation_routes.router)
    router.include_router(search_routes.router)
    return router
