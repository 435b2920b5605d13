"""The routers of the core resources under ``/v1``: datasets, documents, images, jobs and
schedules, API keys, models (the registry), monitoring and webhooks."""

__all__ = [
    "datasets",
    "documents",
    "images",
    "jobs",
    "keys",
    "models",
    "monitoring",
    "privacy",
    "rollout",
    "webhooks",
]
