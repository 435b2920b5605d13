"""The dashboard over HTTP (no browser): login, session cookie, CSRF, every page, the
actions, and that each goes through the same services as the API (audited).

The browser test (tests/e2e/test_dashboard_browser.py) clicks through the same pages.
"""

from __future__ import annotations

import logging
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
    "/assistants",
    "/assistants/inbox",
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


def test_a_cookie_replayed_after_logout_is_refused_by_every_worker(dash: Dash) -> None:
    """Logout closes the session server-side: a copy of the cookie taken before it gets
    the login page, from this app and from a second one on the same database (another
    worker); a session never logged out still works in both."""
    assert dash.login(token=dash.admin_key).status_code == 303
    stolen = dash.client.cookies["aiweb_session"]
    with TestClient(create_app(dash.settings), base_url="http://testserver") as other:
        other.cookies.set("aiweb_session", stolen)
        assert other.get("/", follow_redirects=False).status_code == 200  # shared, live
        r = dash.client.post("/logout", data={"csrf_token": dash.csrf()}, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/login"
        for client in (dash.client, other):
            client.cookies.set("aiweb_session", stolen)
            r = client.get("/keys", follow_redirects=False)
            assert r.status_code == 303, r.text[:300]
            assert r.headers["location"].startswith("/login?next=")
            r = client.get("/keys", headers={"HX-Request": "true"})
            assert r.headers["HX-Redirect"].startswith("/login")
            # a POST with the old CSRF token changes nothing either
            r = client.post(
                "/keys", data={"csrf_token": "x", "name": "sneaky"}, follow_redirects=False
            )
            assert r.status_code == 303
        # a new login is a new session; the old cookie stays dead
        dash.client.cookies.clear()
        assert dash.login(token=dash.admin_key).status_code == 303
        fresh = dash.client.cookies["aiweb_session"]
        assert fresh != stolen
        other.cookies.set("aiweb_session", fresh)
        assert other.get("/", follow_redirects=False).status_code == 200
        other.cookies.set("aiweb_session", stolen)
        assert other.get("/", follow_redirects=False).status_code == 303


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


def test_create_a_publishable_chat_key(dash: Dash) -> None:
    dash.login(token=dash.admin_key)
    form = {"name": "site", "scopes": ["chat"], "assistants": "helpdesk"}
    r = dash.client.post("/keys", data={**form, "csrf_token": dash.csrf()})
    assert r.status_code == 422
    assert "origins of the pages" in r.text
    form["origins"] = "https://shop.example, http://localhost:3000"
    r = dash.client.post("/keys", data={**form, "csrf_token": dash.csrf()})
    assert r.status_code == 200
    assert re.search(r'id="new-secret"[^>]*>aiw_', r.text)
    row = re.search(r'<tr data-key="site">(.*?)</tr>', r.text, re.S)
    assert row
    assert "helpdesk from http://localhost:3000, https://shop.example" in row.group(1)


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


def _failures(reason: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("aiweb_dashboard_login_failures_total", {"reason": reason})
    return value or 0.0


def test_login_throttle_slows_the_attacked_account_and_address_only(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """An attacker guessing alice's password from one address gets 429 (Retry-After)
    after the free failures, even with the right password; bob logs in from that address
    while it is under its own limit; once the address is over it, the admin key and bob
    still log in from another address. Every failure is counted and logged."""
    # the capture handler on the logger itself: a test that ran `aiweb serve`'s logging
    # config earlier in this process stops "aiweb" from propagating to the root logger
    dashboard_log = logging.getLogger("aiweb.dashboard")
    dashboard_log.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="aiweb.dashboard")
    try:
        _check_login_throttle(settings, caplog)
    finally:
        dashboard_log.removeHandler(caplog.handler)


def _check_login_throttle(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    throttled = Settings(
        **{
            **settings.model_dump(),
            "dashboard": {
                "login_free_failures_per_account": 3,
                "login_free_failures_per_address": 6,
                "login_base_delay_s": 30,
            },
        }
    )
    admin_key = create_key(throttled, ("admin",), name="boss")
    service, engine = users(throttled)
    try:
        service.create("alice", PASSWORD)
        service.create("bob", PASSWORD)
    finally:
        engine.dispose()  # type: ignore[attr-defined]
    bad_before, throttled_before = _failures("bad_password"), _failures("throttled")
    app = create_app(throttled)
    with TestClient(app, client=("203.0.113.66", 40000)) as attacker_client:
        attacker = Dash(attacker_client, admin_key, throttled)
        statuses = [
            attacker.login(username="alice", password=f"guess number {i}").status_code
            for i in range(6)
        ]
        # 3 free failures, a 4th checked (it starts the delay), then refused unchecked
        assert statuses == [401, 401, 401, 401, 429, 429], statuses
        right = attacker.login(username="alice", password=PASSWORD)
        assert right.status_code == 429  # even the right password waits while throttled
        assert 25 <= int(right.headers["retry-after"]) <= 30
        assert "this account" in right.text
        assert attacker.client.get("/", follow_redirects=False).status_code == 303
        # another account from the same address: the address has had 4 of its 6
        assert attacker.login(username="bob", password=PASSWORD).status_code == 303
        attacker.client.cookies.clear()
        for _ in range(3):  # failures 5 and 6 are free, the 7th starts the address's delay
            assert attacker.login(token="aiw_000000000000_nope").status_code == 401
        over = attacker.login(token=admin_key)
        assert over.status_code == 429  # the address is over its limit now
        assert "your address" in over.text

        # the real admin and bob from elsewhere are not affected
        elsewhere = Dash(
            TestClient(app, client=("198.51.100.7", 50000), base_url="http://testserver"),
            admin_key,
            throttled,
        )
        assert elsewhere.login(token=admin_key).status_code == 303
        assert elsewhere.client.get("/", follow_redirects=False).status_code == 200
        elsewhere.client.cookies.clear()
        assert elsewhere.login(username="bob", password=PASSWORD).status_code == 303
        assert elsewhere.login(username="alice", password=PASSWORD).status_code == 429

    assert _failures("bad_password") - bad_before == 4
    assert _failures("throttled") - throttled_before == 5
    assert "dashboard login failed: bad_password" in caplog.text
    assert "203.0.113.66" in caplog.text
    assert PASSWORD not in caplog.text
    assert "guess number" not in caplog.text


def test_login_delays_double_per_failure_up_to_the_cap(settings: Settings) -> None:
    """The throttle on the database with a clock of our own: free failures, then delays
    of 2, 4, 8 … seconds capped at the maximum; refusals until the delay is over, one
    checked attempt then; a success clears the account; old failures are forgotten."""
    from datetime import UTC, datetime, timedelta

    from aiweb.config import DashboardSettings
    from aiweb.dashboard.throttle import LoginThrottle, account_scope
    from aiweb.db.migrate import upgrade

    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    now = [datetime(2026, 12, 2, 4, 0, tzinfo=UTC)]
    conf = DashboardSettings(
        login_free_failures_per_account=2,
        login_base_delay_s=2,
        login_max_delay_s=20,
        login_failure_memory_s=3600,
    )
    throttle = LoginThrottle(make_session_factory(engine), conf, clock=lambda: now[0])
    scope = [account_scope("alice")]
    try:
        delays = []
        for _ in range(7):
            assert throttle.admit(scope) is None  # each attempt after its delay is checked
            throttle.failed(scope)
            refusal = throttle.admit(scope)
            delays.append(0 if refusal is None else refusal.retry_after_s)
            if refusal is not None:
                now[0] += timedelta(seconds=refusal.retry_after_s - 0.5)
                assert throttle.admit(scope) is not None  # still waiting
                now[0] += timedelta(seconds=0.5)
        assert delays == [0, 0, 2, 4, 8, 16, 20]
        # a checked attempt reserves the slot: a concurrent second one waits
        assert throttle.admit(scope) is None
        assert throttle.admit(scope) is not None
        throttle.succeeded(scope)
        assert throttle.admit(scope) is None
        throttle.failed(scope)
        throttle.failed(scope)
        throttle.failed(scope)
        assert throttle.admit(scope) is not None
        now[0] += timedelta(hours=2)  # forgotten
        assert throttle.failed(scope) == {scope[0]: 1}
        assert throttle.admit(scope) is None
    finally:
        engine.dispose()
