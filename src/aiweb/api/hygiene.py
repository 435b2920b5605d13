"""Response hygiene: security headers on every response, and opt-in CORS.

:class:`SecurityHeadersMiddleware` is pure ASGI and never overwrites a header the app
set itself. HTML gets a strict Content-Security-Policy (``'self'`` only, no inline
script or style); the API docs (:mod:`aiweb.api.apidocs`) serve Swagger UI and ReDoc from
vendored files under it, ReDoc's page setting its own policy with a style nonce.

:func:`add_cors` allows exactly the configured origins (``AIWEB_CORS_ORIGINS``); with
none configured no CORS middleware is installed and browsers refuse cross-origin reads.
"""

from __future__ import annotations

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


def content_security_policy(*, style_nonce: str | None = None, blob_workers: bool = False) -> str:
    """The Content-Security-Policy of aiweb's HTML: every source is the app itself.

    Args:
        style_nonce: also allow ``<style>`` elements carrying this nonce (ReDoc's
            styled-components inject their CSS so); a fresh random value per response.
        blob_workers: also allow web workers from ``blob:`` URLs (ReDoc's search index).

    Returns:
        The header value; without arguments :data:`STRICT_CSP`.
    """
    style = "'self'" + (f" 'nonce-{style_nonce}'" if style_nonce else "")
    workers = "worker-src 'self' blob:; " if blob_workers else ""
    return (
        f"default-src 'self'; img-src 'self' data:; style-src {style}; script-src 'self'; "
        f"{workers}object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    )


STRICT_CSP = content_security_policy()
"""Content-Security-Policy of HTML responses (the ones that did not set their own)."""

_STRICT_CSP_BYTES = STRICT_CSP.encode("latin-1")

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
    """Add security headers to every HTTP response, and :data:`STRICT_CSP` to HTML that
    has no Content-Security-Policy of its own.

    Args:
        app: the ASGI app to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

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
                    headers.append((b"content-security-policy", _STRICT_CSP_BYTES))
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
