"""The routers of the core resources under ``/v1``: datasets, documents, jobs and
schedules, API keys, models (the registry), monitoring and webhooks."""

__all__ = [
    "datasets",
    "documents",
    "jobs",
    "keys",
    "models",
    "monitoring",
    "privacy",
    "rollout",
    "webhooks",
]
