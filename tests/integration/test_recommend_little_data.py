"""docs/recommendations.md's own small example (3 items, 2 interactions), literally: over
HTTP and from the command line a version is trained without an evaluation, its report and
the job's result say why, and it goes to production only by an explicit choice, never by
a promotion rule. Interactions without a timestamp import from files as over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import open_registry
from test_jobs_api import wait_job
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.cli import app as cli_app
from aiweb.config import Settings
from aiweb.recommendations.store import RecommendationStore

REASON = "not evaluated: too few interactions; 11 needed"

#: the guide's step 1, as it is written
CATALOGUE: list[dict[str, Any]] = [
    {
        "item_id": "sku-1",
        "title": "Trail running shoe",
        "categories": ["shoes"],
        "tags": ["running", "trail"],
        "metadata": {"price": 89},
    },
    {
        "item_id": "sku-2",
        "title": "Road running shoe",
        "categories": ["shoes"],
        "tags": ["running"],
    },
    {"item_id": "sku-3", "title": "Rain jacket", "categories": ["jackets"], "available": False},
]
#: the guide's step 2 (the first event has no timestamp)
EVENTS: list[dict[str, Any]] = [
    {"user_id": "u42", "item_id": "sku-1", "type": "view", "event_id": "ev-9001"},
    {
        "user_id": "u42",
        "item_id": "sku-2",
        "type": "purchase",
        "value": 1,
        "timestamp": "2024-05-01T10:00:00Z",
        "event_id": "ev-9002",
    },
]


@pytest.fixture
def client(settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """The app with the guide's catalogue and interactions stored; no model yet."""
    with TestClient(create_app(settings), headers=auth_headers) as c:
        assert c.post("/v1/items", json={"items": CATALOGUE}).json() == {"upserted": 3}
        resp = c.post("/v1/interactions", json={"interactions": EVENTS})
        assert resp.json() == {"stored": 2, "duplicates": 0}, resp.text
        yield c


def train(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"type": "train", "task": "recommendation", "model": "shop", **fields}
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    return wait_job(client, r.json()["id"], timeout=120)


def recs(client: TestClient, model: str) -> httpx.Response:
    return client.get("/v1/users/u42/recommendations", params={"model": model, "n": 10})


def test_the_guides_example_trains_unevaluated_and_is_promoted_only_when_asked(
    client: TestClient,
) -> None:
    job = train(client, algorithm="auto")
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["evaluated"] is False
    assert result["reason"].startswith(REASON)
    assert result["selected"] == "popularity"  # auto cannot choose without validation
    assert result["metrics"] == {}
    assert result["aliases"] == []  # the first version, yet not production

    version = client.get("/v1/models/shop/versions/1").json()
    assert version["aliases"] == []
    report = version["evaluation"]
    assert report["evaluated"] is False
    assert report["reason"] == result["reason"]
    assert report["ndcg"] is None
    assert report["recall"] is None
    assert report["selected"] == "popularity"
    assert "popularity" in report["note"]
    assert report["protocol"]["min_items_per_user"] == 11
    assert report["protocol"]["interactions"] == 2

    missing = recs(client, "shop")  # no production version: a problem, not a 500
    assert missing.status_code == 404, missing.text
    assert missing.headers["content-type"].startswith("application/problem+json")
    explicit = recs(client, "shop:1")
    assert explicit.status_code == 200, explicit.text
    assert explicit.json() == []  # sku-3 is unavailable, the others are seen

    job = train(client, algorithm="auto", alias="production")  # the explicit choice
    assert job["status"] == "succeeded", job
    assert job["result"]["aliases"] == ["production"]
    deadline = time.monotonic() + 10
    while (resp := recs(client, "shop")).status_code != 200:
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.1)
    assert resp.headers["X-Model-Version"] == "2"
    fresh = client.get("/v1/users/someone-new/recommendations", params={"model": "shop"})
    assert {r["item_id"] for r in fresh.json()} == {"sku-1", "sku-2"}  # sku-3 is unavailable
    assert {r["reason"] for r in fresh.json()} == {"popular"}


