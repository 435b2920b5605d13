"""The interactive API docs, served offline: Swagger UI at ``/docs``, ReDoc at ``/redoc``.

FastAPI's own pages load both from cdn.jsdelivr.net (and ReDoc's fonts from Google) and
start them with an inline script, so they are blank without internet and need a CSP with
CDN and ``'unsafe-inline'`` exceptions. These pages load the vendored copies in
``api/static/vendor`` (npm ``swagger-ui-dist`` and ``redoc``, pinned, their npm integrity
and file digests in ``vendor/README.md``) and start them from static scripts
(``swagger-init.js``, ``redoc-init.js``) that read their settings from the page:

- ``/docs`` and ``/docs/oauth2-redirect`` run under the strict policy
  (:data:`aiweb.api.hygiene.STRICT_CSP`, added by the security headers middleware);
- ``/redoc`` sets its own: the strict one plus a per-response style nonce (ReDoc's
  styled-components insert ``<style>`` elements, given that nonce) and ``blob:`` workers
  (its search index). It uses the system fonts, no web font.

The files are mounted at ``/static/apidocs``, apart from the dashboard's ``/static``, so
the docs work with the dashboard disabled.
"""

from __future__ import annotations

import html
import json
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from aiweb.api.hygiene import content_security_policy

STATIC_DIR = Path(__file__).parent / "static"
"""The API docs' static files: our start scripts and style, and ``vendor/``."""

STATIC_PATH = "/static/apidocs"
"""Where :data:`STATIC_DIR` is mounted."""

SWAGGER_UI_VERSION = "5.35.0"
"""The vendored ``swagger-ui-dist``."""

REDOC_VERSION = "2.5.4"
"""The vendored ``redoc`` (the 2.x line FastAPI itself links to)."""

VENDOR_FILES = {
    "swagger_js": f"vendor/swagger-ui-bundle-{SWAGGER_UI_VERSION}.js",
    "swagger_css": f"vendor/swagger-ui-{SWAGGER_UI_VERSION}.css",
    "swagger_oauth2_redirect_js": f"vendor/swagger-ui-oauth2-redirect-{SWAGGER_UI_VERSION}.js",
    "redoc_js": f"vendor/redoc.standalone-{REDOC_VERSION}.js",
}
"""The vendored files the pages load, relative to :data:`STATIC_DIR`."""

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
REDOC_PATH = "/redoc"

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
}
"""Swagger UI's settings (FastAPI's defaults); ``swagger-init.js`` adds the presets."""


def install(app: FastAPI) -> None:
    """Serve the API docs pages and their files on ``app``.

    Create the app with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages off), and
    call this before mounting anything at ``/static`` (a mount there would shadow
    ``/static/apidocs``).

    Args:
        app: the application; its ``openapi_url`` is the document the pages show.
    """
    app.mount(STATIC_PATH, StaticFiles(directory=str(STATIC_DIR)), name="apidocs-static")
    if not app.openapi_url:
        return
    openapi_url = app.openapi_url
    title = app.title

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return HTMLResponse(
            swagger_ui_html(
                title=f"{title} - Swagger UI",
                openapi_url=root + openapi_url,
                oauth2_redirect_path=root + OAUTH2_REDIRECT_PATH,
                static=root + STATIC_PATH,
            )
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return HTMLResponse(oauth2_redirect_html(static=_root_path(request) + STATIC_PATH))

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        nonce = secrets.token_urlsafe(18)
        return HTMLResponse(
            redoc_html(
                title=f"{title} - ReDoc",
                openapi_url=root + openapi_url,
                static=root + STATIC_PATH,
                nonce=nonce,
            ),
            headers={
                "Content-Security-Policy": content_security_policy(
                    style_nonce=nonce, blob_workers=True
                ),
                "Cache-Control": "no-store",  # the nonce is new on every response
            },
        )

    app.add_route(DOCS_PATH, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_PATH, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_PATH, redoc, include_in_schema=False)


def swagger_ui_html(*, title: str, openapi_url: str, oauth2_redirect_path: str, static: str) -> str:
    """The Swagger UI page: no inline script, its settings in a JSON data block.

    Args:
        title: the page's title.
        openapi_url: the OpenAPI document's URL.
        oauth2_redirect_path: the path of the OAuth2 redirect page.
        static: the URL prefix of :data:`STATIC_DIR`.
    """
    config = {
        **SWAGGER_UI_PARAMETERS,
        "url": openapi_url,
        "oauth2RedirectPath": oauth2_redirect_path,
    }
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="{_attr(static)}/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{_attr(static)}/{VENDOR_FILES["swagger_css"]}">
<script type="application/json" id="swagger-ui-config">{_json_data(config)}</script>
</head>
<body>
<noscript>Swagger UI needs JavaScript; the OpenAPI document is at
<a href="{_attr(openapi_url)}">{html.escape(openapi_url)}</a>.</noscript>
<div id="swagger-ui"></div>
<script src="{_attr(static)}/{VENDOR_FILES["swagger_js"]}"></script>
<script src="{_attr(static)}/swagger-init.js"></script>
</body>
</html>
"""


def oauth2_redirect_html(*, static: str) -> str:
    """Swagger UI's OAuth2 redirect page, its script the vendored file.

    Args:
        static: the URL prefix of :data:`STATIC_DIR`.
    """
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Swagger UI: OAuth2 Redirect</title>
</head>
<body>
<script src="{_attr(static)}/{VENDOR_FILES["swagger_oauth2_redirect_js"]}"></script>
</body>
</html>
"""


def redoc_html(*, title: str, openapi_url: str, static: str, nonce: str) -> str:
    """The ReDoc page: no inline script or style, no web font.

    Args:
        title: the page's title.
        openapi_url: the OpenAPI document's URL.
        static: the URL prefix of :data:`STATIC_DIR`.
        nonce: the style nonce of this response's CSP, handed to ReDoc.
    """
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="{_attr(static)}/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{_attr(static)}/redoc-page.css">
</head>
<body>
<noscript>ReDoc needs JavaScript; the OpenAPI document is at
<a href="{_attr(openapi_url)}">{html.escape(openapi_url)}</a>.</noscript>
<div id="redoc" data-spec-url="{_attr(openapi_url)}" data-nonce="{_attr(nonce)}"></div>
<script src="{_attr(static)}/redoc-init.js"></script>
<script src="{_attr(static)}/{VENDOR_FILES["redoc_js"]}"></script>
</body>
</html>
"""


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _json_data(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` block (no ``</script>`` in it)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
