"""API shapes of keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aiweb.security.audit import AuditEvent
from aiweb.security.keys import ApiKey


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "webshop", "scopes": ["predict"]}]},
    )

    name: str = Field(..., max_length=63, description="Unique key name, e.g. `webshop`.")
    scopes: list[str] = Field(
        ..., min_length=1, max_length=3, description="Any of predict, train, admin."
    )
    expires_in: str | None = Field(
        None, max_length=16, description="Lifetime such as `90d`, `12h`; none = never."
    )


class KeyOut(BaseModel):
    name: str
    prefix: str
    scopes: list[str]
    state: str = Field(..., description="active, revoked or expired.")
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            name=key.name,
            prefix=key.prefix,
            scopes=list(key.scopes),
            state=key.state(),
            created_by=key.created_by,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(KeyOut):
    secret: str = Field(..., description="The key itself. Shown once: store it now.")


class KeyList(BaseModel):
    keys: list[KeyOut]


class AuditEventOut(BaseModel):
    id: int
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventOut:
        return cls(
            id=e.id,
            actor=e.actor,
            action=e.action,
            target=e.target,
            before=e.before,
            after=e.after,
            request_id=e.request_id,
            created_at=e.created_at,
        )


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(..., description="Offset of the next page, or null.")
