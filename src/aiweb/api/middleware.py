"""Pure-ASGI middleware: the request id (``X-Request-ID``) on every request and response,
and the HTTP request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiweb.monitoring.logs import REQUEST_ID, access_log
from aiweb.monitoring.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Accept a well-formed ``X-Request-ID`` from the client or make one; echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_ID.fullmatch(candidate):
                    rid = candidate
                break
        rid = rid or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        # not reset afterwards: each request runs in its own task, and the access log
        # (written by the metrics middleware around this one) still needs it
        REQUEST_ID.set(rid)
        raw = rid.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", raw))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class MetricsMiddleware:
    """Count and time every HTTP request by route template, method and status, and
    write the access log (logger ``aiweb.access``, on with ``aiweb serve --access-log``).

    The route label is the matched route's template (``/v1/models/{name}/predict``), never
    the raw path, so label cardinality stays bounded; a path no route matches is
    ``unmatched``. A request whose client disconnects before a response starts counts as
    status ``499`` (nginx's convention).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 499

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception:
            status = 500
            raise
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            labels = (template, scope.get("method", ""), str(status))
            seconds = time.perf_counter() - started
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_REQUEST_DURATION.labels(*labels).observe(seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s",
                    labels[1],
                    template,
                    status,
                    extra={
                        "method": labels[1],
                        "route": template,
                        "path": scope.get("path", ""),
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )
