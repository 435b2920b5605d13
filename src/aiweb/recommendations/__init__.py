"""Recommendations: items and interactions in, personalised top-N out (task ``recommendation``)."""

__all__ = [
    "algorithms",
    "cache",
    "data",
    "evaluation",
    "explain",
    "importing",
    "jobs",
    "model",
    "orm",
    "rollout",
    "routes",
    "schemas",
    "service",
    "store",
    "task",
    "training",
]
