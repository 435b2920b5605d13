"""Regression tests of the hostile-input findings (issue 18, findings 4, 5, 6, 13), on
SQLite and PostgreSQL: each request here answered 500 (or a retryable 503) before."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, register_versions

from aiweb.app import create_app
from aiweb.config import Settings


@pytest.fixture
def client(
    settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> Iterator[TestClient]:
    register_versions(settings, "sentiment", tiny_model_bytes, 1)
    with TestClient(create_app(settings), headers=auth_headers) as c:
        yield c


def assert_422(r: object) -> None:
    status = getattr(r, "status_code", None)
    assert status == 422, getattr(r, "text", "")
    assert getattr(r, "headers", {})["content-type"] == "application/problem+json"


def test_nul_in_the_login_username_is_422(client: TestClient) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/login",
        data={"csrf_token": token.group(1), "username": "ad\x00min", "password": "x"},
        follow_redirects=False,
    )
    assert_422(r)


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": ["\\ud800"]}',
        b'{"inputs": ["\xed\xa0\x80"]}',
        b'{"inputs": ["a\\u0000b"]}',
    ],
)
def test_hostile_predict_inputs_are_422(client: TestClient, body: bytes) -> None:
    r = client.post(
        "/v1/models/sentiment/predict",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert_422(r)


@pytest.mark.parametrize(
    "metadata",
    [b"NaN", b"Infinity", b"1e309", b"9223372036854775808", b'"\\u0000"', b'{"\\u0000": 1}'],
)
def test_hostile_item_metadata_is_422(client: TestClient, metadata: bytes) -> None:
    body = b'{"items": [{"item_id": "i1", "title": "t", "metadata": {"m": ' + metadata + b"}}]}"
    r = client.post("/v1/items", content=body, headers={"Content-Type": "application/json"})
    assert_422(r)
    assert client.get("/v1/items/i1").status_code == 404


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_interaction_timestamps_out_of_range_are_422(client: TestClient, when: str) -> None:
    r = client.post(
        "/v1/interactions",
        json={
            "interactions": [{"user_id": "u", "item_id": "i", "type": "view", "timestamp": when}]
        },
    )
    assert_422(r)


@pytest.mark.parametrize("version", [2**31, 2**63, 10**20])
def test_versions_beyond_the_column_are_422(client: TestClient, version: int) -> None:
    assert_422(client.get(f"/v1/models/sentiment/versions/{version}"))
    assert_422(client.put("/v1/models/sentiment/aliases/staging", json={"version": version}))
    assert client.get("/v1/models/sentiment/versions/1").status_code == 200


def test_a_key_lifetime_past_year_9999_is_422(client: TestClient) -> None:
    r = client.post(
        "/v1/keys", json={"name": "far", "scopes": ["predict"], "expires_in": "999999w"}
    )
    assert_422(r)
    r = client.post("/v1/keys", json={"name": "near", "scopes": ["predict"], "expires_in": "52w"})
    assert r.status_code == 201, r.text


def test_a_feature_extraction_model_on_predict_is_a_4xx_naming_embed(
    settings: Settings, client: TestClient
) -> None:
    registry, engine = open_registry(settings)
    try:
        registry.register_version(
            "emb",
            "feature-extraction",
            artifact=b"not an onnx model",
            artifact_format="onnx",
            labels=[],
            signature={},
            lineage={},
            evaluation={},
        )
    finally:
        engine.dispose()
    for ref in ("emb", "emb@production", "emb:1"):
        r = client.post(f"/v1/models/{ref}/predict", json={"inputs": ["hello"]})
        assert r.status_code == 422, r.text  # permanent: never the retryable 503
        assert "/v1/models/emb/embed" in r.json()["detail"]
        assert "Retry-After" not in r.headers
