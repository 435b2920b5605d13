"""``/v1/items`` (write, read, list), ``/v1/interactions``,
``/v1/users/{user_id}/recommendations`` and ``/v1/items/{item_id}/similar``.

Mount with ``app.include_router(router)``; the service is the one the app's lifespan put
on ``app.state.recommendations``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from aiweb.db.orm import utcnow
from aiweb.errors import ConflictError, ModelNotFound
from aiweb.names import REF_REGEX
from aiweb.recommendations.rollout import log_served
from aiweb.recommendations.schemas import (
    InteractionsRequest,
    InteractionsResponse,
    ItemOut,
    ItemPage,
    ItemsRequest,
    ItemsResponse,
    Recommended,
    SimilarItem,
)
from aiweb.recommendations.service import MAX_N, MAX_PAGE, RecommendationService
from aiweb.recommendations.training import TASK
from aiweb.registry.entities import PRODUCTION
from aiweb.registry.service import RegistryService
from aiweb.rollout.router import RolloutRouter
from aiweb.security.auth import scoped

router = APIRouter(prefix="/v1", tags=["recommendations"])
log = logging.getLogger("aiweb.recommendations")


_LOGGING: set[asyncio.Task[None]] = set()


def _log_served(service: RecommendationService, body: dict[str, Any], user_id: str) -> None:
    """Log a list served under a rollout, off the request path."""
    items = [item["item_id"] for item in body["items"]]

    async def write() -> None:
        try:
            await anyio.to_thread.run_sync(
                lambda: log_served(
                    service.store.sessions, body["model"], body["version"], user_id, items, utcnow()
                )
            )
        except Exception:
            log.warning("served list of %s not logged", body["model"], exc_info=True)

    task = asyncio.get_running_loop().create_task(write())
    _LOGGING.add(task)
    task.add_done_callback(_LOGGING.discard)


async def _service(request: Request) -> RecommendationService:
    service: RecommendationService = request.app.state.recommendations
    return service


ServiceDep = Annotated[RecommendationService, Depends(_service)]
_ModelQuery = Query(
    description="`movies`, `movies@staging` or `movies:3`.",
    min_length=1,
    max_length=80,
    pattern=REF_REGEX,
)
_SimilarModelQuery = Query(
    description="`movies`, `movies@staging` or `movies:3`; optional when a single "
    "recommendation model has a production version.",
    min_length=1,
    max_length=80,
    pattern=REF_REGEX,
)
_N = Query(ge=1, le=MAX_N, description="How many items.")
#: ids and categories are stored as text, and PostgreSQL text cannot hold NUL: such an
#: id can name nothing, and is refused (422) before it reaches a query
_NO_NUL = r"^[^\x00]*$"
_ITEM_ID = Path(min_length=1, max_length=255, pattern=_NO_NUL)
_USER_ID = Path(min_length=1, max_length=255, pattern=_NO_NUL)
_CATEGORY = Query(min_length=1, max_length=100, pattern=_NO_NUL, description="Only this category.")
_INCLUDE = Query(
    description="`item`: add each item's `item` object (`item_id`, `title`, `categories`, "
    "`metadata`, `available`; null when the catalogue does not hold it)."
)
_EXPLAIN = Query(
    description="`true`: add why each item is there (`because`; see docs/recommendations.md, "
    "'Why this recommendation'). Nothing is computed for it otherwise."
)


def _items(body: dict[str, Any], response: Response) -> Response:
    """The answer is the list ``[{"item_id", "score", "reason"}]`` (serialised with orjson,
    as the predict route does); which model version made it travels in the ``X-Model`` and
    ``X-Model-Version`` headers."""
    out = Response(orjson.dumps(body["items"]), media_type="application/json")
    out.headers.raw.extend(response.headers.raw)  # RateLimit-* set by the auth dependency
    out.headers["X-Model"] = str(body["model"])
    out.headers["X-Model-Version"] = str(body["version"])
    return out


def _default_model(request: Request) -> str:
    """The one recommendation model with a production version, for routes whose
    ``model`` is optional.

    Raises:
        ModelNotFound: none (404: there is no model to use yet).
        ConflictError: several (409: which one is ambiguous; ``model`` must be given).
    """
    registry: RegistryService = request.app.state.registry
    names = [m.name for m in registry.list_models() if m.task == TASK and PRODUCTION in m.aliases]
    if len(names) == 1:
        return names[0]
    if not names:
        raise ModelNotFound(
            "no recommendation model has a production version yet: train one with "
            "`aiweb train recommendation NAME`, or name one with ?model="
        )
    raise ConflictError(
        f"several recommendation models ({', '.join(sorted(names))}): choose one with ?model="
    )


_TRAIN = scoped("train")
_PREDICT = scoped("predict")
_NOT_FOUND = {404: {"description": "Unknown model, alias, version or item."}}


@router.post("/items", response_model=ItemsResponse, **_TRAIN)
async def upsert_items(body: ItemsRequest, service: ServiceDep) -> ItemsResponse:
    """Insert or replace 1 to 1000 catalogue items (by ``item_id``). Stored when the
    response is 2xx. ``available: false`` keeps an item out of recommendations."""
    count = await service.upsert_items([i.to_item() for i in body.items])
    return ItemsResponse(upserted=count)


@router.get("/items", response_model=ItemPage, **_PREDICT)
async def list_items(
    service: ServiceDep,
    after: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            pattern=_NO_NUL,
            description="List the items after this id: the `next` of the previous page.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = 50,
    category: Annotated[str | None, _CATEGORY] = None,
) -> ItemPage:
    """The catalogue, a page at a time, in ``item_id`` order (stable: keyset pagination on
    the id, so a page is one index range scan however deep it is). Lists every item
    upserted and not deleted; one hidden with ``available: false`` is listed, its
    ``available`` false. ``next`` is the last id of the page while more follow: pass it as
    ``after``; it is null on the last page."""
    items, cursor = await service.list_items(after=after, limit=limit, category=category)
    return ItemPage(items=[ItemOut.of(i) for i in items], next=cursor)


@router.get(
    "/items/{item_id}",
    response_model=ItemOut,
    **{**_PREDICT, "responses": {**_PREDICT["responses"], **_NOT_FOUND}},
)
async def get_item(item_id: Annotated[str, _ITEM_ID], service: ServiceDep) -> ItemOut:
    """One catalogue item as it was last upserted, with ``available`` and ``updated_at``.
    404 for an id never upserted or deleted."""
    return ItemOut.of(await service.item(item_id))


@router.delete(
    "/items/{item_id}",
    status_code=204,
    **{**_TRAIN, "responses": {**_TRAIN["responses"], **_NOT_FOUND}},
)
async def delete_item(item_id: Annotated[str, _ITEM_ID], service: ServiceDep) -> Response:
    """Remove an item from the catalogue: it is no longer recommended (its interactions
    are kept for training)."""
    await service.delete_item(item_id)
    return Response(status_code=204)


@router.post("/interactions", response_model=InteractionsResponse, **_PREDICT)
async def add_interactions(body: InteractionsRequest, service: ServiceDep) -> InteractionsResponse:
    """Record 1 to 1000 events (``view``, ``click``, ``like``, ``rating``, ``purchase`` or a
    custom type). Stored when the response is 2xx; an event whose ``event_id`` was stored
    before is skipped, so retries are safe. The users' next recommendations reflect them."""
    now = utcnow()
    stored, duplicates = await service.add_interactions(
        [e.to_interaction(now) for e in body.interactions]
    )
    return InteractionsResponse(stored=stored, duplicates=duplicates)


