"""/metrics is open on loopback and needs an admin key elsewhere (configurable)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from aiweb.app import create_app
from aiweb.config import Settings


def test_metrics_open_on_loopback_only(settings: Settings, admin_key: str) -> None:
    app = create_app(settings)
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        r = local.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "process_" in r.text or "python_" in r.text
    with TestClient(app, client=("203.0.113.9", 50000)) as remote:
        r = remote.get("/metrics")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert remote.get("/metrics", headers={"X-API-Key": admin_key}).status_code == 200


def test_metrics_on_loopback_can_require_a_key(settings: Settings, admin_key: str) -> None:
    closed = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"metrics_public_on_loopback": False})}
    )
    with TestClient(create_app(closed), client=("127.0.0.1", 50000)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": admin_key}).status_code == 200
