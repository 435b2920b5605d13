"""API shapes of ``/v1/items``, ``/v1/interactions`` and the recommendation routes, and
the bodies of a recommender's training job and retraining schedule."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, field_validator

from aiweb.jobs.schemas import CRON_PATTERN, MODEL_NAME_PATTERN, TIME_ZONES
from aiweb.names import BoundedDatetime
from aiweb.recommendations.store import Interaction, Item, StoredItem

#: no NUL character: PostgreSQL text cannot hold one (a 422 here, not a 500 at the insert)
NO_NUL = r"^[^\x00]*$"
Id = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL)]
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]

#: the built-in interaction types; any other name matching TYPE_PATTERN is accepted too
TYPES = ("view", "click", "like", "rating", "purchase")
TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,31}$"
MAX_BATCH = 1000


class ItemIn(BaseModel):
    """An item to insert or replace."""

    model_config = ConfigDict(extra="forbid")

    item_id: Id
    title: str = Field("", max_length=1000, pattern=NO_NUL)
    text: str = Field("", max_length=20_000, pattern=NO_NUL)
    categories: list[Label] = Field(default_factory=list, max_length=100)
    tags: list[Label] = Field(default_factory=list, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    available: StrictBool = True

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
    value: StrictFloat | None = Field(None, description="e.g. the stars of a rating.")
    timestamp: BoundedDatetime | None = Field(
        None, description="When it happened; years 2 to 9998 once in UTC. Now when omitted."
    )
    event_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=NO_NUL,
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


class ItemOut(BaseModel):
    """A catalogue item as it reads back (``GET /v1/items/{item_id}``, ``GET /v1/items``)."""

    item_id: str
    title: str
    text: str
    categories: list[str]
    tags: list[str]
    metadata: dict[str, Any]
    available: bool = Field(..., description="false: kept out of recommendations.")
    updated_at: datetime = Field(..., description="When it was last written (UTC).")

    @classmethod
    def of(cls, stored: StoredItem) -> ItemOut:
        item = stored.item
        return cls(
            item_id=item.item_id,
            title=item.title,
            text=item.text,
            categories=list(item.categories),
            tags=list(item.tags),
            metadata=item.metadata,
            available=item.available,
            updated_at=stored.updated_at,
        )


class ItemPage(BaseModel):
    """A page of ``GET /v1/items``, in ``item_id`` order."""

    items: list[ItemOut]
    next: str | None = Field(
        ...,
        description="The last item id of this page when more follow (pass it as `after` "
        "for the next page); null on the last page.",
    )


class ItemSummary(BaseModel):
    """What ``?include=item`` adds to a recommended item."""

    item_id: str
    title: str
    categories: list[str]
    metadata: dict[str, Any]
    available: bool


class Because(BaseModel):
    """A history item of the user and how much it adds to a recommended item's score."""

    item_id: str
    weight: float = Field(..., description="Its part of the score, in the score's units.")


class ExplanationPart(BaseModel):
    """One component of a blend (hybrid, or a user who arrived after training)."""

    source: str = Field(..., description="The algorithm, e.g. ease, content, als.")
    weight: float = Field(..., description="Its blend weight.")
    score: float = Field(..., description="Its standardised, weighted share of the score.")


class RecommendationExplanation(BaseModel):
    """How a recommended item's score splits: ``score = base + rest + Σ because.weight``
    (each rounded to 6 decimals)."""

    method: str = Field(
        ...,
        description="ease, als, bpr, content, content-minilm, popularity, hybrid, "
        "item-to-item (a user who arrived after training) or trending (no interactions).",
    )
    exact: bool = Field(
        ...,
        description="The weights are the model's own arithmetic (EASE, content, folded-in "
        "ALS); false for an approximation (ALS's explain of a user's fitted vector).",
    )
    base: float = Field(
        ...,
        description="The part no history item makes: popularity, the offsets of a "
        "standardised blend.",
    )
    rest: float = Field(..., description="The other history items' contributions, summed.")
    parts: list[ExplanationPart] = Field(..., description="A blend's components; else empty.")


class _Scored(BaseModel):
    item_id: str
    score: float
    reason: str = Field(
        ..., description="collaborative, similar-to:<item_id> or popular.", examples=["popular"]
    )
    item: ItemSummary | None = Field(
        None,
        description="Only with `?include=item`: the catalogue item (null when the catalogue "
        "does not hold it: an id seen only in interactions).",
    )


class Recommended(_Scored):
    """A recommended item (``GET /v1/users/{user_id}/recommendations``)."""

    because: list[Because] | None = Field(
        None,
        description="Only with `?explain=true`: the user's history items that add most to "
        "the score (at most 5, positive weights, largest first); empty for popularity, "
        "trending and a known user's BPR vector (see `explanation`).",
    )
    explanation: RecommendationExplanation | None = Field(
        None, description="Only with `?explain=true`: how the score splits."
    )


