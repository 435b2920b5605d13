"""``?explain=true`` on the recommendation and similar-item routes (issue #22, item 4), end to
end on every database: the ``because`` shapes, their additivity, cached lists never mixing
explained and plain answers, and hostile ``explain`` values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from test_recommend_api import catalogue, history

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.recommendations.explain import BECAUSE_TOP
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import RecommendationData, train_recommendation

PLAIN = {"item_id", "score", "reason"}


def _train(settings: Settings, *models: tuple[str, str]) -> None:
    registry, engine = open_registry(settings)
    try:
        data = RecommendationData.from_store(RecommendationStore(engine))
        for name, algorithm in models:
            train_recommendation(registry, name, data, algorithm=algorithm, actor="tests")
    finally:
        engine.dispose()


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """The synthetic catalogue and interactions; ``shows`` (EASE) and ``shows-als``."""
    with TestClient(create_app(settings), headers=auth_headers) as c:
        assert c.post("/v1/items", json={"items": catalogue()}).status_code == 200
        assert c.post("/v1/interactions", json={"interactions": history()}).status_code == 200
        _train(settings, ("shows", "ease"), ("shows-als", "als"))
        yield c


def recs(client: TestClient, user: str, **params: Any) -> list[dict[str, Any]]:
    resp = client.get(f"/v1/users/{user}/recommendations", params={"model": "shows", **params})
    assert resp.status_code == 200, resp.text
    body: list[dict[str, Any]] = resp.json()
    return body


def seen(user: str) -> set[str]:
    return {e["item_id"] for e in history() if e["user_id"] == user}


def adds_up(item: dict[str, Any]) -> None:
    why = item["explanation"]
    total = why["base"] + why["rest"] + sum(b["weight"] for b in item["because"])
    assert total == pytest.approx(item["score"], abs=2e-5), item


def test_a_known_users_items_are_explained_by_their_history(client: TestClient) -> None:
    items = recs(client, "u0", n=5, explain="true")
    assert len(items) == 5
    for item in items:
        assert set(item) == PLAIN | {"because", "explanation"}
        assert set(item["explanation"]) == {"method", "exact", "base", "rest", "parts"}
        assert (item["explanation"]["method"], item["explanation"]["exact"]) == ("ease", True)
        assert item["explanation"]["parts"] == []
        because = item["because"]
        # u0 saw 13 of the 15 sci-fi items: the two left score > 0 from them; the drama
        # items after them get nothing positive from that history (an empty list)
        assert len(because) <= BECAUSE_TOP
        if item["score"] > 0:  # EASE's base is 0: some history item adds to it
            assert because
        assert all(set(b) == {"item_id", "weight"} and b["weight"] > 0 for b in because)
        weights = [b["weight"] for b in because]
        assert weights == sorted(weights, reverse=True)
        assert {b["item_id"] for b in because} <= seen("u0")
        # EASE: the score is the sum of the history's contributions, nothing in base
        assert item["explanation"]["base"] == pytest.approx(0.0, abs=1e-5)
        adds_up(item)


def test_als_is_explained_by_implicit(client: TestClient) -> None:
    items = recs(client, "u0", n=5, explain="true", model="shows-als")
    for item in items:
        assert item["explanation"]["method"] == "als"
        assert item["explanation"]["exact"] is False  # the fitted user vector
        assert len(item["because"]) <= BECAUSE_TOP
        assert {b["item_id"] for b in item["because"]} <= seen("u0")
        adds_up(item)
    # a new interaction folds the user in: then the weights are exact
    client.post(
        "/v1/interactions",
        json={"interactions": [{"user_id": "u0", "item_id": items[0]["item_id"], "type": "like"}]},
    )
    for item in recs(client, "u0", n=5, explain="true", model="shows-als"):
        assert item["explanation"]["exact"] is True
        assert item["explanation"]["base"] == pytest.approx(0.0, abs=1e-4)
        adds_up(item)


def test_new_and_unknown_users(client: TestClient) -> None:
    unknown = recs(client, "visitor", n=3, explain="true")
    assert all(i["because"] == [] for i in unknown)
    assert all(i["explanation"]["method"] == "trending" for i in unknown)
    client.post(
        "/v1/interactions",
        json={"interactions": [{"user_id": "visitor", "item_id": "m20", "type": "click"}]},
    )
    for item in recs(client, "visitor", n=3, explain="true"):
        assert item["reason"] == "similar-to:m20"
        assert [b["item_id"] for b in item["because"]] == ["m20"]
        assert item["explanation"]["method"] == "item-to-item"
        assert [p["source"] for p in item["explanation"]["parts"]] == ["ease", "content"]
        adds_up(item)


def test_cached_lists_never_mix_explained_and_plain_answers(client: TestClient) -> None:
    plain = recs(client, "u4", n=4)
    explained = recs(client, "u4", n=4, explain="true")
    again = recs(client, "u4", n=4)
    assert all(set(i) == PLAIN for i in plain + again)
    assert all("because" in i for i in explained)
    assert [(i["item_id"], i["score"]) for i in explained] == [
        (i["item_id"], i["score"]) for i in plain
    ]
    assert again == plain
    # explained first, on a fresh list: the cached list it leaves is plain
    first = recs(client, "u5", n=3, explain="true", exclude_seen="false")
    assert all("because" in i for i in first)
    assert all(set(i) == PLAIN for i in recs(client, "u5", n=3, exclude_seen="false"))
    # explain=false is the plain answer
    assert all(set(i) == PLAIN for i in recs(client, "u4", n=4, explain="false"))


def test_explain_without_the_cache(settings: Settings, auth_headers: dict[str, str]) -> None:
    uncached = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"enabled": False})}
    )
    with TestClient(create_app(uncached), headers=auth_headers) as c:
        c.post("/v1/items", json={"items": catalogue()})
        c.post("/v1/interactions", json={"interactions": history()})
        _train(settings, ("shows", "ease"))
        items = recs(c, "u1", n=3, explain="true", include="item")
        assert len(items) == 3
        for item in items:
            assert item["item"]["item_id"] == item["item_id"]
            assert {b["item_id"] for b in item["because"]} <= seen("u1")
            adds_up(item)


def test_similar_items_say_which_similarity_and_shared_categories(client: TestClient) -> None:
    resp = client.get("/v1/items/m1/similar", params={"model": "shows", "n": 3, "explain": "true"})
    assert resp.status_code == 200, resp.text
    for item in resp.json():
        because = item["because"]
        assert set(because) == {"source", "parts", "shared_categories"}
        assert [p["source"] for p in because["parts"]] == ["content", "ease"]
        assert sum(p["weight"] for p in because["parts"]) == pytest.approx(item["score"], abs=1e-5)
        assert because["shared_categories"] == ["sci-fi"]
    plain = client.get("/v1/items/m1/similar", params={"model": "shows", "n": 3})
    assert all(set(i) == PLAIN for i in plain.json())


@pytest.mark.parametrize("value", ["2", "%00", "a%00b", "truee", "", "NaN"])
@pytest.mark.parametrize(
    "path", ["/v1/users/u0/recommendations?model=shows", "/v1/items/m1/similar?model=shows"]
)
def test_hostile_explain_values_are_422(client: TestClient, path: str, value: str) -> None:
    resp: httpx.Response = client.get(f"{path}&explain={value}")
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_the_playground_says_because_you_liked(client: TestClient, admin_key: str) -> None:
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    login = client.post(
        "/login",
        data={"csrf_token": token.group(1), "token": admin_key, "next": "/"},
        follow_redirects=False,
    )
    assert login.status_code == 303
    playground = client.get("/playground")
    assert 'id="rec-explain"' in playground.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', playground.text)
    assert csrf
    form = {"csrf_token": csrf.group(1), "model": "shows", "user_id": "u0"}
    plain = client.post("/playground/recommend", data=form, headers={"HX-Request": "true"})
    assert plain.status_code == 200
    assert "because you liked" not in plain.text
    explained = client.post(
        "/playground/recommend", data={**form, "explain": "1"}, headers={"HX-Request": "true"}
    )
    assert explained.status_code == 200
    liked = re.findall(r'<td class="because">because you liked ([^<]+)</td>', explained.text)
    assert liked
    # the titles of u0's history items, not their ids
    assert all("space robots story" in line for line in liked)
    assert " style=" not in explained.text  # CSP: style-src 'self'