@router.get(
    "/users/{user_id}/recommendations",
    response_model=list[Recommended],
    **{**_PREDICT, "responses": {**_PREDICT["responses"], **_NOT_FOUND}},
)
async def recommendations(
    user_id: Annotated[str, _USER_ID],
    model: Annotated[str, _ModelQuery],
    service: ServiceDep,
    request: Request,
    response: Response,
    n: Annotated[int, _N] = 10,
    exclude_seen: Annotated[
        bool, Query(description="Leave out items the user interacted with.")
    ] = True,
    exclude: Annotated[
        list[str] | None, Query(max_length=1000, description="Item ids to leave out.")
    ] = None,
    category: Annotated[str | None, _CATEGORY] = None,
    include: Annotated[Literal["item"] | None, _INCLUDE] = None,
    explain: Annotated[bool, _EXPLAIN] = False,
) -> Response:
    """Personalised top-N for a user, only available items, each with its reason:
    ``collaborative`` (the model), ``similar-to:<item_id>`` (a user who arrived after
    training: from their interactions) or ``popular`` (an unknown user: trending items).
    ``?include=item`` adds each item's title, categories and metadata (one more query).
    ``?explain=true`` adds ``because``, the user's history items that add most to the
    score (``[{"item_id", "weight"}]``, at most 5), and ``explanation`` (``{"method",
    "exact", "base", "rest", "parts"}``, ``score = base + rest + Σ weights``)."""
    options: dict[str, Any] = {
        "n": n,
        "exclude_seen": exclude_seen,
        "exclude": exclude or (),
        "category": category,
        "explain": explain,
    }
    # under a running rollout of ``model`` (its production), the user's place picks the
    # version (docs/rollout.md); the list served is logged for the click-through rate
    rollouts: RolloutRouter | None = getattr(request.app.state, "rollout_router", None)
    route = rollouts.route(model, user_id) if rollouts is not None else None
    if route is None:
        body = await service.recommend(model, user_id, **options)
    else:
        assert rollouts is not None
        try:
            body = await service.recommend(route.ref, user_id, **options)
        except Exception as exc:
            rollouts.answered(route, error=getattr(exc, "status", 500) >= 500)
            raise
        rollouts.answered(route, error=False)
        if route.rollout.mode != "shadow":
            _log_served(service, body, user_id)
        rollouts.also_score(
            route,
            lambda ref, _: service.recommend(ref, user_id, **options),
            None,
            body,
        )
    if include == "item":
        body = await service.with_items(body)
    return _items(body, response)