class SimilarPart(BaseModel):
    """One source of an item-to-item similarity score."""

    source: str = Field(..., description="content (TF-IDF), or ease, als, bpr.")
    similarity: float = Field(
        ..., description="Raw: the TF-IDF cosine, EASE's B weight, or the factors' cosine."
    )
    weight: float = Field(..., description="Its standardised share of the score.")


class SimilarBecause(BaseModel):
    """Why an item is similar: its score is the sum of the parts' weights."""

    source: str = Field(..., description="The part with the larger weight.")
    parts: list[SimilarPart]
    shared_categories: list[str] = Field(..., description="Categories both items have.")


class SimilarItem(_Scored):
    """An item like the one asked about (``GET /v1/items/{item_id}/similar``)."""

    because: SimilarBecause | None = Field(
        None, description="Only with `?explain=true`: the similarity's sources."
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
    items: list[SimilarItem]


# ---- jobs ------------------------------------------------------------------------------------


class RecommendationPromotionRule(BaseModel):
    """Move ``production`` to the new recommender only when it is better, and better than
    the popularity baseline.

    Both versions are scored with the offline protocol (temporal leave-last-5-out) on the
    same split of the data the new version was trained on: the new version as its report
    has it, production by refitting its recipe (algorithms, parameters, blend weights and
    half-lives, from its lineage) on the split's training part; its artifact cannot be
    scored as it is, having been fitted on every interaction, held-out ones included. The
    rule holds when ``new[metric] >= production[metric] + min_delta`` and, with
    ``beat_popularity``, ``new[metric] > popularity[metric]`` on the same split.
    """

    model_config = ConfigDict(extra="forbid")

    metric: Literal["ndcg", "recall", "precision", "map", "hit_rate"] = Field(
        "ndcg", description="An @10 metric of the offline evaluation."
    )
    min_delta: StrictFloat = Field(0.0, ge=-1.0, le=1.0)
    beat_popularity: StrictBool = True


def _algorithm_params(schema: dict[str, Any]) -> None:
    """``params``: an object of algorithm name to its parameters (their names, types and
    ranges, as :func:`aiweb.recommendations.algorithms.catalog.make` checks them)."""
    from aiweb.recommendations.algorithms import catalog

    schema["properties"] = {
        name: catalog.parameters(name).model_json_schema() for name in catalog.ALGORITHMS
    }
    schema["additionalProperties"] = False


class RecommendationTrainData(BaseModel):
    """How a recommender trains: on the items and interactions stored (``POST /v1/items``,
    ``POST /v1/interactions``, ``aiweb import``), with one algorithm or ``auto``."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["recommendation"]
    algorithm: Literal[
        "auto", "hybrid", "als", "bpr", "ease", "content", "content-minilm", "popularity"
    ] = Field(
        "auto",
        description="`auto` compares every algorithm (and a hybrid) and keeps the best on "
        "validation; a named one is compared with the popularity baseline. `content-minilm` "
        "(content-based on sentence embeddings) needs `aiweb embeddings install`; `auto` "
        "includes it when an embedding model is installed.",
    )
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Constructor parameters per algorithm, e.g. {"ease": {"l2": 300}}.',
        json_schema_extra=_algorithm_params,
    )


class RecommendationTrainJobSpec(RecommendationTrainData):
    """``{"type": "train", "task": "recommendation", "model": NAME, "algorithm": "auto"}``."""

    type: Literal["train"]
    model: str = Field(..., pattern=MODEL_NAME_PATTERN, description="Registered model name.")
    alias: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="Point this alias at the new version. A version trained on too little "
        "data to be evaluated is made `production` only this way.",
    )
    promotion: RecommendationPromotionRule | None = Field(
        None, description="Move production only when this rule holds (scheduled retraining)."
    )


class RecommendationScheduleIn(RecommendationTrainData):
    """``PUT /v1/models/{name}/schedule`` for a recommender (``"task": "recommendation"``):
    retrain from the items and interactions stored, promote by the offline metrics."""

    cron: str = Field(
        ...,
        max_length=255,
        description="5-field cron expression, e.g. '0 3 * * *'.",
        examples=["0 3 * * *"],
        json_schema_extra={"pattern": CRON_PATTERN},
    )
    timezone: str = Field(
        "UTC",
        max_length=64,
        description="IANA time zone of the cron.",
        json_schema_extra={"enum": [*TIME_ZONES]},
    )
    promotion: RecommendationPromotionRule = Field(default_factory=RecommendationPromotionRule)
    enabled: StrictBool = True
