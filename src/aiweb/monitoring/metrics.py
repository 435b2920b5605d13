"""Prometheus metrics exposition (``GET /metrics``).

Every Prometheus object aiweb defines lives in this module. For now the endpoint exposes
the client library's process and platform collectors; the request, inference and model
metrics come with the monitoring work.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


def render() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
