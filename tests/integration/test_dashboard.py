"""The dashboard over HTTP (no browser): login, session cookie, CSRF, every page, the
actions, and that each goes through the same services as the API (audited).

The browser test (tests/e2e/test_dashboard_browser.py) clicks through the same pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from helpers import NEGATIVE_TEXT, open_registry, register_tiny

from aiweb.app import create_app
from aiweb.config import Settings
from aiweb.dashboard.users import UserService
from aiweb.db.session import make_engine, make_session_factory
from aiweb.security.audit import AuditLog
from conftest import create_key

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


@dataclass
class Dash:
    client: TestClient
    admin_key: str
    settings: Settings

    def login_form_token(self) -> str:
        page = self.client.get("/login")
        assert page.status_code == 200
        match = CSRF_RE.search(page.text)
        assert match
        return match.group(1)

    def login(self, **fields: str) -> object:
        token = self.login_form_token()
        return self.client.post(
            "/login", data={"csrf_token": token, "next": "/", **fields}, follow_redirects=False
        )

    def csrf(self, path: str = "/keys") -> str:
        match = CSRF_RE.search(self.client.get(path).text)
        assert match, path
        return match.group(1)


def users(settings: Settings) -> tuple[UserService, object]:
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    return UserService(sessions, AuditLog(sessions)), engine


@pytest.fixture
def dash(settings: Settings, tiny_model_bytes: bytes) -> Iterator[Dash]:
    key = create_key(settings, ("admin",), name="boss")
    registry, engine = open_registry(settings)
    register_tiny(registry, "sentiment", tiny_model_bytes, alias="production", tag="one")
    register_tiny(registry, "sentiment", tiny_model_bytes, tag="two")
    engine.dispose()
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield Dash(client, key, settings)


PAGES = [
    "/",
    "/models",
    "/models/sentiment",
    "/models/sentiment/versions/1",
    "/playground",
    "/jobs",
    "/jobs/table",
    "/keys",
    "/audit",
]


def test_pages_need_a_login_and_send_the_browser_there(dash: Dash) -> None:
    for path in PAGES:
        r = dash.client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")
    r = dash.client.get("/models/sentiment", headers={"HX-Request": "true"})
    assert r.headers["HX-Redirect"] == "/login?next=/models/sentiment"


def test_admin_key_login_sets_a_strict_httponly_cookie_and_every_page_renders(
    dash: Dash,
) -> None:
    r = dash.login(token=dash.admin_key)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "aiweb_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("Strict", "strict")
    assert dash.admin_key not in cookie  # the secret never travels in the cookie
    for path in PAGES:
        page = dash.client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        # no inline script: only src= scripts and JSON data blocks
        for tag in re.findall(r"<script[^>]*>", page.text):
            assert "src=" in tag, (path, tag)
        assert " style=" not in page.text, path
    assert "sentiment" in dash.client.get("/").text
    version = dash.client.get("/models/sentiment/versions/1").text
    assert "Lineage" in version
    assert "tiny" in version


def test_bad_logins_are_refused(dash: Dash) -> None:
    assert dash.login(token="aiw_nope_nope").status_code == 401
    predict_only = create_key(dash.settings, ("predict",), name="shop")
    r = dash.login(token=predict_only)
    assert r.status_code == 403
    assert "admin" in r.text
    assert dash.login().status_code == 422
    # the login form needs its double-submit token
    r = dash.client.post("/login", data={"token": dash.admin_key}, follow_redirects=False)
    assert r.status_code == 403
    assert dash.client.get("/", follow_redirects=False).status_code == 303


def test_forged_or_foreign_cookies_are_ignored(dash: Dash) -> None:
    dash.client.cookies.set("aiweb_session", "eyJraW5kIjoia2V5In0.forged.sig")
    assert dash.client.get("/", follow_redirects=False).status_code == 303
    other = Settings(**{**dash.settings.model_dump(), "secret_key": "x" * 64})
    from aiweb.dashboard.session import SessionCodec

    value, _ = SessionCodec(other.secret_key.get_secret_value(), 3600).issue("key", "boss")
    dash.client.cookies.set("aiweb_session", value)
    assert dash.client.get("/", follow_redirects=False).status_code == 303


def test_login_never_redirects_off_site(dash: Dash) -> None:
    token = dash.login_form_token()
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = dash.client.post(
            "/login",
            data={"csrf_token": token, "next": target, "token": dash.admin_key},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/", target
        token = dash.login_form_token()


def test_password_login_and_sessions_end_when_the_user_is_disabled(dash: Dash) -> None:
    service, engine = users(dash.settings)
    try:
        service.create("alice", PASSWORD)
        assert dash.login(username="alice", password="wrong password!").status_code == 401
        assert dash.login(username="nobody", password=PASSWORD).status_code == 401
        assert dash.login(username="alice", password=PASSWORD).status_code == 303
        assert dash.client.get("/", follow_redirects=False).status_code == 200
        service.disable("alice")
        assert dash.client.get("/", follow_redirects=False).status_code == 303
        assert dash.login(username="alice", password=PASSWORD).status_code == 401
    finally:
        engine.dispose()  # type: ignore[attr-defined]


def test_a_revoked_key_ends_its_dashboard_session(dash: Dash) -> None:
    create_key(dash.settings, ("admin",), name="temp")
    service_key = create_key(dash.settings, ("admin",), name="temp2")
    dash.login(token=service_key)
    assert dash.client.get("/").status_code == 200
    csrf = dash.csrf()
    r = dash.client.post("/keys/temp2/revoke", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303  # refuses to revoke the key you are logged in with
    assert "logged in with this key" in dash.client.get("/keys").text
    dash.client.post("/logout", data={"csrf_token": csrf})
    dash.login(token=dash.admin_key)
    r = dash.client.post("/keys/temp2/revoke", data={"csrf_token": dash.csrf()})
    assert r.status_code == 200
    assert "temp2 revoked" in r.text
    dash.client.cookies.clear()
    dash.login(token=service_key)
    assert dash.client.get("/", follow_redirects=False).status_code == 303


def test_forms_without_the_csrf_token_change_nothing(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    r = dash.client.post("/keys", data={"name": "sneaky", "scopes": "admin"})
    assert r.status_code == 403
    r = dash.client.post(
        "/models/sentiment/promote", data={"version": "2", "csrf_token": "not-the-token"}
    )
    assert r.status_code == 403
    r = dash.client.post(
        "/keys",
        data={"name": "sneaky", "csrf_token": dash.csrf()},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    keys = dash.client.get("/v1/keys", headers={"Authorization": f"Bearer {dash.admin_key}"})
    assert "sneaky" not in keys.text
    model = dash.client.get(
        "/v1/models/sentiment", headers={"Authorization": f"Bearer {dash.admin_key}"}
    ).json()
    assert model["aliases"]["production"] == 1


def test_create_key_shows_the_secret_once_and_it_works(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    r = dash.client.post(
        "/keys",
        data={"name": "webshop", "scopes": ["predict"], "csrf_token": dash.csrf()},
    )
    assert r.status_code == 200
    secret = re.search(r'id="new-secret"[^>]*>([^<]+)<', r.text)
    assert secret
    answer = dash.client.post(
        "/v1/models/sentiment/predict",
        json={"inputs": [NEGATIVE_TEXT]},
        headers={"Authorization": f"Bearer {secret.group(1)}"},
    )
    assert answer.status_code == 200
    assert secret.group(1) not in dash.client.get("/keys").text
    r = dash.client.post("/keys", data={"name": "Bad Name!", "csrf_token": dash.csrf()})
    assert r.status_code == 422
    assert "invalid key name" in r.text
    audit = dash.client.get("/audit").text
    assert "dashboard:boss" in audit
    assert "key.create" in audit


def test_promote_and_rollback_move_the_alias_and_are_audited(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    headers = {"Authorization": f"Bearer {dash.admin_key}"}
    r = dash.client.post(
        "/models/sentiment/promote", data={"version": "2", "csrf_token": dash.csrf("/models")}
    )
    assert r.status_code == 200
    assert "now serves version 2" in r.text
    assert dash.client.get("/v1/models/sentiment", headers=headers).json()["aliases"] == {
        "production": 2
    }
    r = dash.client.post(
        "/models/sentiment/rollback",
        data={"alias": "production", "csrf_token": dash.csrf("/models")},
    )
    assert "back to version 1" in r.text
    assert dash.client.get("/v1/models/sentiment", headers=headers).json()["aliases"] == {
        "production": 1
    }
    r = dash.client.post(
        "/models/sentiment/rollback", data={"alias": "staging", "csrf_token": dash.csrf()}
    )
    assert r.status_code == 200
    assert "flash error" in r.text
    audit = dash.client.get("/audit?action=alias.rollback").text
    assert "dashboard:boss" in audit


def test_playground_classifies_with_the_production_model(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    csrf = dash.csrf("/playground")
    r = dash.client.post(
        "/playground",
        data={"model": "sentiment", "text": NEGATIVE_TEXT, "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    assert re.search(r'id="predicted-label">negative<', r.text)
    assert "<html" not in r.text  # htmx gets the fragment only
    full = dash.client.post(
        "/playground", data={"model": "sentiment", "text": "   ", "csrf_token": csrf}
    )
    assert full.status_code == 422
    assert "Type a text" in full.text
    unknown = dash.client.post(
        "/playground",
        data={"model": "nope", "text": "hello", "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert "no model named" in unknown.text


def test_unknown_model_pages_are_404_pages(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    assert dash.client.get("/models/nope").status_code == 404
    assert dash.client.get("/models/sentiment/versions/99").status_code == 404
    assert dash.client.get("/jobs?status=bogus").status_code == 422


def test_dashboard_can_be_switched_off(settings: Settings) -> None:
    settings = Settings(**{**settings.model_dump(), "dashboard": {"enabled": False}})
    with TestClient(create_app(settings)) as client:
        assert client.get("/login").status_code == 404
        assert client.get("/livez").status_code == 200


def test_users_cli_creates_lists_and_disables_dashboard_logins(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tiny_model_bytes: bytes
) -> None:
    from typer.testing import CliRunner

    from aiweb.cli import app as cli

    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    short = runner.invoke(cli, ["users", "create", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code != 0
    assert "at least 12 characters" in short.stderr
    made = runner.invoke(cli, ["users", "create", "bob", "--password-stdin"], input=PASSWORD)
    assert made.exit_code == 0, made.stderr
    again = runner.invoke(cli, ["users", "create", "bob", "--password-stdin"], input=PASSWORD)
    assert again.exit_code != 0
    assert "exists" in again.stderr
    listed = runner.invoke(cli, ["users", "list"])
    assert "bob" in listed.stdout
    assert "active" in listed.stdout
    with TestClient(create_app(settings)) as client:
        dash = Dash(client, "", settings)
        assert dash.login(username="bob", password=PASSWORD).status_code == 303
        assert client.get("/", follow_redirects=False).status_code == 200
        changed = runner.invoke(
            cli, ["users", "passwd", "bob", "--password-stdin"], input=PASSWORD + " 2"
        )
        assert changed.exit_code == 0, changed.stderr
        assert client.get("/", follow_redirects=False).status_code == 303  # session ended
        assert dash.login(username="bob", password=PASSWORD).status_code == 401
        assert dash.login(username="bob", password=PASSWORD + " 2").status_code == 303
        assert runner.invoke(cli, ["users", "disable", "bob"]).exit_code == 0
        assert client.get("/", follow_redirects=False).status_code == 303
    assert "disabled" in runner.invoke(cli, ["users", "list"]).stdout
