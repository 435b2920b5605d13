"""Pure-ASGI middleware: authenticate a ``/v1`` (or ``/v2``) request before its body is read.

Route dependencies run after FastAPI has read the request's body (a whole multipart
upload, spooled to disk), and the input limits read a JSON body before any route code;
so without this a client with no key could make the server take in 60 MB only to be
told 401. For a ``/v1`` request that has a body (``Content-Length`` above 0, or
``Transfer-Encoding``) this middleware finds the scope that the route the request will
reach needs (the ``x-required-scope`` that :func:`aiweb.security.auth.scoped` records in
the OpenAPI document) and runs :func:`aiweb.security.auth.authorize`: the key is checked (off the
event loop unless cached), its scope, and its rate limit charged, exactly as the route's
dependency would. A refusal (401, 403 or 429, ``application/problem+json``) is sent with
``Connection: close`` and without a byte of the body read; a request let through carries
its :class:`~aiweb.security.auth.Authorized` in ``scope["state"]``, which the route's
dependency takes instead of looking the key up and charging the budget again.

Requests without a body, outside ``/v1``, to a route without a scope or to no route at
all pass through untouched (their dependency, or the 404/405, answers as before). With
``AIWEB_AUTH__ENABLED=false`` nothing is checked here.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiweb.api.limits import send_problem
from aiweb.errors import AiwebError
from aiweb.security.auth import PREAUTHORIZED, authorize, request_token
from aiweb.serving.oip import is_oip_path

__all__ = ["PreAuthMiddleware", "scope_table"]

log = logging.getLogger(__name__)


_PARAM = re.compile(r"\{[^{}]+\}")


def scope_table(openapi: dict[str, Any]) -> list[tuple[str, re.Pattern[str], str]]:
    """``(method, path pattern, scope)`` of every operation of an OpenAPI document that
    records an ``x-required-scope``, in the document's order (the router's: the first
    route that matches a request is the one that serves it).

    A path parameter ``{name}`` matches one path segment, as Starlette's default
    convertor does.
    """
    table: list[tuple[str, re.Pattern[str], str]] = []
    for path, operations in openapi.get("paths", {}).items():
        parts = _PARAM.split(path)
        pattern = re.compile("[^/]+".join(re.escape(part) for part in parts) + r"\Z")
        for method, operation in operations.items():
            needed = operation.get("x-required-scope") if isinstance(operation, dict) else None
            if isinstance(needed, str):
                table.append((method.upper(), pattern, needed))
    return table


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key == b"transfer-encoding":
            return True
        if key == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


class PreAuthMiddleware:
    """Answer 401/403/429 to a ``/v1`` request with a body before reading the body (see
    the module docs).

    Args:
        app: the ASGI app to guard.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: list[tuple[str, re.Pattern[str], str]] | None = None

    async def _load(self, app: Any) -> None:
        self._table = scope_table(await anyio.to_thread.run_sync(app.openapi))

    def _loading(self, scope: Scope, send: Send) -> Send:
        """``send`` that builds the scope table before telling the server the app has
        started (the OpenAPI document takes about a second to make: not a request's)."""

        async def send_loaded(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete" and self._table is None:
                try:
                    await self._load(scope["app"])
                except Exception:  # the first request with a body tries again
                    log.warning("cannot list the scopes of the routes", exc_info=True)
            await send(message)

        return send_loaded

    async def required_scope(self, scope: Scope) -> str | None:
        """The scope the route a request reaches needs; ``None`` when it records none
        (or there is no such route). The table is built from the app's OpenAPI document
        (FastAPI caches it) on the first request with a body."""
        if self._table is None:
            await self._load(scope["app"])
        assert self._table is not None
        method, path = scope["method"], scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for wanted, pattern, needed in self._table:
            if wanted == method and pattern.match(path):
                return needed
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._loading(scope, send))
            return
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not (path == "/v1" or path.startswith("/v1/") or is_oip_path(path))
            or not _has_body(scope.get("headers", []))
        ):
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        state = getattr(app, "state", None)
        settings = getattr(state, "settings", None)
        if settings is None or not settings.auth.enabled:
            await self.app(scope, receive, send)
            return
        needed = await self.required_scope(scope)
        if needed is None:
            await self.app(scope, receive, send)
            return
        authorization = x_api_key = origin = None
        for key, value in scope.get("headers", []):
            if key == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif key == b"x-api-key" and x_api_key is None:
                x_api_key = value.decode("latin-1")
            elif key == b"origin" and origin is None:
                origin = value.decode("latin-1")
        client = scope.get("client")
        address = client[0] if client else "unknown"
        try:
            authorized = await authorize(
                state, address, request_token(authorization, x_api_key), needed, origin=origin
            )
        except AiwebError as exc:
            await send_problem(
                scope,
                send,
                status=exc.status,
                slug=exc.slug,
                title=exc.title,
                detail=exc.detail,
                # the body stays unread: the connection cannot carry another request
                headers=[*(exc.headers or {}).items(), ("Connection", "close")],
            )
            return
        scope.setdefault("state", {})[PREAUTHORIZED] = authorized
        await self.app(scope, receive, send)
