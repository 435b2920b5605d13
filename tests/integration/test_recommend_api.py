"""Recommendation routes end to end (TestClient runs the lifespan), on every database:
data in, training into the registry, cold start, exclusion, filters, cache invalidation,
problems for bad input."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import RecommendationData, train_recommendation
from conftest import create_key

N_USERS = 30


def catalogue() -> list[dict[str, Any]]:
    return [
        {
            "item_id": f"m{i}",
            "title": f"{'space robots' if i < 15 else 'family love'} story {i}",
            "categories": ["sci-fi"] if i < 15 else ["drama"],
            "tags": ["future"] if i < 15 else ["tears"],
        }
        for i in range(30)
    ]


def history() -> list[dict[str, Any]]:
    events = []
    for u in range(N_USERS):
        pool = list(range(0, 15)) if u < N_USERS // 2 else list(range(15, 30))
        shift = u % 15
        for t in range(13):
            i = pool[(shift + t) % 15]
            events.append(
                {
                    "user_id": f"u{u}",
                    "item_id": f"m{i}",
                    "type": "rating",
                    "value": 4.0,
                    "timestamp": 1_600_000_000 + 3600 * t + u,
                    "event_id": f"e{u}-{t}",
                }
            )
    return events


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """The app with the synthetic catalogue and interactions posted, and ``shows``
    trained on them."""
    with TestClient(create_app(settings), headers=auth_headers) as c:
        assert c.post("/v1/items", json={"items": catalogue()}).status_code == 200
        events = history()
        resp = c.post("/v1/interactions", json={"interactions": events})
        assert resp.json() == {"stored": len(events), "duplicates": 0}
        registry, engine = open_registry(settings)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            train_recommendation(registry, "shows", data, algorithm="ease", actor="tests")
        finally:
            engine.dispose()
        yield c


def recs(client: TestClient, user: str, **params: Any) -> httpx.Response:
    return client.get(f"/v1/users/{user}/recommendations", params={"model": "shows", **params})


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [i["item_id"] for i in resp.json()]


def test_known_user_gets_unseen_collaborative_items(client: TestClient) -> None:
    resp = recs(client, "u0", n=2)
    items = resp.json()
    # the body is the list the issue promises; the model version is in the headers
    assert (resp.headers["X-Model"], resp.headers["X-Model-Version"]) == ("shows", "1")
    seen = {e["item_id"] for e in history() if e["user_id"] == "u0"}
    assert len(items) == 2
    for item in items:
        assert set(item) == {"item_id", "score", "reason"}
        assert item["reason"] == "collaborative"
        assert item["item_id"] not in seen
        assert int(item["item_id"][1:]) < 15  # stays in the user's taste
    assert set(ids(recs(client, "u0", n=20, exclude_seen=False))) & seen


def test_unknown_user_gets_popular_then_similar_after_one_interaction(client: TestClient) -> None:
    first = recs(client, "visitor", n=3).json()
    assert [i["reason"] for i in first] == ["popular"] * 3
    # the cached list is dropped by the new interaction: the next answer reflects it
    resp = client.post(
        "/v1/interactions",
        json={"interactions": [{"user_id": "visitor", "item_id": "m20", "type": "click"}]},
    )
    assert resp.json() == {"stored": 1, "duplicates": 0}
    after = recs(client, "visitor", n=3).json()
    assert all(i["reason"] == "similar-to:m20" for i in after), after
    assert "m20" not in [i["item_id"] for i in after]
    assert all(int(i["item_id"][1:]) >= 15 for i in after)


def test_known_user_cache_is_invalidated_by_a_new_interaction(client: TestClient) -> None:
    top = ids(recs(client, "u3", n=1))[0]
    assert ids(recs(client, "u3", n=1)) == [top]  # served from the cache
    client.post(
        "/v1/interactions",
        json={"interactions": [{"user_id": "u3", "item_id": top, "type": "purchase"}]},
    )
    assert top not in ids(recs(client, "u3", n=10))


def test_exclude_category_and_availability(client: TestClient) -> None:
    top = ids(recs(client, "u0", n=3))
    assert top[0] not in ids(recs(client, "u0", n=3, exclude=[top[0]]))
    drama = ids(recs(client, "u0", n=5, category="drama"))
    assert drama
    assert all(int(i[1:]) >= 15 for i in drama)
    # hiding an item and deleting another takes them out at once
    hidden = dict(catalogue()[int(top[0][1:])], available=False)
    assert client.post("/v1/items", json={"items": [hidden]}).status_code == 200
    assert client.delete(f"/v1/items/{top[1]}").status_code == 204
    assert not {top[0], top[1]} & set(ids(recs(client, "u0", n=10)))
    problem = client.delete(f"/v1/items/{top[1]}")
    assert problem.status_code == 404
    assert problem.headers["content-type"].startswith("application/problem+json")


def test_similar_items(client: TestClient) -> None:
    resp = client.get("/v1/items/m2/similar", params={"model": "shows", "n": 4})
    assert resp.status_code == 200, resp.text
    items = resp.json()
    assert len(items) == 4
    assert all(int(i["item_id"][1:]) < 15 and i["item_id"] != "m2" for i in items)
    # with a single recommendation model in production, ?model= may be left out
    assert client.get("/v1/items/m2/similar", params={"n": 4}).json() == items
    missing = client.get("/v1/items/nope/similar", params={"model": "shows"})
    assert missing.status_code == 404


def test_idempotent_interactions(client: TestClient) -> None:
    event = {"user_id": "u1", "item_id": "m1", "type": "like", "event_id": "once"}
    body = {"interactions": [event, event]}
    assert client.post("/v1/interactions", json=body).json() == {"stored": 1, "duplicates": 1}
    assert client.post("/v1/interactions", json=body).json() == {"stored": 0, "duplicates": 2}


@pytest.mark.parametrize(
    ("method", "path", "payload", "params", "status"),
    [
        ("get", "/v1/users/u0/recommendations", None, {"model": "shows", "n": 0}, 422),
        ("get", "/v1/users/u0/recommendations", None, {"model": "nope"}, 404),
        ("get", "/v1/users/u0/recommendations", None, {"model": "bad name!"}, 422),
        ("get", "/v1/users/u0/recommendations", None, {}, 422),
        ("post", "/v1/items", {"items": []}, None, 422),
        ("post", "/v1/interactions", {"interactions": [{"user_id": "u"}]}, None, 422),
        (
            "post",
            "/v1/interactions",
            {"interactions": [{"user_id": "u", "item_id": "m", "type": "Bad Type"}]},
            None,
            422,
        ),
        (
            "post",
            "/v1/interactions",
            {"interactions": [{"user_id": "u", "item_id": "m", "type": "x", "timestamp": "?"}]},
            None,
            422,
        ),
    ],
)
def test_bad_input_is_a_problem(
    client: TestClient,
    method: str,
    path: str,
    payload: Any,
    params: Any,
    status: int,
) -> None:
    resp = client.request(method.upper(), path, json=payload, params=params)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_routes_need_keys_with_scopes(settings: Settings, client: TestClient) -> None:
    resp = client.get(
        "/v1/users/u0/recommendations", params={"model": "shows"}, headers={"Authorization": ""}
    )
    assert resp.status_code == 401
    predict_only = create_key(settings, ("predict",), name="web-app")
    headers = {"Authorization": f"Bearer {predict_only}"}
    assert recs(client, "u0", n=1).status_code == 200
    assert (
        client.get(
            "/v1/users/u0/recommendations", params={"model": "shows"}, headers=headers
        ).status_code
        == 200
    )
    forbidden = client.post("/v1/items", json={"items": catalogue()[:1]}, headers=headers)
    assert forbidden.status_code == 403


def test_dashboard_shows_and_plays_recommendation_models(
    client: TestClient, admin_key: str
) -> None:
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
    model = client.get("/models/shows")
    assert model.status_code == 200
    assert "NDCG@10" in model.text
    report = client.get("/models/shows/versions/1")
    table = report.text[report.text.index('id="algorithms"') :]
    assert "ease" in table
    assert "selected" in table
    assert "popularity" in table  # the baseline side by side
    playground = client.get("/playground")
    assert 'id="recommend-form"' in playground.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', playground.text)
    assert csrf
    fragment = client.post(
        "/playground/recommend",
        data={"csrf_token": csrf.group(1), "model": "shows", "user_id": "u0"},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    rows = re.findall(r"<tr><td><code>(m\d+)</code></td>", fragment.text)
    assert len(rows) == 10
    seen = {e["item_id"] for e in history() if e["user_id"] == "u0"}
    assert not set(rows) & seen
    assert "collaborative" in fragment.text
    cold = client.post(
        "/playground/recommend",
        data={"csrf_token": csrf.group(1), "model": "shows", "user_id": "nobody"},
        headers={"HX-Request": "true"},
    )
    assert "popular" in cold.text


def test_history_comes_from_the_model_plus_interactions_since_training(
    settings: Settings, client: TestClient
) -> None:
    """Serving reads only the interactions logged after training (the model keeps the
    training histories); a version 1 artifact, without them, reads the whole history."""
    from aiweb.recommendations.model import RecommenderModel
    from aiweb.recommendations.service import RecommendationService
    from aiweb.registry.entities import ModelRef

    registry, engine = open_registry(settings)
    try:
        store = RecommendationStore(engine)
        service = RecommendationService(store, registry, settings)
        model = service._load(registry.resolve(ModelRef.parse("shows")))
        trained = [f"m{(3 + t) % 15}" for t in range(13)]  # u3's ratings, one an hour
        before = service.history(model, "u3")
        assert [model.item_ids[i] for i in before.items] == trained
        assert before.has_new is False
        assert store.user_events_since("u3", model.last_interaction_id) == []
        client.post(
            "/v1/interactions",
            json={
                "interactions": [
                    {"user_id": "u3", "item_id": "m20", "type": "click"},
                    {"user_id": "u3", "item_id": "m5", "type": "click"},  # had it already
                    {"user_id": "u3", "item_id": "unknown-item", "type": "click"},
                    {"user_id": "u3", "item_id": "m20", "type": "like"},
                ]
            },
        )
        after = service.history(model, "u3")
        assert [model.item_ids[i] for i in after.items] == [*trained, "m20"]
        assert after.has_new is True
        assert len(store.user_events_since("u3", model.last_interaction_id)) == 4
        # without training histories (format 1) the whole history is read from the store
        old = RecommenderModel(
            name=model.name,
            components=model.components,
            trending=model.trending,
            popularity=model.popularity,
            content=model.content,
            user_ids=model.user_ids,
            item_ids=model.item_ids,
            last_interaction_id=model.last_interaction_id,
        )
        assert old.histories is None
        from_store = service.history(old, "u3")
        assert from_store.items.tolist() == after.items.tolist()
        assert from_store.has_new is True
    finally:
        engine.dispose()


def test_without_the_cache_every_answer_is_ranked_with_the_filters(
    settings: Settings, client: TestClient, auth_headers: dict[str, str]
) -> None:
    """``AIWEB_CACHE__ENABLED=false``: each request ranks just ``n`` items, exclusions,
    category and availability applied, and reflects a new interaction at once."""

    def scored(c: TestClient, user: str, **params: Any) -> list[tuple[str, float]]:
        resp = recs(c, user, n=5, **params)
        assert resp.status_code == 200, resp.text
        return [(i["reason"], i["score"]) for i in resp.json()]

    asked = (("u0", {}), ("u20", {"category": "sci-fi"}), ("nobody", {}))
    # (ties in score may come in another order: compare reasons and scores)
    cached = {u: scored(client, u, **params) for u, params in asked}
    uncached = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"enabled": False})}
    )
    with TestClient(create_app(uncached), headers=auth_headers) as c:
        assert c.app.state.recommendations.cache is None  # type: ignore[attr-defined]
        assert {u: scored(c, u, **params) for u, params in asked} == cached
        assert all(int(i[1:]) < 15 for i in ids(recs(c, "u20", n=5, category="sci-fi")))
        assert ids(recs(c, "u0", n=5)) == ids(recs(client, "u0", n=5))
        seen = {e["item_id"] for e in history() if e["user_id"] == "u0"}
        top = ids(recs(c, "u0", n=5))
        assert not set(top) & seen
        excluded = ids(recs(c, "u0", n=4, exclude=top[:2]))
        assert len(excluded) == 4
        assert not set(excluded) & (set(top[:2]) | seen)
        c.post(
            "/v1/interactions",
            json={"interactions": [{"user_id": "u0", "item_id": top[0], "type": "purchase"}]},
        )
        assert top[0] not in ids(recs(c, "u0", n=5))
        hidden = dict(catalogue()[int(top[1][1:])], available=False)
        assert c.post("/v1/items", json={"items": [hidden]}).status_code == 200
        assert top[1] not in ids(recs(c, "u0", n=10))


def test_an_alias_moved_elsewhere_is_re_read_in_the_background_never_awaited(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # awaiting the periodic re-read cost the unlucky request 100-400 ms under load
    assert recs(client, "u1").headers["X-Model-Version"] == "1"
    registry, engine = open_registry(settings)
    try:  # another process trains version 2 and promotes it
        data = RecommendationData.from_store(RecommendationStore(engine))
        train_recommendation(registry, "shows", data, algorithm="popularity", actor="tests")
        registry.promote("shows", 2, actor="tests")
    finally:
        engine.dispose()
    service = client.app.state.recommendations  # type: ignore[attr-defined]
    release = threading.Event()
    resolve = service.registry.resolve

    def slow_resolve(ref: Any) -> Any:
        release.wait(10)  # the registry's database is slow to answer
        return resolve(ref)

    monkeypatch.setattr(service.registry, "resolve", slow_resolve)
    time.sleep(settings.serving.alias_refresh_s + 0.1)  # the alias is due a re-read
    resp = recs(client, "u1")
    assert not release.is_set()  # answered without waiting for the re-read …
    assert resp.headers["X-Model-Version"] == "1"  # … from the version it had
    release.set()
    deadline = time.monotonic() + 10
    while recs(client, "u1").headers["X-Model-Version"] != "2":
        assert time.monotonic() < deadline, "version 2 never picked up"
        time.sleep(0.05)
