"""API shapes of ``/v1/items``, ``/v1/interactions`` and the recommendation routes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiweb.recommendations.store import Interaction, Item

Id = Annotated[str, Field(min_length=1, max_length=255)]
Label = Annotated[str, Field(min_length=1, max_length=100)]

#: the built-in interaction types; any other name matching TYPE_PATTERN is accepted too
TYPES = ("view", "click", "like", "rating", "purchase")
TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,31}$"
MAX_BATCH = 1000


class ItemIn(BaseModel):
    """An item to insert or replace."""

    model_config = ConfigDict(extra="forbid")

    item_id: Id
    title: str = Field("", max_length=1000)
    text: str = Field("", max_length=20_000)
    categories: list[Label] = Field(default_factory=list, max_length=100)
    tags: list[Label] = Field(default_factory=list, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    available: bool = True

    def to_item(self) -> Item:
        return Item(
            item_id=self.item_id,
            title=self.title,
            text=self.text,
            categories=tuple(self.categories),
            tags=tuple(self.tags),
            metadata=self.metadata,
            available=self.available,
        )


class ItemsRequest(BaseModel):
    """``{"items": [...]}``: 1 to 1000 items, upserted by ``item_id``."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(..., min_length=1, max_length=MAX_BATCH)


class ItemsResponse(BaseModel):
    upserted: int = Field(..., description="Distinct items written.")


class InteractionIn(BaseModel):
    """One event. ``timestamp``: Unix seconds or ISO 8601 (UTC when no offset); now when
    omitted."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    type: str = Field(
        ...,
        pattern=TYPE_PATTERN,
        description="view, click, like, rating, purchase, or a custom lower-case name.",
    )
    value: float | None = Field(None, description="e.g. the stars of a rating.")
    timestamp: datetime | None = None
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Your id of the event: a retry with the same id is stored once.",
    )

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value

    def to_interaction(self, now: datetime) -> Interaction:
        when = self.timestamp or now
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return Interaction(
            user_id=self.user_id,
            item_id=self.item_id,
            type=self.type,
            occurred_at=when.astimezone(UTC),
            value=self.value,
            event_id=self.event_id,
        )


class InteractionsRequest(BaseModel):
    """``{"interactions": [...]}``: 1 to 1000 events."""

    model_config = ConfigDict(extra="forbid")

    interactions: list[InteractionIn] = Field(..., min_length=1, max_length=MAX_BATCH)


class InteractionsResponse(BaseModel):
    stored: int = Field(..., description="Events written now.")
    duplicates: int = Field(..., description="Events skipped: their event_id was stored before.")


class Recommended(BaseModel):
    item_id: str
    score: float
    reason: str = Field(
        ..., description="collaborative, similar-to:<item_id> or popular.", examples=["popular"]
    )


class RecommendationsResponse(BaseModel):
    model: str
    version: int
    user_id: str
    items: list[Recommended]


class SimilarResponse(BaseModel):
    model: str
    version: int
    item_id: str
    items: list[Recommended]
