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
from starlette.routing import Match, Route

from aiweb.errors import AiwebError
from aiweb.serving.oip import ERROR_SCHEMA, OipError, is_oip_path

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
    ``request_id`` and any ``extra`` members. Under ``/v2`` (the Open Inference
    Protocol), the protocol's ``{"error": detail}`` as ``application/json`` instead.
    """
    if is_oip_path(request.url.path):
        return Response(
            orjson.dumps({"error": detail}),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )
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
        status=400 if is_oip_path(request.url.path) else 422,  # the protocol's status
        slug="validation",
        title="Request validation failed",
        detail=f"{where}: {first['msg']}" if where else str(first["msg"]),
        extra={"errors": errors},
    )


async def _oip_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OipError)
    return Response(
        orjson.dumps({"error": exc.detail}), status_code=exc.status, media_type="application/json"
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = _HTTP_TITLES.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; the API is documented at /docs"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the one route it matched; a path served by
        # several routes (GET and DELETE /v1/models/{name}) allows them all
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(
        request,
        status=exc.status_code,
        slug=title.lower().replace(" ", "-"),
        title=title,
        detail=detail,
        headers=headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    log.error("unhandled error in request %s", rid, exc_info=exc)
    # Starlette answers this from its outermost middleware, outside RequestIdMiddleware,
    # so the header is set here. Starlette then re-raises the exception and the server
    # drops the connection: ``Connection: close`` tells a keep-alive client so, instead
    # of letting its next request on the connection fail.
    headers = {"Connection": "close"}
    if rid:
        headers["X-Request-ID"] = rid
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        title="Internal server error",
        detail="the server failed; the request id is in the logs",
        headers=headers,
    )


#: The OpenAPI schema of every error body (``components.schemas.Problem``).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; validation problems add `errors`.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`/problems/<slug>`."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path."},
        "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

_DEFAULT_DESCRIPTIONS = {
    400: "Malformed request framing (e.g. an invalid Content-Length).",
    401: "Missing or invalid API key.",
    403: "The key lacks the scope this route needs.",
    404: "Not found (unknown model, alias, version, job, dataset, item …).",
    409: "Conflicts with the current state (exists already, in use, not cancellable …).",
    413: "The body is over the size limit (AIWEB_LIMITS__MAX_BODY_BYTES) or too many inputs.",
    415: "The body's Content-Type is not application/json (or multipart/form-data).",
    422: "Invalid input: validation failed, or a value no column can hold (NUL, lone "
    "surrogate, NaN/Infinity, integers beyond 64 bits, timestamps out of range).",
    429: "Rate limit exceeded; retry after Retry-After.",
    431: "The request line and headers are over AIWEB_SERVING__MAX_HEADER_BYTES (a URL too "
    "long for the server, e.g. a query parameter repeated thousands of times).",
    503: "Temporarily unavailable; retry after Retry-After.",
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Make an OpenAPI document say what errors really look like (in place).

    Every error response of every operation gets an ``application/problem+json``
    :data:`PROBLEM_SCHEMA` body, and the statuses an operation can answer whatever its
    handler does are listed: 422 (any parameter or body), 404 (path parameters, and
    ``/v1/`` bodies, which name models and datasets), 400 (any request: malformed framing),
    431 (any request: a head over ``AIWEB_SERVING__MAX_HEADER_BYTES``),
    413, 415 (a body), 401, 403, 429 (a scoped route, ``x-required-scope``) and 409
    (``PUT``, ``POST``, ``DELETE`` of a resource).

    Args:
        schema: the document :meth:`fastapi.FastAPI.openapi` built.

    Returns:
        ``schema``.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    oip_error = {"application/json": {"schema": {"$ref": "#/components/schemas/OipError"}}}
    for path, operations in schema.get("paths", {}).items():
        oip = is_oip_path(path)  # the protocol's {"error"} shape
        if oip:
            components["OipError"] = ERROR_SCHEMA
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            params = op.get("parameters", [])
            statuses: set[int] = set()
            if params or "requestBody" in op:
                statuses.add(422)
                if oip:
                    statuses.add(400)
            if any(p.get("in") == "path" for p in params) or (
                "requestBody" in op and path.startswith("/v1/")
            ):
                statuses.add(404)  # a body may name a model, dataset … that is not there
            statuses.add(400)  # malformed framing (Content-Length …), from the server itself
            statuses.add(431)  # a request head over the server's bound (aiweb serve)
            if "requestBody" in op:
                statuses |= {413, 415}
            if "x-required-scope" in op:
                statuses |= {401, 403, 429}
            if method in ("put", "post", "delete") and path.startswith("/v1/"):
                statuses.add(409)
            responses = op["responses"]
            for status in statuses:
                responses.setdefault(str(status), {"description": _DEFAULT_DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = dict(oip_error if oip else problem)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app``, and document them in its OpenAPI
    schema (:func:`document_problems`)."""
    app.add_exception_handler(AiwebError, _aiweb_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OipError, _oip_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
