"""Items read back (``GET /v1/items/{item_id}``, ``GET /v1/items``) and ``?include=item`` on
recommendation and similar-item answers, end to end on every database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from test_recommend_api import catalogue, history

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import RecommendationData, train_recommendation
from conftest import create_key

#: an item every user interacted with and the catalogue never held: the most popular
GHOST = "ghost"


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """The synthetic catalogue (``m3`` with metadata) and interactions, plus ``ghost``
    viewed by everyone, and ``shows`` trained on them."""
    items = catalogue()
    items[3] = dict(items[3], metadata={"price": 12.5, "tags": ["a", "b"], "nested": {"x": 1}})
    events = history() + [
        # the latest events: the top trending item
        {"user_id": f"u{u}", "item_id": GHOST, "type": "view", "timestamp": 1_700_000_000 + u}
        for u in range(30)
    ]
    with TestClient(create_app(settings), headers=auth_headers) as c:
        assert c.post("/v1/items", json={"items": items}).status_code == 200
        assert c.post("/v1/interactions", json={"interactions": events}).status_code == 200
        registry, engine = open_registry(settings)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            train_recommendation(registry, "shows", data, algorithm="ease", actor="tests")
        finally:
            engine.dispose()
        yield c


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()


def problem(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_an_item_reads_back_as_it_was_written(client: TestClient) -> None:
    item = ok(client.get("/v1/items/m3"))
    updated_at = item.pop("updated_at")
    assert datetime.fromisoformat(updated_at).utcoffset() is not None
    assert item == {
        "item_id": "m3",
        "title": "space robots story 3",
        "text": "",
        "categories": ["sci-fi"],
        "tags": ["future"],
        "metadata": {"price": 12.5, "tags": ["a", "b"], "nested": {"x": 1}},
        "available": True,
    }
    # hidden: still read back, flagged; deleted or never written: 404
    hidden = dict(catalogue()[4], available=False)
    assert client.post("/v1/items", json={"items": [hidden]}).status_code == 200
    assert ok(client.get("/v1/items/m4"))["available"] is False
    assert client.delete("/v1/items/m5").status_code == 204
    problem(client.get("/v1/items/m5"), 404)
    missing = client.get("/v1/items/nope")
    problem(missing, 404)
    assert missing.json()["type"].endswith("/item-not-found")
    problem(client.get(f"/v1/items/{GHOST}"), 404)  # only in interactions


def test_the_catalogue_lists_in_pages_in_id_order(client: TestClient) -> None:
    everything = ok(client.get("/v1/items"))  # default limit 50 > 30 items
    assert everything["next"] is None
    all_ids = [i["item_id"] for i in everything["items"]]
    assert all_ids == sorted(all_ids)
    assert set(all_ids) == {i["item_id"] for i in catalogue()}
    paged: list[str] = []
    params: dict[str, Any] = {"limit": 7}
    pages = 0
    while True:
        page = ok(client.get("/v1/items", params=params))
        pages += 1
        paged += [i["item_id"] for i in page["items"]]
        if page["next"] is None:
            break
        assert page["next"] == paged[-1]  # the cursor is the last id of the page
        params["after"] = page["next"]
    assert paged == all_ids
    assert pages == 5  # 7 + 7 + 7 + 7 + 2
    # exactly a page full: no empty page after it
    assert ok(client.get("/v1/items", params={"limit": 30}))["next"] is None
    # a category, paged too
    drama = ok(client.get("/v1/items", params={"category": "drama", "limit": 10}))
    assert len(drama["items"]) == 10
    assert all(i["categories"] == ["drama"] for i in drama["items"])
    rest = ok(client.get("/v1/items", params={"category": "drama", "after": drama["next"]}))
    assert rest["next"] is None
    drama_ids = {i["item_id"] for i in drama["items"] + rest["items"]}
    assert drama_ids == {f"m{i}" for i in range(15, 30)}
    assert ok(client.get("/v1/items", params={"category": "nothing"})) == {
        "items": [],
        "next": None,
    }
    # deleted items are not listed, hidden ones are (flagged)
    assert client.delete("/v1/items/m20").status_code == 204
    hidden = dict(catalogue()[21], available=False)
    assert client.post("/v1/items", json={"items": [hidden]}).status_code == 200
    listed = {i["item_id"]: i for i in ok(client.get("/v1/items", params={"limit": 500}))["items"]}
    assert "m20" not in listed
    assert listed["m21"]["available"] is False
    assert ok(client.get("/v1/items", params={"after": "m9"}))["items"] == []  # "m9" is last


def test_include_item_adds_the_catalogue_item_and_changes_nothing_else(
    client: TestClient,
) -> None:
    url = "/v1/users/u0/recommendations"
    bare = client.get(url, params={"model": "shows", "n": 5})
    assert all(set(e) == {"item_id", "score", "reason"} for e in ok(bare))
    rich = client.get(url, params={"model": "shows", "n": 5, "include": "item"})
    assert rich.headers["X-Model"] == "shows"
    assert rich.headers["X-Model-Version"] == bare.headers["X-Model-Version"]
    titles = {i["item_id"]: i["title"] for i in catalogue()}
    for plain, full in zip(ok(bare), ok(rich), strict=True):
        item = full.pop("item")
        assert full == plain
        assert item == {
            "item_id": plain["item_id"],
            "title": titles[plain["item_id"]],
            "categories": ["sci-fi"] if int(plain["item_id"][1:]) < 15 else ["drama"],
            "metadata": {"price": 12.5, "tags": ["a", "b"], "nested": {"x": 1}}
            if plain["item_id"] == "m3"
            else {},
            "available": True,
        }
    # the cached list was not changed by the include: the bare answer is as it was
    again = client.get(url, params={"model": "shows", "n": 5})
    assert again.content == bare.content
    # an id the catalogue never held (the most popular here) gets "item": null
    popular = ok(
        client.get(
            "/v1/users/visitor/recommendations", params={"model": "shows", "include": "item"}
        )
    )
    assert popular[0]["item_id"] == GHOST
    assert popular[0]["item"] is None
    assert all(e["item"]["title"] == titles[e["item_id"]] for e in popular[1:])
    # similar items
    similar = "/v1/items/m2/similar"
    plain_similar = ok(client.get(similar, params={"model": "shows", "n": 4}))
    full_similar = ok(client.get(similar, params={"model": "shows", "n": 4, "include": "item"}))
    assert [{k: v for k, v in e.items() if k != "item"} for e in full_similar] == plain_similar
    assert [e["item"]["title"] for e in full_similar if e["item"]] == [
        titles[e["item_id"]] for e in plain_similar if e["item_id"] in titles
    ]
    problem(client.get(url, params={"model": "shows", "include": "everything"}), 422)


def test_include_item_without_the_cache(settings: Settings, auth_headers: dict[str, str]) -> None:
    uncached = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"enabled": False})}
    )
    with TestClient(create_app(uncached), headers=auth_headers) as c:
        c.post("/v1/items", json={"items": catalogue()})
        c.post("/v1/interactions", json={"interactions": history()})
        registry, engine = open_registry(settings)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            train_recommendation(registry, "shows", data, algorithm="popularity", actor="tests")
        finally:
            engine.dispose()
        answer = ok(
            c.get(
                "/v1/users/u1/recommendations", params={"model": "shows", "n": 3, "include": "item"}
            )
        )
        assert len(answer) == 3
        assert all(e["item"]["item_id"] == e["item_id"] for e in answer)


def test_reading_items_needs_the_predict_scope(settings: Settings, client: TestClient) -> None:
    problem(client.get("/v1/items/m1", headers={"Authorization": ""}), 401)
    problem(client.get("/v1/items", headers={"Authorization": ""}), 401)
    app_key = {"Authorization": f"Bearer {create_key(settings, ('predict',), name='web')}"}
    assert client.get("/v1/items/m1", headers=app_key).status_code == 200
    assert client.get("/v1/items", headers=app_key).status_code == 200
    train_only = {"Authorization": f"Bearer {create_key(settings, ('train',), name='ops')}"}
    problem(client.get("/v1/items", headers=train_only), 403)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/items/bad%00id", None, 422),
        ("/v1/items/" + "x" * 10_000, None, 422),
        ("/v1/items/%ED%A0%80", None, 404),  # a lone surrogate's bytes: not UTF-8, replaced
        ("/v1/items/%FF", None, 404),
        ("/v1/items/bad%00id/similar", {"model": "shows"}, 422),
        ("/v1/users/bad%00user/recommendations", {"model": "shows"}, 422),
        ("/v1/items", {"after": "a\x00b"}, 422),
        ("/v1/items", {"after": "x" * 10_000}, 422),
        ("/v1/items", {"category": "a\x00b"}, 422),
        ("/v1/items?after=%ED%A0%80&category=%ED%B0%80", None, 200),
        ("/v1/items", {"limit": 0}, 422),
        ("/v1/items", {"limit": 501}, 422),
        ("/v1/items", {"limit": "many"}, 422),
    ],
)
def test_hostile_ids_are_4xx_problems(
    client: TestClient, path: str, params: dict[str, Any] | None, status: int
) -> None:
    resp = client.get(path, params=params)
    if status == 200:
        assert resp.status_code == 200, resp.text
    else:
        problem(resp, status)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/items", {"items": [{"item_id": "a\x00"}]}),
        ("/v1/items", {"items": [{"item_id": "a", "title": "t\x00"}]}),
        ("/v1/items", {"items": [{"item_id": "a", "categories": ["c\x00"]}]}),
        (
            "/v1/interactions",
            {"interactions": [{"user_id": "u\x00", "item_id": "m1", "type": "view"}]},
        ),
    ],
)
def test_nul_is_refused_when_written_not_a_500_later(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    """PostgreSQL text cannot hold NUL (a 500 at the insert), and a NUL category once stored
    made every ``?category=`` listing fail: refused on every database, by the API and by the
    store (file imports)."""
    problem(client.post(path, json=body), 422)
    assert ok(client.get("/v1/items", params={"category": "c"}))["items"] == []


def test_the_store_refuses_nul_from_every_writer(settings: Settings, client: TestClient) -> None:
    from aiweb.errors import InvalidInputError
    from aiweb.recommendations.store import Interaction, Item

    _, engine = open_registry(settings)
    try:
        store = RecommendationStore(engine)
        with pytest.raises(InvalidInputError, match="NUL"):
            store.upsert_items([Item("x", tags=("t\x00",))])
        with pytest.raises(InvalidInputError, match="NUL"):
            store.add_interactions([Interaction("u", "m\x00", "view", datetime.now().astimezone())])
    finally:
        engine.dispose()
