"""The HTTP API end to end, in-process (TestClient runs the lifespan), on every database."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import LABELS, NEGATIVE_TEXT, POSITIVE_TEXT, register_versions
from sqlalchemy import select

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.db.orm import SqlPrediction
from aiweb.db.session import make_engine
from conftest import create_key

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


@pytest.fixture
def client(
    settings: Settings, tiny_model_bytes: bytes, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """The app with ``sentiment`` versions 1 (production) and 2, and an admin key."""
    register_versions(settings, "sentiment", tiny_model_bytes, 2)
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def predict(client: TestClient, ref: str, inputs: list[str]) -> httpx.Response:
    return client.post(f"/v1/models/{ref}/predict", json={"inputs": inputs})


def assert_problem(resp: httpx.Response, status: int, *, contains: str = "") -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert "/problems/" in body["type"]
    assert body["title"]
    assert body["instance"] == resp.request.url.path
    assert body["request_id"] == resp.headers["x-request-id"]
    assert contains in body["detail"], body["detail"]
    return body


# -- predict ---------------------------------------------------------------------------
def test_predict_shape(client: TestClient) -> None:
    resp = predict(client, "sentiment", [POSITIVE_TEXT])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"model", "version", "predictions"}
    assert (body["model"], body["version"]) == ("sentiment", 1)
    [p] = body["predictions"]
    assert set(p) == {"id", "label", "scores"}
    assert p["label"] in LABELS
    assert set(p["scores"]) == set(LABELS)
    assert math.isclose(sum(p["scores"].values()), 1.0, abs_tol=1e-6)
    assert p["label"] == max(p["scores"], key=p["scores"].__getitem__)


@pytest.mark.parametrize(
    ("ref", "version"),
    [("sentiment", 1), ("sentiment@production", 1), ("sentiment:1", 1), ("sentiment:2", 2)],
)
def test_predict_references(client: TestClient, ref: str, version: int) -> None:
    resp = predict(client, ref, [POSITIVE_TEXT])
    assert resp.status_code == 200, resp.text
    assert (resp.json()["model"], resp.json()["version"]) == ("sentiment", version)


def test_predict_keeps_input_order(client: TestClient) -> None:
    inputs = [POSITIVE_TEXT, NEGATIVE_TEXT, NEGATIVE_TEXT, POSITIVE_TEXT, NEGATIVE_TEXT]
    resp = predict(client, "sentiment", inputs)
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    assert [p["label"] for p in preds] == [
        "positive",
        "negative",
        "negative",
        "positive",
        "negative",
    ]
    assert len({p["id"] for p in preds}) == len(inputs)
    for p in preds:
        assert math.isclose(sum(p["scores"].values()), 1.0, abs_tol=1e-6)


# -- registry routes ---------------------------------------------------------------------
def test_model_routes(client: TestClient) -> None:
    resp = client.get("/v1/models")
    assert resp.status_code == 200
    [model] = resp.json()["models"]
    assert model["name"] == "sentiment"
    assert model["task"] == "text-classification"
    assert model["latest_version"] == 2
    assert model["aliases"] == {"production": 1}

    resp = client.get("/v1/models/sentiment")
    assert resp.status_code == 200
    detail = resp.json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["aliases"] == ["production"]

    resp = client.get("/v1/models/sentiment/versions/2")
    assert resp.status_code == 200
    v2 = resp.json()
    assert (v2["name"], v2["version"], v2["status"]) == ("sentiment", 2, "ready")
    assert v2["labels"] == LABELS
    assert v2["artifact_format"] == "skops"
    assert len(v2["artifact_sha256"]) == 64
    assert v2["lineage"]["tag"] == "2"


def test_put_alias_swaps_the_served_version(client: TestClient) -> None:
    assert predict(client, "sentiment", [POSITIVE_TEXT]).json()["version"] == 1
    resp = client.put("/v1/models/sentiment/aliases/production", json={"version": 2})
    assert resp.status_code == 200, resp.text
    event = resp.json()
    assert (event["alias"], event["from_version"], event["to_version"]) == ("production", 1, 2)
    assert event["action"] == "set"
    assert predict(client, "sentiment", [POSITIVE_TEXT]).json()["version"] == 2
    assert client.get("/v1/models/sentiment").json()["aliases"] == {"production": 2}
    assert client.get("/v1/models/sentiment/versions/2").json()["aliases"] == ["production"]

    resp = client.put("/v1/models/sentiment/aliases/staging", json={"version": 1})
    assert resp.status_code == 200, resp.text
    assert predict(client, "sentiment@staging", [POSITIVE_TEXT]).json()["version"] == 1
    assert client.get("/v1/models/sentiment").json()["aliases"] == {
        "production": 2,
        "staging": 1,
    }


def test_rollback_route(client: TestClient) -> None:
    assert client.put("/v1/models/sentiment/aliases/production", json={"version": 2}).is_success
    assert predict(client, "sentiment", [POSITIVE_TEXT]).json()["version"] == 2
    resp = client.post("/v1/models/sentiment/rollback")
    assert resp.status_code == 200, resp.text
    event = resp.json()
    assert (event["action"], event["from_version"], event["to_version"]) == ("rollback", 2, 1)
    assert predict(client, "sentiment", [POSITIVE_TEXT]).json()["version"] == 1
    assert client.get("/v1/models/sentiment").json()["aliases"] == {"production": 1}
    assert_problem(client.post("/v1/models/sentiment/rollback"), 409)


# -- errors ------------------------------------------------------------------------------
def test_not_found_problems(client: TestClient) -> None:
    assert_problem(predict(client, "nope", ["x"]), 404, contains="nope")
    assert_problem(predict(client, "sentiment:9", ["x"]), 404, contains="9")
    assert_problem(predict(client, "sentiment@staging", ["x"]), 404, contains="staging")
    assert_problem(client.get("/v1/models/nope"), 404)
    assert_problem(client.get("/v1/models/sentiment/versions/9"), 404)
    assert_problem(client.put("/v1/models/sentiment/aliases/production", json={"version": 9}), 404)
    body = assert_problem(client.get("/v1/no/such/route"), 404)
    assert body["type"].endswith("/not-found")


def test_invalid_input_problems(client: TestClient) -> None:
    assert_problem(predict(client, "Bad%20Name", ["x"]), 422)
    assert_problem(predict(client, "sentiment:0", ["x"]), 422)
    assert_problem(client.get("/v1/models/Bad%20Name"), 422)
    assert_problem(predict(client, "sentiment", []), 422)
    assert_problem(predict(client, "sentiment", ["x"] * 257), 413, contains="256")
    assert predict(client, "sentiment", ["x"] * 256).status_code == 200
    assert_problem(predict(client, "sentiment", ["a" * 10_001]), 422, contains="10000")
    assert predict(client, "sentiment", ["a" * 10_000]).status_code == 200
    resp = client.post(
        "/v1/models/sentiment/predict",
        content=b'{"inputs": [',
        headers={"content-type": "application/json"},
    )
    assert_problem(resp, 422)
    resp = client.post("/v1/models/sentiment/predict", json={"texts": ["x"]})
    body = assert_problem(resp, 422)
    assert body["errors"]
    assert_problem(client.post("/v1/models/sentiment/predict", json={"inputs": [1, 2]}), 422)
    assert_problem(client.put("/v1/models/sentiment/aliases/production", json={"version": 0}), 422)


def test_request_id(client: TestClient) -> None:
    resp = client.get("/livez", headers={"X-Request-ID": "abc-123.4:5_6"})
    assert resp.headers["x-request-id"] == "abc-123.4:5_6"
    resp = predict(client, "nope", ["x"])
    generated = resp.headers["x-request-id"]
    assert generated
    assert resp.json()["request_id"] == generated
    for bad in ("has spaces", "x" * 129, "semi;colon"):
        resp = client.get("/livez", headers={"X-Request-ID": bad})
        assert resp.status_code == 200
        assert resp.headers["x-request-id"] != bad
        assert resp.headers["x-request-id"]
    resp = client.post(
        "/v1/models/nope/predict", json={"inputs": ["x"]}, headers={"X-Request-ID": "req-42"}
    )
    assert resp.headers["x-request-id"] == "req-42"
    assert resp.json()["request_id"] == "req-42"


# -- health ------------------------------------------------------------------------------
def test_health_with_a_production_model(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["ready"] is True
    assert "sentiment:1" in resp.json()["loaded"]


def test_health_with_no_models(settings: Settings, auth_headers: dict[str, str]) -> None:
    with TestClient(create_app(settings), headers=auth_headers) as c:
        assert c.get("/livez").json() == {"status": "ok"}
        resp = c.get("/readyz")
        assert resp.status_code == 200, resp.text
        assert c.get("/v1/models").json() == {"models": []}


def test_unloadable_production_version_is_not_ready_and_says_why(
    settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> None:
    """A production artifact gone missing: the server still starts, /readyz is 503 and
    names the alias and the reason, and the other models keep serving."""
    register_versions(settings, "broken", tiny_model_bytes, 1)
    register_versions(settings, "fine", tiny_model_bytes, 1)
    (settings.resolved_artifacts_dir / "models" / "broken" / "1").rename(
        settings.home / "moved-away"
    )
    with TestClient(create_app(settings), headers=auth_headers) as c:
        resp = c.get("/readyz")
        assert resp.status_code == 503
        assert "missing" in resp.json()["failed"]["broken@production"]
        assert "fine:1" in resp.json()["loaded"]
        ok = c.post("/v1/models/fine/predict", json={"inputs": [POSITIVE_TEXT]})
        assert ok.status_code == 200
        gone = c.post("/v1/models/broken/predict", json={"inputs": [POSITIVE_TEXT]})
        assert gone.status_code >= 500
        assert gone.headers["content-type"] == "application/problem+json"


# -- prediction log ----------------------------------------------------------------------
def _logged(settings: Settings) -> dict[str, SqlPrediction]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(SqlPrediction)).all()
    finally:
        engine.dispose()
    return {r.id: r for r in rows}  # type: ignore[misc]


def _run_predictions(settings: Settings, texts: list[str]) -> list[tuple[str, int, str, str]]:
    """Predict ``texts`` (one per request, then all at once); return (id, version, label, text)."""
    served = []
    headers = {"X-API-Key": create_key(settings, ("predict",), name="logger")}
    with TestClient(create_app(settings), headers=headers) as c:
        for ref, batch in [("sentiment", texts[:1]), ("sentiment:2", texts)]:
            resp = predict(c, ref, batch)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            for text, p in zip(batch, body["predictions"], strict=True):
                served.append((p["id"], body["version"], p["label"], text))
    return served


def test_prediction_log_after_clean_shutdown(settings: Settings, tiny_model_bytes: bytes) -> None:
    register_versions(settings, "sentiment", tiny_model_bytes, 2)
    served = _run_predictions(settings, [POSITIVE_TEXT, NEGATIVE_TEXT, "héllo ✓"])
    rows = _logged(settings)
    assert set(rows) == {pid for pid, *_ in served}
    assert len(rows) == len(served) == 4
    for pid, version, label, text in served:
        row = rows[pid]
        assert (row.model, row.version, row.label) == ("sentiment", version, label)
        assert row.input_sha256 == hashlib.sha256(text.encode()).hexdigest()
        assert row.input_text is None
        assert set(row.scores) == set(LABELS)


def test_prediction_log_with_inputs(settings: Settings, tiny_model_bytes: bytes) -> None:
    settings = settings.model_copy(update={"log_inputs": True})
    register_versions(settings, "sentiment", tiny_model_bytes, 2)
    served = _run_predictions(settings, [POSITIVE_TEXT, NEGATIVE_TEXT])
    rows = _logged(settings)
    assert len(rows) == len(served) == 3
    for pid, _version, _label, text in served:
        assert rows[pid].input_text == text
        assert rows[pid].input_sha256 == hashlib.sha256(text.encode()).hexdigest()
