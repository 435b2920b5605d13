"""Route protection: API key authentication, scope checks and rate limits.

Every ``/v1`` route declares its scope with :func:`scoped`, which adds the dependency
and records the scope in the OpenAPI operation (``x-required-scope``) so tests and docs
can enumerate them. Keys arrive as ``Authorization: Bearer <key>`` or ``X-API-Key``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import Depends, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from aiweb.errors import ForbiddenError, UnauthorizedError
from aiweb.security.keys import PUBLISHABLE_SCOPE, ApiKey, KeyService
from aiweb.security.ratelimit import RateLimiter, RateLimitResult

bearer_scheme = HTTPBearer(auto_error=False, description="An aiweb API key: `aiw_…`.")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="An aiweb API key.")

ANONYMOUS = ApiKey(
    name="anonymous",
    prefix="",
    scopes=("admin",),
    created_by="",
    created_at=datetime(1970, 1, 1, tzinfo=UTC),
    expires_at=None,
    revoked_at=None,
)


def client_address(request: Request) -> str:
    """The peer address (uvicorn applies ``--forwarded-allow-ips`` before this)."""
    return request.client.host if request.client else "unknown"


async def charge(limiter: RateLimiter, identity: str, scope: str) -> RateLimitResult:
    """Charge a request by ``identity`` to the budget of ``scope``; Redis round trips run
    off the event loop.

    Raises:
        RateLimitedError: over budget (429).
    """
    if limiter.uses_redis:
        return await anyio.to_thread.run_sync(limiter.check, identity, scope)
    return limiter.check(identity, scope)


PREAUTHORIZED = "aiweb.preauthorized"
"""Key of ``scope["state"]`` where a middleware that authorized a request before its
body was read (:mod:`aiweb.api.preauth`) leaves its :class:`Authorized`, so that
:func:`require` neither looks the key up nor charges the rate limit a second time."""


@dataclass(frozen=True)
class Authorized:
    """A request let through for ``scope``: by ``key``, charged as ``charged``.

    Attributes:
        scope: the scope checked.
        key: the key that allows it (:data:`ANONYMOUS` with auth disabled).
        charged: the rate-limit charge, whose headers the response carries.
    """

    scope: str
    key: ApiKey
    charged: RateLimitResult


def request_token(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request sends, read as :func:`require` reads it: the credentials of
    ``Authorization: Bearer <key>`` (scheme in any case), else ``X-API-Key``; stripped;
    ``None`` when neither holds one."""
    token: str | None = None
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials:
            token = credentials
    if not token:
        token = x_api_key or None
    return token.strip() if token else None


async def charge_key(limiter: RateLimiter, key: ApiKey, client: str, scope: str) -> RateLimitResult:
    """Charge one request by ``key`` from ``client`` for a route that needs ``scope``: a
    publishable key (every visitor of a site shares it) pays from the ``chat`` budget of
    the client address, per key; any other key from its own budget of ``scope`` (of
    ``predict`` on a publishable key's route).

    Raises:
        RateLimitedError: over budget (429).
    """
    if key.publishable:
        return await charge(limiter, f"chat:{key.name}:{client}", PUBLISHABLE_SCOPE)
    budget = "predict" if scope == PUBLISHABLE_SCOPE else scope
    return await charge(limiter, f"key:{key.name}", budget)


async def authorize(
    state: Any, client: str, token: str | None, scope: str, *, origin: str | None = None
) -> Authorized:
    """Authenticate ``token``, check that it allows ``scope`` (and, for a key that lists
    origins, the request's ``origin``) and charge the request to its rate limit
    (:func:`charge_key`; the client address's ``anonymous`` budget when no valid key is
    sent). With auth disabled the client address is charged for ``scope``.

    Args:
        state: ``app.state`` (``settings``, ``keys``, ``rate_limiter``).
        client: the peer address.
        token: the key sent, if any (:func:`request_token`).
        scope: the scope the route needs.
        origin: the request's ``Origin`` header, if any.

    Returns:
        The key and the rate-limit charge.

    Raises:
        UnauthorizedError: no key, malformed, unknown, revoked or expired (401).
        ForbiddenError: the key lacks ``scope``, or a publishable key is used without an
            ``Origin`` header or from an origin it does not list (403).
        RateLimitedError: over budget (429).
    """
    limiter: RateLimiter = state.rate_limiter
    if not state.settings.auth.enabled:
        result = await charge(limiter, f"ip:{client}", scope)
        return Authorized(scope, ANONYMOUS, result)
    if not token:
        await charge(limiter, f"ip:{client}", "anonymous")
        raise UnauthorizedError(
            "this route needs an API key: send 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>' (create one with `aiweb keys create`)"
        )
    keys: KeyService = state.keys
    try:
        if keys.is_cached(token):  # the hot path: no thread hop, no database
            key = keys.authenticate(token)
        else:
            key = await anyio.to_thread.run_sync(keys.authenticate, token)
    except UnauthorizedError:
        await charge(limiter, f"ip:{client}", "anonymous")
        raise
    if not key.allows(scope):
        raise ForbiddenError(
            f"API key {key.name!r} has scopes {', '.join(key.scopes)}; this route needs {scope!r}"
        )
    key.check_origin(origin)
    return Authorized(scope, key, await charge_key(limiter, key, client, scope))


def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that lets a request through only with a key allowing ``scope``.

    It also counts the request against the key's rate limit for ``scope`` (or the
    client address's ``anonymous`` budget when no valid key is sent) and sets the
    ``RateLimit-*`` headers. A request that :mod:`aiweb.api.preauth` already authorized
    for ``scope`` (before reading its body) is neither looked up nor charged again.

    Raises:
        UnauthorizedError: no key, malformed, unknown, revoked or expired (401).
        ForbiddenError: the key lacks ``scope`` (403).
        RateLimitedError: over budget (429).
    """

    async def dependency(
        request: Request,
        response: Response,
        bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
        header_key: str | None = Depends(header_scheme),
    ) -> ApiKey:
        state = request.app.state
        done = request.scope.get("state", {}).get(PREAUTHORIZED)
        if isinstance(done, Authorized) and done.scope == scope:
            authorized = done
        else:
            token = bearer.credentials if bearer is not None else header_key
            authorized = await authorize(
                state,
                client_address(request),
                token.strip() if token else None,
                scope,
                origin=request.headers.get("origin"),
            )
        if state.rate_limiter.enabled:
            response.headers.update(authorized.charged.headers())
        request.state.principal = authorized.key
        return authorized.key

    dependency.__name__ = f"require_{scope}"
    return dependency


def scoped(scope: str, responses: Mapping[int, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Route keyword arguments that protect a route with ``scope``:
    ``@router.get("/x", **scoped("predict"))``; ``responses`` documents the route's other
    answers (``{404: {"description": …}}``)."""
    return {
        "dependencies": [Depends(require(scope))],
        "openapi_extra": {"x-required-scope": scope},
        "responses": {
            401: {"description": "Missing or invalid API key."},
            403: {"description": f"The key lacks scope {scope!r}."},
            429: {"description": "Rate limit exceeded; retry after Retry-After."},
            **(responses or {}),
        },
    }


def actor(request: Request) -> str:
    """The name of the key making the request (for the audit log)."""
    principal = getattr(request.state, "principal", None)
    return principal.name if isinstance(principal, ApiKey) else "unknown"
