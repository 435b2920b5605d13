from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.testclient import TestClient

from aiweb.api import problems
from aiweb.api.hygiene import (
    STRICT_CSP,
    SecurityHeadersMiddleware,
    add_cors,
    content_security_policy,
)
from aiweb.api.middleware import RequestIdMiddleware

ORIGIN = "https://app.example.com"


def make_app(origins: list[str] | None = None) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    add_cors(app, origins or [])

    @app.get("/v1/thing")
    async def thing() -> dict[str, int]:
        return {"n": 1}

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<p>hi</p>"

    @app.get("/own")
    async def own() -> JSONResponse:
        return JSONResponse(
            {"n": 1},
            headers={"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "origin"},
        )

    @app.get("/own-csp", response_class=HTMLResponse)
    async def own_csp() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>", headers={"Content-Security-Policy": "default-src *"})

    return app


BASE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def test_security_headers_on_json() -> None:
    r = TestClient(make_app()).get("/v1/thing")
    assert r.status_code == 200
    for name, value in BASE.items():
        assert r.headers[name] == value
    assert "content-security-policy" not in r.headers
    assert r.headers["x-request-id"]


def test_security_headers_on_errors() -> None:
    r = TestClient(make_app()).get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    for name, value in BASE.items():
        assert r.headers[name] == value


def test_strict_csp_on_html() -> None:
    r = TestClient(make_app()).get("/page")
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == STRICT_CSP
    assert "'unsafe-inline'" not in STRICT_CSP
    assert "frame-ancestors 'none'" in STRICT_CSP
    for name, value in BASE.items():
        assert r.headers[name] == value


def test_no_relaxed_csp_for_any_path() -> None:
    # FastAPI's own /docs page (CDN scripts, inline script) gets no exception any more:
    # aiweb serves its docs from vendored files (aiweb.api.apidocs)
    c = TestClient(make_app())
    for path in ("/docs", "/redoc", "/page"):
        r = c.get(path)
        assert r.headers["content-security-policy"] == STRICT_CSP
    # The OpenAPI document itself is JSON: no CSP.
    assert "content-security-policy" not in c.get("/openapi.json").headers


def test_csp_sources_are_the_app_only() -> None:
    for csp in (STRICT_CSP, content_security_policy(style_nonce="abc", blob_workers=True)):
        assert "http" not in csp
        assert "*" not in csp
        assert "'unsafe-inline'" not in csp
        assert "'unsafe-eval'" not in csp
        assert "default-src 'self';" in csp
        assert "script-src 'self';" in csp
    assert content_security_policy() == STRICT_CSP
    assert "worker-src" not in STRICT_CSP
    relaxed = content_security_policy(style_nonce="abc", blob_workers=True)
    assert "style-src 'self' 'nonce-abc';" in relaxed
    assert "worker-src 'self' blob:;" in relaxed


def test_headers_the_app_set_are_kept() -> None:
    c = TestClient(make_app())
    r = c.get("/own")
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    assert r.headers["referrer-policy"] == "origin"
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert r.headers["x-content-type-options"] == "nosniff"
    r = c.get("/own-csp")
    assert r.headers.get_list("content-security-policy") == ["default-src *"]


def test_no_cors_by_default() -> None:
    c = TestClient(make_app())
    r = c.get("/v1/thing", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in r.headers
    r = c.options(
        "/v1/thing",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_add_cors_with_no_origins_adds_nothing() -> None:
    app = FastAPI()
    add_cors(app, [])
    assert app.user_middleware == []


def test_cors_preflight_for_a_listed_origin() -> None:
    c = TestClient(make_app([ORIGIN]))
    r = c.options(
        "/v1/thing",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, X-API-Key",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "DELETE"}
    allowed = r.headers["access-control-allow-headers"].lower()
    for name in ("authorization", "x-api-key", "content-type", "x-request-id"):
        assert name in allowed
    assert "access-control-allow-credentials" not in r.headers


def test_cors_simple_request_exposes_headers() -> None:
    r = TestClient(make_app([ORIGIN])).get("/v1/thing", headers={"Origin": ORIGIN})
    assert r.headers["access-control-allow-origin"] == ORIGIN
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after", "ratelimit-remaining"} <= exposed


def test_cors_refuses_an_unlisted_origin() -> None:
    c = TestClient(make_app([ORIGIN]))
    r = c.options(
        "/v1/thing",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    r = c.get("/v1/thing", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
