"""Keys, scopes, rate limits and the audit log over HTTP, on every database.

The auth matrix is generated from the app's own route table, so a new /v1 route cannot
escape it: every route must declare its scope (``x-required-scope``).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from helpers import POSITIVE_TEXT, register_versions

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.db.session import make_engine, make_session_factory
from aiweb.security.keys import KeyService
from conftest import create_key

SCOPES = ("predict", "train", "admin", "chat")
#: a publishable chat key's page (the key below lists it, and the assistant "sentiment")
ORIGIN = {"Origin": "https://shop.example"}
PATH_VALUES = {"name": "sentiment", "version": "1", "alias": "production"}


def v1_routes() -> list[tuple[str, str, str]]:
    """(method, path, scope) of every /v1 operation of the app (from its route table, as
    rendered by FastAPI's OpenAPI generator, which walks every included router)."""
    schema = create_app(Settings()).openapi()
    routes = []
    for path, operations in schema["paths"].items():
        if path.startswith("/v1"):
            for method, operation in operations.items():
                routes.append((method.upper(), path, operation.get("x-required-scope")))
    return sorted(routes)


ROUTES = v1_routes()


def test_every_v1_route_declares_a_scope() -> None:
    assert ROUTES, "no /v1 routes found"
    missing = [(m, p) for m, p, scope in ROUTES if scope not in SCOPES]
    assert not missing, f"routes without a scope: {missing}"


def fill(path: str) -> str:
    path = path.replace("{name}", "sentiment").replace("{version}", "1")
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m[1], "demo"), path)


@pytest.fixture
def keys(settings: Settings, tiny_model_bytes: bytes) -> dict[str, str]:
    """One key per state/scope in the test database."""
    register_versions(settings, "sentiment", tiny_model_bytes, 1)
    made = {
        scope: create_key(settings, (scope,), name=f"only-{scope}")
        for scope in SCOPES
        if scope != "chat"
    }
    engine = make_engine(settings.resolved_database_url)
    service = KeyService(make_session_factory(engine))
    _, made["chat"] = service.create(
        "only-chat", ["chat"], targets=["sentiment"], origins=[ORIGIN["Origin"]]
    )
    _, made["revoked"] = service.create("revoked", ["admin"])
    service.revoke("revoked")
    _, made["expired"] = service.create("expired", ["admin"], expires_in=timedelta(seconds=-1))
    engine.dispose()
    return made


