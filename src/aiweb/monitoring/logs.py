"""Structured logs: one JSON object per line, with the request id, model and version.

``AIWEB_LOG_FORMAT=json`` (``aiweb serve``) writes every log record — aiweb's, uvicorn's,
and the access log of ``--access-log`` — as JSON to stderr::

    {"time": "2026-11-21T05:00:00.123+00:00", "level": "info", "logger": "aiweb.access",
     "message": "POST /v1/models/{name}/predict 200", "request_id": "9f1c…",
     "model": "sentiment", "version": 3, "method": "POST", "route": "…", "status": 200,
     "duration_ms": 1.42}

The request id, model and version come from context variables set by the request-id
middleware and the predict path, so any record logged while serving a request carries
them. ``AIWEB_SENTRY_DSN`` additionally reports errors to Sentry (``pip install
'aiweb[sentry]'``).
"""

from __future__ import annotations

import json
import logging
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiweb import __version__

REQUEST_ID: ContextVar[str | None] = ContextVar("aiweb_request_id", default=None)
MODEL: ContextVar[str | None] = ContextVar("aiweb_model", default=None)
VERSION: ContextVar[int | None] = ContextVar("aiweb_version", default=None)

access_log = logging.getLogger("aiweb.access")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring). Extra fields
    passed with ``logger.info(..., extra={...})`` are included."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("request_id", REQUEST_ID), ("model", MODEL), ("version", VERSION)):
            value = var.get()
            if value is not None:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, default=str, ensure_ascii=False)


def log_config(fmt: str, level: str, access_log_on: bool) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for uvicorn's ``log_config``: aiweb's and
    uvicorn's loggers to stderr, as JSON or as text."""
    formatter: dict[str, Any] = (
        {"()": "aiweb.monitoring.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "aiweb": {"handlers": ["main"], "level": level, "propagate": False},
            "aiweb.access": {
                "handlers": ["main"],
                "level": "INFO" if access_log_on else "WARNING",
                "propagate": False,
            },
            "uvicorn": {"handlers": ["main"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def init_sentry(dsn: str | None, environment: str | None = None) -> bool:
    """Report errors to Sentry when ``dsn`` is set.

    Raises:
        RuntimeError: a DSN is set but sentry-sdk is not installed.
    """
    if not dsn:
        return False
    try:
        import sentry_sdk
    except ImportError as exc:
        raise RuntimeError(
            "AIWEB_SENTRY_DSN is set but sentry-sdk is not installed: pip install 'aiweb[sentry]'"
        ) from exc

    sentry_sdk.init(dsn=dsn, release=f"aiweb@{__version__}", environment=environment)
    return True
