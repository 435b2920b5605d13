"""Response hygiene: security headers on every response, and opt-in CORS.

:class:`SecurityHeadersMiddleware` is pure ASGI and never overwrites a header the app
set itself. HTML gets a strict Content-Security-Policy, except FastAPI's interactive
docs, which load Swagger UI / ReDoc from cdn.jsdelivr.net and run an inline script.

:func:`add_cors` allows exactly the configured origins (``AIWEB_CORS_ORIGINS``); with
none configured no CORS middleware is installed and browsers refuse cross-origin reads.
"""

from __future__ import annotations

from collections.abc import Collection

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
"""Added to every HTTP response that lacks them."""

STRICT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""Content-Security-Policy of HTML responses."""

DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""Content-Security-Policy of FastAPI's Swagger UI / ReDoc pages."""

DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
"""FastAPI's default documentation pages (the OAuth2 redirect page runs inline script)."""

CORS_METHODS = ("GET", "POST", "PUT", "DELETE")
CORS_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "X-Request-ID")
CORS_EXPOSE_HEADERS = (
    "X-Request-ID",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)
"""Response headers a cross-origin script may read (CORS allows no wildcard with names)."""


class SecurityHeadersMiddleware:
    """Add security headers to every HTTP response, and a CSP to HTML.

    Args:
        app: the ASGI app to wrap.
        docs_paths: paths served the relaxed :data:`DOCS_CSP` instead of
            :data:`STRICT_CSP`.
    """

    def __init__(self, app: ASGIApp, *, docs_paths: Collection[str] = DOCS_PATHS) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"] in self.docs_paths else STRICT_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                for name, value in SECURITY_HEADERS:
                    key = name.lower().encode("latin-1")
                    if key not in present:
                        headers.append((key, value.encode("latin-1")))
                content_type = next(
                    (value for key, value in headers if key.lower() == b"content-type"), b""
                )
                if (
                    content_type.split(b";", 1)[0].strip().lower() == b"text/html"
                    and b"content-security-policy" not in present
                ):
                    headers.append((b"content-security-policy", csp.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_cors(app: FastAPI, origins: list[str]) -> None:
    """Allow cross-origin requests from exactly ``origins``; with none, add nothing.

    Args:
        app: the application to add Starlette's ``CORSMiddleware`` to.
        origins: allowed origins (``AIWEB_CORS_ORIGINS``), e.g.
            ``["https://app.example.com"]``.
    """
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=list(CORS_METHODS),
        allow_headers=list(CORS_HEADERS),
        expose_headers=list(CORS_EXPOSE_HEADERS),
    )
