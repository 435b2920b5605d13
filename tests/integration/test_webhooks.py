"""Signed webhooks (issue 27, item 6): subscriptions over HTTP, events queued by the job
runner, the registry and the drift alerts, delivered by a real HTTP receiver, signed,
retried and recorded — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_registry, register_tiny
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from aiweb.app import create_app
from aiweb.client.webhooks import WebhookSignatureError, verify_signature
from aiweb.config import AlertSettings, Settings, WebhookSettings
from aiweb.db.orm import SqlJob, utcnow
from aiweb.db.session import make_session_factory
from aiweb.jobs.context import JobContext
from aiweb.jobs.env import JobEnv, build_job_env
from aiweb.jobs.runner import execute
from aiweb.jobs.types import JobType, JobTypes
from aiweb.monitoring.alerts import AlertSender
from aiweb.webhooks import SIGNATURE_HEADER, WebhookService, emit

SECRET = "whsec_0123456789abcdef"


class Receiver:
    """An HTTP receiver on 127.0.0.1 answering the statuses of ``script`` in turn (then
    200), keeping each post's raw body and headers."""

    def __init__(self, script: tuple[int, ...] = ()) -> None:
        self.posts: list[tuple[bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self
        answers = list(script)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.lock:
                    receiver.posts.append((body, dict(self.headers.items())))
                    status = answers.pop(0) if answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    _registry, engine = open_registry(settings)  # migrated
    yield make_session_factory(engine)
    engine.dispose()


def fast(**changes: Any) -> WebhookSettings:
    return WebhookSettings(retry_backoff_s=0, **changes)


def test_a_delivery_is_signed_and_the_sdk_verifies_it(
    sessions: sessionmaker[Session], receiver: Receiver
) -> None:
    service = WebhookService(sessions, fast())
    service.put("shop", receiver.url, ["job.finished"], SECRET)
    assert emit(sessions, "job.finished", {"job_id": "j1", "status": "succeeded"}) == 1
    assert emit(sessions, "model.promoted", {"model": "m"}) == 0  # not subscribed
    assert service.deliver_due() == {"sent": 1, "retried": 0, "failed": 0}
    ((body, headers),) = receiver.posts
    verify_signature(body, headers[SIGNATURE_HEADER], SECRET)
    event = json.loads(body)
    assert event["type"] == "job.finished"
    assert event["data"] == {"job_id": "j1", "status": "succeeded"}
    assert headers["Aiweb-Event"] == "job.finished"
    (delivery,) = service.deliveries("shop")
    assert headers["Aiweb-Delivery"] == delivery["id"]
    assert (delivery["status"], delivery["attempts"], delivery["response_status"]) == (
        "sent",
        1,
        200,
    )
    assert delivery["delivered_at"] is not None
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_signature(body, headers[SIGNATURE_HEADER], "whsec_not-the-secret-at-all")
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify_signature(body + b" ", headers[SIGNATURE_HEADER], SECRET)
    assert service.deliver_due() == {"sent": 0, "retried": 0, "failed": 0}  # sent once


def test_a_500_is_retried_then_recorded_with_two_attempts(
    sessions: sessionmaker[Session],
) -> None:
    flaky = Receiver(script=(500,))
    try:
        service = WebhookService(sessions, fast())
        service.put("shop", flaky.url, ["model.*"], SECRET)
        emit(sessions, "model.promoted", {"model": "m", "version": 2})
        assert service.deliver_due() == {"sent": 0, "retried": 1, "failed": 0}
        (pending,) = service.deliveries("shop")
        assert (pending["status"], pending["attempts"], pending["response_status"]) == (
            "pending",
            1,
            500,
        )
        assert pending["last_error"] == "HTTP 500"
        assert service.deliver_due(utcnow() + timedelta(seconds=1))["sent"] == 1
    finally:
        flaky.close()
    (sent,) = service.deliveries("shop")
    assert (sent["status"], sent["attempts"], sent["response_status"]) == ("sent", 2, 200)
    assert len(flaky.posts) == 2
    assert flaky.posts[0][0] == flaky.posts[1][0]  # the same body, signed again
    for body, headers in flaky.posts:
        verify_signature(body, headers[SIGNATURE_HEADER], SECRET)


def test_attempts_are_bounded_with_back_off(sessions: sessionmaker[Session]) -> None:
    dead = Receiver(script=(503,) * 10)
    try:
        service = WebhookService(sessions, WebhookSettings(max_attempts=3, retry_backoff_s=60))
        service.put("shop", dead.url, ["job.finished"], SECRET)
        emit(sessions, "job.finished", {"job_id": "j"})
        now = utcnow()
        assert service.deliver_due(now)["retried"] == 1
        assert service.deliver_due(now + timedelta(seconds=30))["retried"] == 0  # backing off
        assert service.deliver_due(now + timedelta(seconds=61))["retried"] == 1
        assert service.deliver_due(now + timedelta(seconds=200))["failed"] == 1
        assert service.deliver_due(now + timedelta(days=1)) == {
            "sent": 0,
            "retried": 0,
            "failed": 0,
        }
    finally:
        dead.close()
    (failed,) = service.deliveries("shop")
    assert (failed["status"], failed["attempts"], failed["next_attempt_at"]) == ("failed", 3, None)
    assert len(dead.posts) == 3


def test_an_unreachable_url_is_recorded(sessions: sessionmaker[Session]) -> None:
    gone = Receiver()
    url = gone.url
    gone.close()
    service = WebhookService(sessions, fast(max_attempts=1, timeout_s=2))
    service.put("shop", url, ["job.finished"], SECRET)
    emit(sessions, "job.finished", {})
    assert service.deliver_due()["failed"] == 1
    (failed,) = service.deliveries("shop")
    assert failed["response_status"] is None
    assert failed["last_error"].startswith("ConnectError")


@pytest.fixture
def env(settings: Settings) -> Iterator[JobEnv]:
    job_env = build_job_env(settings, migrate=True)
    yield job_env
    job_env.close()


def test_a_finished_job_emits_job_finished(env: JobEnv, receiver: Receiver) -> None:
    sessions = make_session_factory(env.engine)
    service = WebhookService(sessions, fast())
    service.put("ops", receiver.url, ["job.*"], SECRET)

    def ok(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        return {"answer": 42}

    def broken(env: JobEnv, ctx: JobContext) -> dict[str, Any]:
        raise ValueError("no good")

    types = JobTypes([JobType("ok", ok), JobType("broken", broken)])
    good = env.jobs.create("ok", {}, submitted_by="tests", max_attempts=1).id
    bad = env.jobs.create("broken", {}, submitted_by="tests", max_attempts=1).id
    assert execute(env, good, "tests:1", types).kind == "succeeded"
    assert execute(env, bad, "tests:1", types).kind == "failed"
    assert service.deliver_due()["sent"] == 2
    events = {json.loads(body)["data"]["job_id"]: json.loads(body) for body, _ in receiver.posts}
    assert events[good]["type"] == "job.finished"
    assert events[good]["data"]["status"] == "succeeded"
    assert events[good]["data"]["result"] == {"answer": 42}
    assert events[good]["data"]["error"] is None
    assert events[bad]["data"]["status"] == "failed"
    assert "no good" in events[bad]["data"]["error"]


def test_jobs_ended_without_their_runner_emit_job_finished(env: JobEnv, receiver: Receiver) -> None:
    """A job cancelled while pending, and jobs ended by the scheduler's sweep after their
    runner died (out of attempts; or with a cancel pending) finish without a runner to
    announce them: the store queues their ``job.finished`` — once each."""
    sessions = make_session_factory(env.engine)
    service = WebhookService(sessions, fast())
    service.put("ops", receiver.url, ["job.finished"], SECRET)
    pending = env.jobs.create("ok", {}, submitted_by="tests", max_attempts=3).id
    assert env.jobs.cancel(pending).status == "cancelled"
    assert env.jobs.cancel(pending).status == "cancelled"  # again: no second event
    dead = env.jobs.create("ok", {}, submitted_by="tests", max_attempts=1).id
    cancelling = env.jobs.create("ok", {}, submitted_by="tests", max_attempts=3).id
    for job_id in (dead, cancelling):
        assert env.jobs.claim(job_id, "celery:gone:1", lease_s=2)
    assert env.jobs.cancel(cancelling).status == "running"  # asked; its runner is gone
    with env.engine.begin() as conn:
        conn.execute(
            update(SqlJob)
            .where(SqlJob.id.in_([dead, cancelling]))
            .values(heartbeat_at=utcnow() - timedelta(seconds=5))
        )
    assert env.jobs.fail_exhausted(lease_s=2) == [dead]
    assert service.deliver_due()["sent"] == 3
    events = [json.loads(body)["data"] for body, _ in receiver.posts]
    statuses = {event["job_id"]: event["status"] for event in events}
    assert len(events) == 3
    assert statuses == {pending: "cancelled", dead: "failed", cancelling: "cancelled"}
    failed = next(event for event in events if event["job_id"] == dead)
    assert "no attempts left" in failed["error"]
    assert all(event["finished_at"] for event in events)


def test_promoting_emits_model_promoted(
    settings: Settings, tiny_model_bytes: bytes, receiver: Receiver
) -> None:
    registry, engine = open_registry(settings)
    try:
        sessions = make_session_factory(engine)
        service = WebhookService(sessions, fast())
        service.put("ops", receiver.url, ["model.promoted"], SECRET)
        register_tiny(registry, "sentiment", tiny_model_bytes)  # v1 becomes production
        register_tiny(registry, "sentiment", tiny_model_bytes)  # v2: no move
        registry.promote("sentiment", 2, actor="tests")
        registry.set_alias("sentiment", "staging", 1, actor="tests")  # not production
        assert service.deliver_due()["sent"] == 2
    finally:
        engine.dispose()
    first, second = sorted(
        (json.loads(body) for body, _ in receiver.posts), key=lambda e: e["data"]["version"]
    )
    assert first["data"] | {"moved_at": None} == {
        "model": "sentiment",
        "alias": "production",
        "version": 1,
        "from_version": None,
        "action": "register",
        "actor": "tests",
        "moved_at": None,
    }
    assert (second["type"], second["data"]["version"], second["data"]["from_version"]) == (
        "model.promoted",
        2,
        1,
    )
    assert second["data"]["action"] == "promote"


def test_a_new_drift_alert_emits_drift_detected(sessions: sessionmaker[Session]) -> None:
    service = WebhookService(sessions, fast())
    service.put("ops", "http://127.0.0.1:9/unused", ["drift.detected"], SECRET)
    drift = {
        "model": "sentiment",
        "version": 3,
        "window": "24h",
        "n": 500,
        "features": [
            {"name": "oov_rate", "statistic": "psi", "value": 0.6, "threshold": 0.2, "drift": True}
        ],
    }
    sender = AlertSender(sessions, None, AlertSettings())  # no AIWEB_ALERT_WEBHOOK_URL
    assert sender.alert(drift) == []
    assert sender.alert(drift) == []  # claimed once: one event
    (delivery,) = service.deliveries("ops")
    assert delivery["event"] == "drift.detected"


def test_routes_keep_the_secret_and_deliver_from_the_scheduler_tick(
    settings: Settings,
    auth_headers: dict[str, str],
    tiny_model_bytes: bytes,
    receiver: Receiver,
) -> None:
    registry, engine = open_registry(settings)
    try:
        register_tiny(registry, "sentiment", tiny_model_bytes)
        register_tiny(registry, "sentiment", tiny_model_bytes)
    finally:
        engine.dispose()
    hook = {"url": receiver.url, "events": ["model.promoted", "rollout.*"], "secret": SECRET}
    with TestClient(create_app(settings), headers=auth_headers) as client:
        created = client.put("/v1/webhooks/shop", json=hook)
        assert created.status_code == 201, created.text
        assert created.json()["secret_hint"] == "…cdef"
        assert created.json()["events"] == ["model.promoted", "rollout.*"]
        assert client.put("/v1/webhooks/shop", json=hook).status_code == 200
        for resp in (
            created,
            client.get("/v1/webhooks"),
            client.get("/v1/webhooks/shop"),
        ):
            assert resp.status_code == 200 or resp is created
            assert SECRET not in resp.text
        assert [w["name"] for w in client.get("/v1/webhooks").json()["webhooks"]] == ["shop"]
        promoted = client.put("/v1/models/sentiment/aliases/production", json={"version": 2})
        assert promoted.status_code == 200, promoted.text
        deadline = time.monotonic() + 20
        deliveries: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            deliveries = client.get("/v1/webhooks/shop/deliveries").json()["deliveries"]
            if deliveries and deliveries[0]["status"] == "sent":
                break
            time.sleep(0.2)
        assert [(d["event"], d["status"], d["attempts"]) for d in deliveries] == [
            ("model.promoted", "sent", 1)
        ]
        ((body, headers),) = receiver.posts
        verify_signature(body, headers[SIGNATURE_HEADER], SECRET)
        assert json.loads(body)["data"]["version"] == 2
        assert client.delete("/v1/webhooks/shop").status_code == 200
        assert client.get("/v1/webhooks/shop").status_code == 404
        assert client.get("/v1/webhooks/shop/deliveries").status_code == 404
        assert client.delete("/v1/webhooks/shop").status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/webhooks/shop", {"url": "ftp://example.com/x", "events": ["job.finished"]}),
        ("/v1/webhooks/shop", {"url": "file:///etc/passwd", "events": ["job.finished"]}),
        ("/v1/webhooks/shop", {"url": "javascript:alert(1)", "events": ["job.finished"]}),
        ("/v1/webhooks/shop", {"url": "http://", "events": ["job.finished"]}),
        ("/v1/webhooks/shop", {"url": "http://a b.example/", "events": ["job.finished"]}),
        ("/v1/webhooks/shop", {"url": "http://x.example:99999999/", "events": ["job.*"]}),
        ("/v1/webhooks/shop", {"url": "http://x.example/\u0000", "events": ["job.finished"]}),
        ("/v1/webhooks/shop", {"url": "http://x.example/\ud800", "events": ["job.finished"]}),
        ("/v1/webhooks/shop", {"url": "http://x.example/" + "a" * 5000, "events": ["job.*"]}),
        ("/v1/webhooks/shop", {"url": "http://x.example/", "events": []}),
        ("/v1/webhooks/shop", {"url": "http://x.example/", "events": ["job.exploded"]}),
        ("/v1/webhooks/shop", {"url": "http://x.example/", "events": ["*"]}),
        ("/v1/webhooks/shop", {"url": "http://x.example/", "events": ["job.*"] * 17}),
        ("/v1/webhooks/shop", {"url": "http://x.example/", "events": "job.finished"}),
        ("/v1/webhooks/shop", {"url": "http://x.example/", "events": ["job.finished\u0000"]}),
        ("/v1/webhooks/Shop!", {"url": "http://x.example/", "events": ["job.finished"]}),
        ("/v1/webhooks/%00", {"url": "http://x.example/", "events": ["job.finished"]}),
    ],
)
def test_hostile_subscriptions_are_4xx(
    settings: Settings, auth_headers: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    with TestClient(create_app(settings), headers=auth_headers) as client:
        # ensure_ascii: a lone surrogate travels as the JSON escape \ud800
        raw = json.dumps({"secret": SECRET, **body})
        resp = client.put(path, content=raw, headers={"Content-Type": "application/json"})
        assert 400 <= resp.status_code < 500, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/webhooks").json() == {"webhooks": []}


@pytest.mark.parametrize(
    "secret",
    [
        "short",
        "x" * 257,
        "y" * 1_000_000,
        "with spaces in it ok",
        "ü" * 20,
        "a\u0000" * 9,
        "\ud800" * 20,
    ],
)
def test_bad_secrets_are_4xx(settings: Settings, auth_headers: dict[str, str], secret: str) -> None:
    with TestClient(create_app(settings), headers=auth_headers) as client:
        raw = json.dumps({"url": "https://x.example/", "events": ["job.*"], "secret": secret})
        resp = client.put(
            "/v1/webhooks/shop", content=raw, headers={"Content-Type": "application/json"}
        )
        assert 400 <= resp.status_code < 500, resp.status_code
        assert resp.headers["content-type"] == "application/problem+json"


def test_webhooks_need_the_admin_scope(settings: Settings) -> None:
    from conftest import create_key

    key = create_key(settings, ("predict", "train"), name="notadmin")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
        assert client.get("/v1/webhooks").status_code == 403
        hook = {"url": "https://x.example/", "events": ["job.finished"], "secret": SECRET}
        assert client.put("/v1/webhooks/shop", json=hook).status_code == 403
    with TestClient(create_app(settings)) as anonymous:
        assert anonymous.get("/v1/webhooks").status_code == 401
