"""``/v1/webhooks`` (admin): signed event deliveries to your URLs (``docs/webhooks.md``).

The server posts to the configured URL itself (only ``http``/``https``): an admin key
can make it reach any address the server can, so give ``admin`` to people you trust
with that.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from aiweb.api.problems import request_id
from aiweb.names import NAME_REGEX
from aiweb.security.audit import AuditLog
from aiweb.security.auth import actor, scoped
from aiweb.webhooks.service import MAX_PATTERNS, MAX_SECRET, MAX_URL, MIN_SECRET, WebhookService

router = APIRouter(prefix="/v1", tags=["webhooks"])

NameParam = Annotated[str, Path(max_length=63, pattern=NAME_REGEX)]
#: what a subscription may list (:data:`aiweb.webhooks.EVENTS` and the family patterns)
EventPattern = Literal[
    "job.finished",
    "drift.detected",
    "model.promoted",
    "job.*",
    "drift.*",
    "model.*",
    "rollout.*",
]
_PORT = r"(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
#: http(s), a host name or IPv4 address, an optional port, then visible ASCII
URL_PATTERN = r"^https?://[A-Za-z0-9.-]+" + _PORT + r"([/?#][!-~]*)?$"


async def _webhooks(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhooks
    return service


WebhooksDep = Annotated[WebhookService, Depends(_webhooks)]


def _admin(responses: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``scoped("admin")`` with more documented responses."""
    spec = scoped("admin")
    spec["responses"] = {**spec["responses"], **responses}
    return spec


_NOT_FOUND = {404: {"description": "No such webhook."}}


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://shop.example.com/aiweb/events",
                    "events": ["job.finished", "model.promoted"],
                    "secret": "whsec_7c1f0b9e4d2a48c3",
                }
            ]
        },
    )

    url: str = Field(
        ...,
        min_length=8,
        max_length=MAX_URL,
        pattern=URL_PATTERN,
        description="http:// or https:// URL posted to (a host name or IPv4 address).",
    )
    events: list[EventPattern] = Field(
        ...,
        min_length=1,
        max_length=MAX_PATTERNS,
        description="job.finished, drift.detected, model.promoted, or <family>.* "
        "(job.*, drift.*, model.*, rollout.*).",
    )
    secret: str = Field(
        ...,
        min_length=MIN_SECRET,
        max_length=MAX_SECRET,
        pattern=r"^[!-~]+$",
        description="Signs every delivery (HMAC-SHA256); never shown again.",
    )


class WebhookOut(BaseModel):
    name: str
    url: str
    events: list[str]
    secret_hint: str = Field(..., description="The secret's last 4 characters, as …abcd.")
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event: str
    status: str = Field(..., description="pending, sent or failed.")
    attempts: int
    response_status: int | None = Field(..., description="HTTP status of the last answer.")
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None = Field(..., description="Next try (pending only).")
    last_attempt_at: datetime | None
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


def _audit(request: Request, action: str, name: str, after: dict[str, Any] | None) -> None:
    audit: AuditLog | None = getattr(request.app.state, "audit", None)
    if audit is not None:
        audit.record(
            actor(request), action, f"webhook:{name}", after=after, request_id=request_id(request)
        )


@router.get("/webhooks", **scoped("admin"))
async def list_webhooks(webhooks: WebhooksDep) -> WebhookList:
    """Every webhook (secrets only as a hint)."""
    items = await anyio.to_thread.run_sync(webhooks.list_webhooks)
    return WebhookList(webhooks=[WebhookOut(**item) for item in items])


@router.put(
    "/webhooks/{name}",
    **_admin(
        {201: {"description": "Created.", "model": WebhookOut}, 200: {"description": "Replaced."}}
    ),
)
async def put_webhook(
    name: NameParam, body: WebhookIn, request: Request, response: Response, webhooks: WebhooksDep
) -> WebhookOut:
    """Create (201) or replace (200) webhook ``name``. 422: the URL is not http(s), an
    unknown event, a secret of fewer than 16 or more than 256 visible ASCII characters."""

    def put() -> WebhookOut:
        item, created = webhooks.put(
            name, body.url, list(body.events), body.secret, actor=actor(request)
        )
        _audit(
            request,
            "webhook.created" if created else "webhook.updated",
            name,
            {"url": item["url"], "events": item["events"]},
        )
        response.status_code = 201 if created else 200
        return WebhookOut(**item)

    return await anyio.to_thread.run_sync(put)


@router.get("/webhooks/{name}", **_admin(_NOT_FOUND))
async def get_webhook(name: NameParam, webhooks: WebhooksDep) -> WebhookOut:
    """Webhook ``name``; 404 when there is none."""
    return WebhookOut(**await anyio.to_thread.run_sync(webhooks.get, name))


@router.delete("/webhooks/{name}", **_admin(_NOT_FOUND))
async def delete_webhook(name: NameParam, request: Request, webhooks: WebhooksDep) -> WebhookOut:
    """Delete webhook ``name`` and its deliveries (pending ones are not sent); 404 when
    there is none."""

    def remove() -> WebhookOut:
        item = webhooks.delete(name)
        _audit(request, "webhook.deleted", name, None)
        return WebhookOut(**item)

    return await anyio.to_thread.run_sync(remove)


@router.get("/webhooks/{name}/deliveries", **_admin(_NOT_FOUND))
async def list_deliveries(
    name: NameParam,
    webhooks: WebhooksDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryList:
    """The newest deliveries of webhook ``name`` (status, tries, last answer and error)."""
    items = await anyio.to_thread.run_sync(lambda: webhooks.deliveries(name, limit=limit))
    return DeliveryList(deliveries=[DeliveryOut(**item) for item in items])
