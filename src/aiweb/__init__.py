"""aiweb: a self-hosted AI backend for web applications.

Train text classifiers on your own data, version them in a registry and serve them
over a REST API. See the README for the two commands that do everything.
"""

from aiweb._version import __version__

__all__ = [
    "__version__",
    "api",
    "app",
    "assistant",
    "classification",
    "cli",
    "client",
    "config",
    "contract",
    "dashboard",
    "datasets",
    "db",
    "documents",
    "embeddings",
    "entities",
    "errors",
    "images",
    "jobs",
    "monitoring",
    "names",
    "recommendations",
    "registry",
    "rollout",
    "search",
    "security",
    "serving",
    "tabular",
    "tasks",
    "vision",
    "webhooks",
]