# every route's protection, the same on every database (keys on PostgreSQL: the tests below)
@pytest.mark.sqlite_only
@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_auth_matrix(
    settings: Settings, keys: dict[str, str], method: str, path: str, scope: str
) -> None:
    url = fill(path)
    body = {"inputs": [POSITIVE_TEXT]} if method in ("POST", "PUT") else None
    with TestClient(create_app(settings)) as client:

        def call(headers: dict[str, str]) -> int:
            return client.request(method, url, json=body, headers=headers).status_code

        for headers, label in [
            ({}, "no key"),
            ({"Authorization": "Bearer not-a-key"}, "malformed"),
            ({"Authorization": "Bearer aiw_000000000000_" + "x" * 43}, "unknown"),
            ({"Authorization": f"Bearer {keys['revoked']}"}, "revoked"),
            ({"X-API-Key": keys["expired"]}, "expired"),
        ]:
            resp = client.request(method, url, json=body, headers=headers)
            assert resp.status_code == 401, (label, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.headers["www-authenticate"].startswith("Bearer")
        for other in SCOPES:
            status = call({"Authorization": f"Bearer {keys[other]}"} | ORIGIN)
            if other in (scope, "admin") or (scope, other) == ("chat", "predict"):
                assert status not in (401, 403), (other, status)
            else:
                assert status == 403, (other, status)


def test_predict_key_predicts_but_cannot_move_aliases(
    settings: Settings, keys: dict[str, str]
) -> None:
    with TestClient(create_app(settings), headers={"X-API-Key": keys["predict"]}) as c:
        ok = c.post("/v1/models/sentiment/predict", json={"inputs": [POSITIVE_TEXT]})
        assert ok.status_code == 200
        denied = c.put("/v1/models/sentiment/aliases/production", json={"version": 1})
        assert denied.status_code == 403
        assert denied.json()["type"] == "/problems/forbidden"
        assert "admin" in denied.json()["detail"]


def test_keys_api_create_list_revoke_and_audit(settings: Settings, keys: dict[str, str]) -> None:
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    with TestClient(create_app(settings), headers=admin) as c:
        created = c.post(
            "/v1/keys", json={"name": "webshop", "scopes": ["predict"], "expires_in": "90d"}
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert created.json()["scopes"] == ["predict"]
        assert created.json()["expires_at"] is not None
        listed = c.get("/v1/keys").json()["keys"]
        assert {k["name"]: k["state"] for k in listed}["webshop"] == "active"
        assert all("secret" not in k for k in listed)
        assert secret not in c.get("/v1/keys").text
        use = {"Authorization": f"Bearer {secret}"}
        predicted = c.post("/v1/models/sentiment/predict", json={"inputs": ["x"]}, headers=use)
        assert predicted.status_code == 200
        assert (
            c.post("/v1/keys", json={"name": "webshop", "scopes": ["predict"]}).status_code == 409
        )
        assert c.post("/v1/keys", json={"name": "x", "scopes": ["root"]}).status_code == 422
        # the longest lifetime (100 years) is in the schema's pattern, so a schema-valid
        # body is never refused for it (found by schemathesis: "143324d")
        pattern = c.get("/openapi.json").json()["components"]["schemas"]["KeyCreate"]
        pattern = pattern["properties"]["expires_in"]["anyOf"][0]["pattern"]
        for lifetime, fits in (
            ("36525d", True),
            ("36526d", False),
            ("876600h", True),
            ("876601h", False),
            ("5217w", True),
            ("5218w", False),
            ("999999m", True),
            ("143324d", False),
            ("0000001d", False),
        ):
            assert bool(re.fullmatch(pattern, lifetime)) == fits, lifetime
            body = {"name": f"life-{lifetime}", "scopes": ["predict"], "expires_in": lifetime}
            assert c.post("/v1/keys", json=body).status_code == (201 if fits else 422), lifetime
        assert c.delete("/v1/keys/webshop").json()["state"] == "revoked"
        assert c.delete("/v1/keys/nobody").status_code == 404
        after = c.post("/v1/models/sentiment/predict", json={"inputs": ["x"]}, headers=use)
        assert after.status_code == 401  # revoked in this process: at once
        c.put("/v1/models/sentiment/aliases/staging", json={"version": 1})
        page = c.get("/v1/audit", params={"limit": 2}).json()
        assert page["total"] >= 3
        assert len(page["events"]) == 2
        assert page["next_offset"] == 2
        events = c.get("/v1/audit", params={"limit": 100}).json()["events"]
        actions = [(e["actor"], e["action"], e["target"]) for e in events]
        assert ("only-admin", "alias.set", "model:sentiment@staging") in actions
        assert ("only-admin", "key.revoke", "key:webshop") in actions
        assert ("only-admin", "key.create", "key:webshop") in actions
        alias_event = next(e for e in events if e["action"] == "alias.set")
        assert alias_event["before"] == {"version": None}
        assert alias_event["after"] == {"version": 1}
        assert alias_event["request_id"]


def test_rate_limit_answers_429_with_headers(settings: Settings, keys: dict[str, str]) -> None:
    limited = settings.model_copy(
        update={
            "rate_limit": settings.rate_limit.model_copy(
                update={"enabled": True, "predict": "3/minute", "anonymous": "2/minute"}
            )
        }
    )
    with TestClient(create_app(limited), headers={"X-API-Key": keys["predict"]}) as c:
        statuses = []
        for _ in range(4):
            r = c.post("/v1/models/sentiment/predict", json={"inputs": ["x"]})
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 429]
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-limit"] == "3"
        assert r.headers["ratelimit-remaining"] == "0"
        assert "3 per 1 minute" in r.json()["detail"]
        # anonymous callers have their own budget, by address
        anon = [c.get("/v1/models", headers={"X-API-Key": ""}).status_code for _ in range(3)]
        assert anon == [401, 401, 429]


def test_first_start_creates_one_admin_key(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url)
    from aiweb.db.migrate import upgrade

    upgrade(engine)
    service = KeyService(make_session_factory(engine))
    secret = service.ensure_admin_key()
    assert secret is not None
    assert service.authenticate(secret).scopes == ("admin",)
    assert service.ensure_admin_key() is None
    engine.dispose()