def test_a_promotion_rule_never_promotes_an_unevaluated_version(client: TestClient) -> None:
    job = train(client, algorithm="auto", promotion={"metric": "ndcg"})
    assert job["status"] == "succeeded", job
    promotion = job["result"]["promotion"]
    assert promotion["promoted"] is False
    assert promotion["candidate"] is None
    assert REASON in promotion["reason"]
    assert "by hand" in promotion["reason"]
    assert job["result"]["aliases"] == []
    audit = client.get("/v1/audit", params={"action": "retrain.not_promoted"}).json()
    assert audit["events"][0]["target"] == "model:shop"

    assert train(client, alias="production")["status"] == "succeeded"  # version 2
    job = train(client, algorithm="popularity", promotion={})
    assert job["result"]["promotion"]["promoted"] is False
    assert job["result"]["promotion"]["production_version"] == 2
    assert client.get("/v1/models/shop").json()["aliases"] == {"production": 2}


@pytest.mark.parametrize("algorithm", ["hybrid", "als", "bpr", "content", "popularity", "ease"])
def test_every_algorithm_trains_from_one_user_unevaluated(
    client: TestClient, algorithm: str
) -> None:
    job = train(client, algorithm=algorithm)
    assert job["status"] == "succeeded", job
    assert job["result"]["evaluated"] is False
    assert job["result"]["selected"] == ("popularity" if algorithm == "hybrid" else algorithm)
    served = recs(client, "shop:1")
    assert served.status_code == 200, served.text


# ---- the command line and file imports -------------------------------------------------------


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_imports_files_without_timestamps_and_trains_the_guides_example(
    cli_env: Settings, tmp_path: Path
) -> None:
    items = tmp_path / "catalogue.csv"
    items.write_text(
        "item_id,title,categories,tags\n"
        "sku-1,Trail running shoe,shoes,running|trail\n"
        "sku-2,Road running shoe,shoes,running\n"
        "sku-3,Rain jacket,jackets,\n"
    )
    events = tmp_path / "events.csv"  # no timestamp column at all
    events.write_text("user_id,item_id,type\nu42,sku-1,view\n")
    more = tmp_path / "events.jsonl"  # one row with, one without
    more.write_text(
        json.dumps({"user_id": "u42", "item_id": "sku-2", "type": "purchase", "value": 1})
        + "\n"
        + json.dumps({"user_id": "u7", "item_id": "sku-3", "type": "view", "timestamp": ""})
        + "\n"
        + json.dumps({"user_id": "u7", "item_id": "sku-1", "type": "view", "timestamp": 1714557600})
        + "\n"
    )
    before = time.time()
    code, _out, err = cli("import", "items", str(items))
    assert code == 0, err
    code, _out, err = cli("import", "interactions", str(events))
    assert code == 0, err
    assert "stored 1 interactions" in err
    code, _out, err = cli("import", "interactions", str(more))
    assert code == 0, err
    assert "stored 3 interactions" in err
    # a timestamp column named on purpose must exist
    code, _out, err = cli("import", "interactions", str(events), "--column", "timestamp=ts")
    assert code != 0
    assert "ts" in err

    _registry, engine = open_registry(cli_env)
    try:
        rows = RecommendationStore(engine).training_rows()
    finally:
        engine.dispose()
    times = dict(zip(zip(rows.user_ids, rows.item_ids, strict=True), rows.times, strict=True))
    for key in (("u42", "sku-1"), ("u42", "sku-2"), ("u7", "sku-3")):  # the import's time
        assert before - 1 <= times[key] <= time.time() + 1, (key, times[key])
    assert times[("u7", "sku-1")] == 1714557600

    code, _out, err = cli("train", "recommendation", "shop", "--algorithm", "auto")
    assert code == 0, err
    text = " ".join(err.split())  # rich wraps long lines
    assert REASON in text
    assert "trained popularity" in text
    assert "aiweb models promote shop 1" in text
    assert "aliases: none" in text
    code, _out, err = cli("evaluate", "recommendation", "shop:1")  # still too little data
    assert code != 0
    assert REASON in " ".join(err.split())
    code, _out, err = cli("train", "recommendation", "shop", "--alias", "production")
    assert code == 0, err
    assert "aliases: production" in " ".join(err.split())
    code, _out, err = cli("train", "recommendation", "shop", "--algorithm", "als")
    assert code == 0, err
    assert "trained als" in " ".join(err.split())