@router.get(
    "/items/{item_id}/similar",
    response_model=list[SimilarItem],
    **{
        **_PREDICT,
        "responses": {
            **_PREDICT["responses"],
            404: {
                "description": "Unknown model, alias, version or item; or, without `model`, "
                "no recommendation model has a production version yet."
            },
            409: {
                "description": "Without `model`: several recommendation models have a "
                "production version (name one)."
            },
        },
    },
)
async def similar(
    item_id: Annotated[str, _ITEM_ID],
    request: Request,
    service: ServiceDep,
    response: Response,
    model: Annotated[str | None, _SimilarModelQuery] = None,
    n: Annotated[int, _N] = 10,
    category: Annotated[str | None, _CATEGORY] = None,
    include: Annotated[Literal["item"] | None, _INCLUDE] = None,
    explain: Annotated[bool, _EXPLAIN] = False,
) -> Response:
    """Available items most like ``item_id``: collaborative (co-interaction) and content
    (TF-IDF over title, categories and tags) similarity combined. ``?include=item`` adds
    each item's title, categories and metadata (one more query). Without ``model``, the
    one recommendation model with a production version answers (404 when there is none
    yet, 409 when there are several). ``?explain=true`` adds ``because``: ``{"source",
    "parts": [{"source", "similarity", "weight"}], "shared_categories"}`` (the parts'
    weights sum to the score)."""
    ref: str = model if model else await anyio.to_thread.run_sync(_default_model, request)
    body = await service.similar(ref, item_id, n=n, category=category, explain=explain)
    if include == "item":
        body = await service.with_items(body)
    return _items(body, response)
