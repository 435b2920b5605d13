"""API shapes of keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiweb.names import NAME_REGEX
from aiweb.security.keys import KEY_LIFETIME_PATTERN, ORIGIN_PATTERN, ApiKey


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "webshop", "scopes": ["predict"]},
                {
                    "name": "site",
                    "scopes": ["chat"],
                    "assistants": ["helpdesk"],
                    "origins": ["https://shop.example"],
                },
            ]
        },
    )

    name: str = Field(
        ..., max_length=63, pattern=NAME_REGEX, description="Unique key name, e.g. `webshop`."
    )
    scopes: list[Literal["predict", "train", "admin", "chat"]] = Field(
        ...,
        min_length=1,
        max_length=4,
        description="Any of predict, train, admin; or chat alone (a publishable key for a "
        "web page, with `assistants` and `origins`).",
    )
    assistants: list[Annotated[str, Field(max_length=63, pattern=NAME_REGEX)]] | None = Field(
        None,
        max_length=100,
        description="A chat key's assistants (required with scope chat, refused otherwise).",
    )
    origins: list[Annotated[str, Field(max_length=270, pattern=ORIGIN_PATTERN)]] | None = Field(
        None,
        max_length=100,
        description="The origins of the pages that may use a chat key, e.g. "
        "`https://shop.example` (required with scope chat, refused otherwise).",
    )
    expires_in: str | None = Field(
        None,
        max_length=16,
        pattern=KEY_LIFETIME_PATTERN,
        description="Lifetime such as `90d`, `12h` (1 to 6 digits and s, m, h, d or w; at "
        "most 100 years: 36525d, 876600h, 5217w); none = never.",
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
    assistants: list[str] = Field([], description="A chat key's assistants (else empty).")
    origins: list[str] = Field([], description="A chat key's origins (else empty).")

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        """The key's public record, with its state as of now (its targets are the
        assistants of a chat key)."""
        record = {k: v for k, v in vars(key).items() if k != "targets"}
        return cls.model_validate({**record, "assistants": key.targets, "state": key.state()})


class KeyCreated(KeyOut):
    secret: str = Field(..., description="The key itself. Shown once: store it now.")


class KeyList(BaseModel):
    keys: list[KeyOut]


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(..., description="Offset of the next page, or null.")
