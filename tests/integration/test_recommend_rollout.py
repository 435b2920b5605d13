"""A recommender A/B test (issue 21, item 4): users split between two versions by their
id, every list served logged, and the click-through rate per variant — lists with a
click on one of their items within 24 h, of the lists served — equal to the one counted
by hand on a scripted log; erasure removes a user's served lists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from test_recommend_api import catalogue, history

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.recommendations.store import RecommendationStore
from aiweb.recommendations.training import RecommendationData, train_recommendation

ROLLOUT = "/v1/models/shows/rollout"


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """``shows`` v1 (EASE, production) and v2 (popularity) on the synthetic data."""
    with TestClient(create_app(settings), headers=auth_headers) as c:
        assert c.post("/v1/items", json={"items": catalogue()}).status_code == 200
        assert c.post("/v1/interactions", json={"interactions": history()}).status_code == 200
        registry, engine = open_registry(settings)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            train_recommendation(registry, "shows", data, algorithm="ease", actor="tests")
            train_recommendation(registry, "shows", data, algorithm="popularity", actor="tests")
        finally:
            engine.dispose()
        yield c


def test_ctr_per_variant_is_the_hand_count(client: TestClient) -> None:
    body = {
        "candidate": 2,
        "mode": "ab",
        "traffic": 0.5,
        "auto": False,
        "gates": {"min_samples": 10, "max_error_rate": None, "min_accuracy_delta": -0.5},
    }
    started = client.put(ROLLOUT, json=body)
    assert started.status_code == 200, started.text
    served: list[tuple[str, int, list[str]]] = []
    users = [f"u{i}" for i in range(30)] + [f"new{i}" for i in range(30)]
    for user in users:
        r = client.get(f"/v1/users/{user}/recommendations", params={"model": "shows", "n": 5})
        assert r.status_code == 200, r.text
        version = int(r.headers["X-Model-Version"])
        served.append((user, version, [item["item_id"] for item in r.json()]))
        again = client.get(f"/v1/users/{user}/recommendations", params={"model": "shows"})
        assert int(again.headers["X-Model-Version"]) == version  # sticky by the user id
        served.append((user, version, [item["item_id"] for item in again.json()]))
    assert {v for _, v, _ in served} == {1, 2}

    # the scripted log: every third user clicks an item of their first list, every
    # fifth one an item they were not shown (not a click on the list), the rest nothing
    shown_to: dict[str, set[str]] = {}
    for user, _, items in served:
        shown_to.setdefault(user, set()).update(items)
    events: list[dict[str, Any]] = []
    for i, (user, _, items) in enumerate(served[::2]):
        if i % 3 == 0:
            events.append({"user_id": user, "item_id": items[0], "type": "click"})
        elif i % 5 == 0:
            unseen = next(f"m{k}" for k in range(30) if f"m{k}" not in shown_to[user])
            events.append({"user_id": user, "item_id": unseen, "type": "click"})
    assert client.post("/v1/interactions", json={"interactions": events}).status_code == 200
    clicked = {(e["user_id"], e["item_id"]) for e in events}
    expected: dict[int, tuple[int, int]] = {}
    for version in (1, 2):
        lists = [(u, items) for u, v, items in served if v == version]
        hits = sum(any((u, item) in clicked for item in items) for u, items in lists)
        expected[version] = (hits, len(lists))

    deadline = time.monotonic() + 30  # the lists are logged off the request path
    while True:
        report = client.get(ROLLOUT).json()
        quality = {v["version"]: v["quality"] for v in report["variants"].values()}
        if all(quality[v]["n"] == expected[v][1] for v in (1, 2)):
            break
        assert time.monotonic() < deadline, (quality, expected)
        time.sleep(0.1)
    for version, (hits, n) in expected.items():
        assert quality[version]["metric"] == "ctr"
        assert quality[version]["n"] == n
        assert quality[version]["value"] == pytest.approx(hits / n, abs=1e-6)
        low, high = quality[version]["ci"]
        assert low <= hits / n <= high
    (gate,) = [g for g in report["gates"] if g["gate"] == "min_accuracy_delta"]
    assert "ctr" in gate["reason"]
    assert report["state"] == "running"  # an A/B test never moves by itself

    # erasure removes what the rollout logged about the user
    erase = client.post("/v1/privacy/erase", json={"user_id": served[0][0]})
    assert erase.status_code == 202, erase.text
    job_url = erase.headers["location"]
    deadline = time.monotonic() + 30
    while (job := client.get(job_url).json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "succeeded", job
    assert job["result"]["erased"]["recommendation.served_lists"] == 2
