"""``/v1/keys`` and ``/v1/audit`` (admin)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request

from aiweb.api.deps import AuditDep, KeysDep, next_offset
from aiweb.api.problems import request_id
from aiweb.errors import InvalidInputError
from aiweb.names import NAME_REGEX
from aiweb.security.auth import actor, scoped
from aiweb.security.keys import MAX_KEY_LIFETIME, parse_duration
from aiweb.security.schemas import AuditEventOut, AuditPage, KeyCreate, KeyCreated, KeyList, KeyOut

router = APIRouter(prefix="/v1", tags=["security"])


@router.get("/keys", **scoped("admin"))
async def list_keys(keys: KeysDep) -> KeyList:
    """Every API key (never the secrets), with its state."""
    items = await anyio.to_thread.run_sync(keys.list)
    return KeyList(keys=[KeyOut.of(k) for k in items])


@router.post("/keys", status_code=201, **scoped("admin"))
async def create_key(body: KeyCreate, request: Request, keys: KeysDep) -> KeyCreated:
    """Create a key. The answer holds its secret, which is never shown again. A key with
    scope `chat` is publishable (a web page's chat widget shows it): it has that scope
    alone and names its `assistants` and `origins`."""
    expires = parse_duration(body.expires_in) if body.expires_in else None
    if expires is not None and expires > MAX_KEY_LIFETIME:  # 999999w is past year 9999
        raise InvalidInputError(
            f"expires_in {body.expires_in!r} is longer than {MAX_KEY_LIFETIME.days} days"
        )
    key, secret = await anyio.to_thread.run_sync(
        lambda: keys.create(
            body.name,
            list[str](body.scopes),
            expires_in=expires,
            targets=body.assistants,
            origins=body.origins,
            actor=actor(request),
            request_id=request_id(request),
        )
    )
    return KeyCreated(**KeyOut.of(key).model_dump(), secret=secret)


@router.delete("/keys/{name}", **scoped("admin"))
async def revoke_key(
    name: Annotated[str, Path(max_length=63, pattern=NAME_REGEX)],
    request: Request,
    keys: KeysDep,
) -> KeyOut:
    """Revoke a key: it stops working at once in this process, within seconds in others."""
    key = await anyio.to_thread.run_sync(
        lambda: keys.revoke(name, actor=actor(request), request_id=request_id(request))
    )
    return KeyOut.of(key)


@router.get("/audit", **scoped("admin"))
async def audit_log(
    audit: AuditDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPage:
    """Administrative changes, newest first: who (key name), what, when, before/after."""
    events, total = await anyio.to_thread.run_sync(
        lambda: audit.list(limit=limit, offset=offset, action=action)
    )
    return AuditPage(
        events=[AuditEventOut.model_validate(e) for e in events],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=next_offset(offset, len(events), total),
    )
