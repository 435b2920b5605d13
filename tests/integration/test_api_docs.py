"""The API docs over HTTP (no browser): ``/docs``, ``/redoc`` and ``/docs/oauth2-redirect``
load only files the app serves itself, with the dashboard on or off, under a CSP that names
no other host. The browser test (test_api_docs_browser.py) renders them offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from aiweb.api.hygiene import STRICT_CSP
from aiweb.app import create_app
from aiweb.config import Settings

# the docs pages are the same on SQLite: its PostgreSQL variant would add nothing
# (tests/conftest.py)
pytestmark = pytest.mark.sqlite_only

URL_ATTR = re.compile(r'\b(?:src|href)="([^"]*)"')
NONCE = re.compile(r"'nonce-([A-Za-z0-9_-]+)'")
PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")


@pytest.fixture(params=[True, False], ids=["dashboard", "no-dashboard"])
def client(request: pytest.FixtureRequest, settings: Settings) -> Iterator[TestClient]:
    settings = settings.model_copy(
        update={"dashboard": settings.dashboard.model_copy(update={"enabled": request.param})}
    )
    with TestClient(create_app(settings)) as c:
        yield c


def assert_local_policy(csp: str) -> None:
    assert "http" not in csp
    assert "*" not in csp
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert "script-src 'self';" in csp


def test_docs_pages_load_only_local_files(client: TestClient) -> None:
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert "//" not in r.text, path  # no URL with a host, not even scheme-relative
        assert_local_policy(r.headers["content-security-policy"])
        urls = URL_ATTR.findall(r.text)
        assert urls, path
        for url in urls:
            assert url.startswith("/"), (path, url)
            asset = client.get(url)
            assert asset.status_code == 200, (path, url)
            if url.endswith(".js"):
                assert "javascript" in asset.headers["content-type"], url
            if url.endswith(".css"):
                assert asset.headers["content-type"].startswith("text/css"), url


def test_swagger_ui_runs_under_the_strict_policy(client: TestClient) -> None:
    for path in ("/docs", "/docs/oauth2-redirect"):
        assert client.get(path).headers["content-security-policy"] == STRICT_CSP
    page = client.get("/docs").text
    assert "/static/apidocs/vendor/swagger-ui-bundle-5.35.0.js" in page
    assert '"url": "/openapi.json"' in page


def test_redoc_gets_a_fresh_style_nonce(client: TestClient) -> None:
    nonces = []
    for _ in range(2):
        r = client.get("/redoc")
        csp = r.headers["content-security-policy"]
        match = NONCE.search(csp)
        assert match
        nonces.append(match.group(1))
        assert f'data-nonce="{match.group(1)}"' in r.text
        assert "worker-src 'self' blob:;" in csp
        assert r.headers["cache-control"] == "no-store"
        assert "fonts.googleapis.com" not in r.text
        assert "/static/apidocs/vendor/redoc.standalone-2.5.4.js" in r.text
    assert nonces[0] != nonces[1]


def test_the_docs_are_not_in_the_schema_and_the_mounts_are_apart(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc", "/docs/oauth2-redirect"} & set(paths)
    assert client.get("/static/apidocs/vendor/nope.js").status_code == 404
    # the dashboard's /static mount and the docs' /static/apidocs do not shadow each other
    dashboard = client.app.state.settings.dashboard.enabled  # type: ignore[attr-defined]
    assert client.get("/static/app.css").status_code == (200 if dashboard else 404)
