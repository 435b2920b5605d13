"""RFC 9457 problem details for every error the API returns.

One handler serves the whole :class:`~aiweb.errors.AiwebError` tree (Starlette looks
handlers up along the MRO); validation errors, Starlette's own HTTP errors and any
unexpected exception get the same shape. A 5xx never carries internal detail: it is
logged with the request id instead.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from aiweb.errors import AiwebError

log = logging.getLogger("aiweb.api")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"

_HTTP_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def request_id(request: Request) -> str | None:
    """The request id the middleware assigned (``X-Request-ID``)."""
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid is not None else None


def problem_response(
    request: Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """Build an ``application/problem+json`` response.

    Body: ``type``, ``title``, ``status``, ``detail``, ``instance`` (the request path),
    ``request_id`` and any ``extra`` members.
    """
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id(request),
    }
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


async def _aiweb_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AiwebError)
    if exc.status >= 500 and exc.status != 503:
        log.error("request %s failed: %s", request_id(request), exc.detail)
        detail = "the server failed; the request id is in the logs"
    else:
        detail = exc.detail
    return problem_response(
        request,
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=detail,
        headers=exc.headers,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": _jsonable(list(e.get("loc", ()))),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()[:50]
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return problem_response(
        request,
        status=422,
        slug="validation",
        title="Request validation failed",
        detail=f"{where}: {first['msg']}" if where else str(first["msg"]),
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = _HTTP_TITLES.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; the API is documented at /docs"
    return problem_response(
        request,
        status=exc.status_code,
        slug=title.lower().replace(" ", "-"),
        title=title,
        detail=detail,
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    log.error("unhandled error in request %s", rid, exc_info=exc)
    # Starlette answers this from its outermost middleware, outside RequestIdMiddleware,
    # so the header is set here.
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        title="Internal server error",
        detail="the server failed; the request id is in the logs",
        headers={"X-Request-ID": rid} if rid else None,
    )


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app``."""
    app.add_exception_handler(AiwebError, _aiweb_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
