"""``GET /metrics``: open to loopback clients, otherwise an admin key (configurable)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from aiweb.monitoring.metrics import render
from aiweb.security.auth import bearer_scheme, client_address, header_scheme, require
from aiweb.security.secrets import is_loopback

router = APIRouter(tags=["monitoring"])

_require_admin = require("admin")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        401: {"description": "Not a loopback client, and no valid key."},
        403: {"description": "The key lacks scope 'admin'."},
    },
)
async def metrics(
    request: Request,
    response: Response,
    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    header_key: str | None = Depends(header_scheme),
) -> Response:
    """Prometheus metrics. Loopback clients need no key while
    ``AIWEB_AUTH__METRICS_PUBLIC_ON_LOOPBACK`` is true (the default); everyone else needs
    an ``admin`` key."""
    settings = request.app.state.settings
    if not (settings.auth.metrics_public_on_loopback and is_loopback(client_address(request))):
        await _require_admin(request, response, bearer, header_key)
    body, content_type = render()
    return Response(body, media_type=content_type)
