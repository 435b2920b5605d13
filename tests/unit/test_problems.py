from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from aiweb import errors
from aiweb.api import problems
from aiweb.api.middleware import RequestIdMiddleware


class Body(BaseModel):
    n: int


def make_client() -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(RequestIdMiddleware)

    @app.get("/raise/{kind}")
    async def raise_(kind: str) -> dict[str, str]:
        classes = {
            "model": errors.ModelNotFound,
            "conflict": errors.ConflictError,
            "big": errors.PayloadTooLargeError,
            "full": errors.QueueFullError,
            "internal": errors.AiwebError,
        }
        if kind == "crash":
            raise RuntimeError("secret internal detail")
        raise classes[kind](
            "what happened", headers={"Retry-After": "1"} if kind == "full" else None
        )

    @app.post("/body")
    async def body(b: Body) -> dict[str, int]:
        return {"n": b.n}

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("kind", "status", "slug"),
    [
        ("model", 404, "model-not-found"),
        ("conflict", 409, "conflict"),
        ("big", 413, "payload-too-large"),
        ("full", 503, "queue-full"),
    ],
)
def test_domain_errors_map_to_their_status(kind: str, status: int, slug: str) -> None:
    r = make_client().get(f"/raise/{kind}", headers={"X-Request-ID": "abc-123"})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body == {
        "type": f"/problems/{slug}",
        "title": body["title"],
        "status": status,
        "detail": "what happened",
        "instance": f"/raise/{kind}",
        "request_id": "abc-123",
    }
    assert r.headers["x-request-id"] == "abc-123"
    if kind == "full":
        assert r.headers["retry-after"] == "1"


@pytest.mark.parametrize("kind", ["internal", "crash"])
def test_server_errors_hide_internal_detail(kind: str) -> None:
    r = make_client().get(f"/raise/{kind}")
    assert r.status_code == 500
    body = r.json()
    assert "secret" not in r.text
    assert "what happened" not in r.text
    assert body["request_id"] == r.headers["x-request-id"]


def test_validation_errors_list_each_problem() -> None:
    r = make_client().post("/body", json={"n": "not a number"})
    assert r.status_code == 422
    body = r.json()
    assert body["type"] == "/problems/validation"
    assert body["errors"][0]["loc"] == ["body", "n"]
    assert body["detail"].startswith("body.n:")


def test_unknown_route_and_method_are_problems() -> None:
    client = make_client()
    r = client.get("/nowhere")
    assert (r.status_code, r.headers["content-type"]) == (404, "application/problem+json")
    r = client.delete("/body")
    assert (r.status_code, r.json()["status"]) == (405, 405)


def test_malformed_request_ids_are_replaced() -> None:
    r = make_client().get("/raise/model", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"
    assert len(r.headers["x-request-id"]) == 32


def test_an_unexpected_error_closes_the_connection() -> None:
    r = make_client().get("/raise/crash")
    assert r.status_code == 500
    assert r.headers["connection"] == "close"  # the server drops it after a 500
    r = make_client().get("/raise/model")
    assert "connection" not in r.headers  # other problems keep the connection


def test_the_openapi_document_describes_problems() -> None:
    schema = make_client().app.openapi()  # type: ignore[attr-defined]
    assert schema["components"]["schemas"]["Problem"] == problems.PROBLEM_SCHEMA
    assert "HTTPValidationError" not in str(schema)
    post = schema["paths"]["/body"]["post"]["responses"]
    assert {"400", "413", "415", "422"} <= set(post)
    get = schema["paths"]["/raise/{kind}"]["get"]["responses"]
    assert {"404", "422"} <= set(get)
    for response in (*post.values(), *get.values()):
        content = response.get("content", {})
        if response is post.get("200") or response is get.get("200"):
            assert "application/json" in content
            continue
        assert content == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    # built once: the same document every time
    assert make_client().app.openapi() == schema  # type: ignore[attr-defined]
