"""Rollouts over HTTP on every database: sticky canary splits, automatic rollback of a bad
candidate and promotion of a better one (judged by the embedded scheduler's tick on live
feedback), holds on inconclusive evidence, shadow scoring, and the refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import NEGATIVE_TEXT, POSITIVE_TEXT, Receiver, open_registry, register_tiny
from pydantic import SecretStr
from sqlalchemy import update
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.classification.trainer import TrainParams, fit_text_classifier
from aiweb.cli import app as cli
from aiweb.client.webhooks import WebhookSignatureError, verify_signature
from aiweb.config import AlertSettings, Settings
from aiweb.db.orm import SqlPrediction, SqlRollout
from aiweb.db.session import make_engine
from conftest import TINY_LABELS, TINY_TEXTS

PREDICT = "/v1/models/sentiment/predict"
ROLLOUT = "/v1/models/sentiment/rollout"
ALERT_SECRET = "alert-secret-" + "x" * 20
TRUTH = {POSITIVE_TEXT: "positive", NEGATIVE_TEXT: "negative"}


@pytest.fixture(scope="module")
def swapped_bytes() -> bytes:
    """A tiny model trained with its labels swapped: wrong on every clear input."""
    flipped = ["negative" if y == "positive" else "positive" for y in TINY_LABELS]
    return fit_text_classifier(TINY_TEXTS * 3, flipped * 3, TrainParams(C=10.0)).to_bytes()


def register(settings: Settings, *artifacts: bytes) -> None:
    """Version i+1 of ``sentiment`` from ``artifacts[i]``; version 1 is production."""
    registry, engine = open_registry(settings)
    try:
        for artifact in artifacts:
            register_tiny(registry, "sentiment", artifact)
    finally:
        engine.dispose()


def wait_for(
    client: TestClient, done: Callable[[dict[str, Any]], bool], traffic: Callable[[], None]
) -> dict[str, Any]:
    """Send ``traffic()`` until the rollout report satisfies ``done`` (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        report: dict[str, Any] = client.get(ROLLOUT).json()
        if done(report):
            return report
        assert time.monotonic() < deadline, report
        traffic()


def users_with_feedback(client: TestClient, start: int, n: int) -> Iterator[dict[str, Any]]:
    """``n`` users each send one clear text and tell its true label; yields the answers."""
    for i in range(start, start + n):
        text = POSITIVE_TEXT if i % 2 else NEGATIVE_TEXT
        response = client.post(PREDICT, json={"inputs": [text], "user_id": f"user-{i}"})
        assert response.status_code == 200, response.text  # zero 5xx during the change
        answer = response.json()
        pid = answer["predictions"][0]["id"]
        feedback = client.post(f"/v1/predictions/{pid}/feedback", json={"label": TRUTH[text]})
        assert feedback.status_code == 201, feedback.text
        yield answer


def make_step_due(settings: Settings) -> None:
    """As if the rollout had been at its step for a day."""
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(SqlRollout).values(stepped_at=datetime.now(UTC) - timedelta(days=1))
            )
    finally:
        engine.dispose()


def test_sticky_users_split_by_traffic_and_never_move_back(
    settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> None:
    register(settings, tiny_model_bytes, tiny_model_bytes)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        started = client.put(
            ROLLOUT,
            json={
                "candidate": 2,
                "steps": [0.2, 0.5, 1.0],
                "step_every": "1d",
                "gates": {"min_samples": 1, "max_error_rate": None, "min_accuracy_delta": None},
            },
        )
        assert started.status_code == 200, started.text
        assert (started.json()["state"], started.json()["traffic"]) == ("running", 0.2)

        seen: dict[str, int] = {}
        for i in range(2000):
            response = client.post(PREDICT, json={"inputs": ["fine"], "user_id": f"u{i}"})
            assert response.headers["X-Model-Version"] == str(response.json()["version"])
            seen[f"u{i}"] = response.json()["version"]
        share = sum(v == 2 for v in seen.values()) / len(seen)
        assert 0.17 <= share <= 0.23, share

        # the same user meets the same version on every call (body or header)
        for i in range(40):
            for call in range(20):
                user = f"u{i}"
                if call % 2:
                    response = client.post(PREDICT, json={"inputs": ["fine"], "user_id": user})
                else:
                    response = client.post(
                        PREDICT, json={"inputs": ["fine"]}, headers={"X-User-ID": user}
                    )
                assert response.json()["version"] == seen[user], (user, call)

        # the next step (judged by the embedded tick) only adds users to the candidate
        make_step_due(settings)
        report = wait_for(client, lambda r: r["traffic"] == 0.5, lambda: time.sleep(0.1))
        assert [h["event"] for h in report["history"]] == ["started", "step"]
        time.sleep(2 * settings.rollout.refresh_s)  # every process follows within it
        after = {
            user: client.post(PREDICT, json={"inputs": ["fine"], "user_id": user}).json()["version"]
            for user in seen
        }
        assert all(after[u] == 2 for u, v in seen.items() if v == 2)
        assert 0.46 <= sum(v == 2 for v in after.values()) / len(after) <= 0.54

        def counted(r: dict[str, Any]) -> int:
            return int(
                r["variants"]["baseline"]["requests"] + r["variants"]["candidate"]["requests"]
            )

        # this process's counts reach the row at its next refresh
        report = wait_for(client, lambda r: counted(r) >= 4800, lambda: time.sleep(0.1))
        assert counted(report) == 2000 + 40 * 20 + 2000


def test_a_bad_candidate_is_rolled_back_on_live_feedback(
    settings: Settings,
    auth_headers: dict[str, str],
    tiny_model_bytes: bytes,
    swapped_bytes: bytes,
) -> None:
    receiver = Receiver(fail_first=0)
    settings = settings.model_copy(
        update={
            "alert_webhook_url": receiver.url,
            "alerts": AlertSettings(webhook_secret=SecretStr(ALERT_SECRET)),
        }
    )
    register(settings, tiny_model_bytes, swapped_bytes)
    try:
        with TestClient(create_app(settings), headers=auth_headers) as client:
            body = {
                "candidate": 2,
                "traffic": 0.5,
                "steps": [0.5, 1.0],
                "step_every": "1d",
                "gates": {"min_samples": 50, "min_accuracy_delta": -0.02},
            }
            hook = {"url": receiver.url, "events": ["rollout.*"], "secret": "s" * 32}
            assert client.put("/v1/webhooks/ops", json=hook).status_code in (200, 201)
            assert client.put(ROLLOUT, json=body).status_code == 200
            users = iter(range(10_000))

            def traffic() -> None:
                for _ in users_with_feedback(client, next(users), 1):
                    pass

            report = wait_for(client, lambda r: r["state"] == "rolled_back", traffic)
            assert report["traffic"] == 0.0
            assert report["decision"]["gate"] == "min_accuracy_delta"
            assert report["decision"]["result"] == "fail"
            candidate = report["variants"]["candidate"]
            assert candidate["feedback_n"] < 50  # clear evidence stops it before min_samples
            assert candidate["live_accuracy"] == 0.0
            assert report["variants"]["baseline"]["live_accuracy"] == 1.0
            # production never left the baseline; every process answers with it within
            # twice the refresh period (the promise of docs/rollout.md)
            assert client.get("/v1/models/sentiment").json()["aliases"]["production"] == 1
            time.sleep(2 * settings.rollout.refresh_s)
            answers = [a["version"] for a in users_with_feedback(client, 20_000, 30)]
            assert set(answers) == {1}
            audit = client.get("/v1/audit", params={"action": "rollout.rolled_back"}).json()
            (event,) = audit["events"]
            assert event["after"]["decision"]["gate"] == "min_accuracy_delta"
            assert any(g["gate"] == "min_accuracy_delta" for g in event["after"]["gates"])
            deliveries = client.get("/v1/webhooks/ops/deliveries").json()
            events = [d["event"] for d in deliveries["deliveries"]]
            assert sorted(events) == ["rollout.rolled_back", "rollout.started"]
            deadline = time.monotonic() + 20
            while not [b for b in receiver.bodies if b.get("type") == "aiweb.rollout"]:
                assert time.monotonic() < deadline, "no rollback alert"
                time.sleep(0.05)
            (alert,) = [b for b in receiver.bodies if b.get("type") == "aiweb.rollout"]
            assert (alert["event"], alert["model"], alert["candidate"]) == (
                "rollout.rolled_back",
                "sentiment",
                2,
            )
            # signed with AIWEB_ALERTS__WEBHOOK_SECRET, as the webhooks are
            ((raw, signed),) = [
                (r, h) for r, h in receiver.raw if json.loads(r).get("type") == "aiweb.rollout"
            ]
            assert signed is not None
            verify_signature(raw, signed, ALERT_SECRET)
            with pytest.raises(WebhookSignatureError):
                verify_signature(raw, signed, "s" * 32)
    finally:
        receiver.server.shutdown()


def test_a_better_candidate_steps_up_and_is_promoted(
    settings: Settings,
    auth_headers: dict[str, str],
    tiny_model_bytes: bytes,
    swapped_bytes: bytes,
) -> None:
    register(settings, swapped_bytes, tiny_model_bytes)  # production is the bad one
    with TestClient(create_app(settings), headers=auth_headers) as client:
        body = {
            "candidate": 2,
            "steps": [0.3, 0.6, 1.0],
            "step_every": "1s",
            "gates": {"min_samples": 15, "max_error_rate": 0.01, "min_accuracy_delta": 0.0},
        }
        assert client.put(ROLLOUT, json=body).status_code == 200
        users = iter(range(100_000))

        def traffic() -> None:
            for _ in users_with_feedback(client, next(users), 1):
                pass

        report = wait_for(client, lambda r: r["state"] == "promoted", traffic)
        # held while the evidence was short of min_samples, then up step by step
        moves = [(h["event"], h["traffic"]) for h in report["history"] if h["event"] != "held"]
        assert moves == [("started", 0.3), ("step", 0.6), ("promoted", 1.0)]
        assert report["variants"]["candidate"]["feedback_n"] >= 15
        assert client.get("/v1/models/sentiment").json()["aliases"]["production"] == 2
        time.sleep(2 * settings.rollout.refresh_s)  # every process follows within it
        answers = [a["version"] for a in users_with_feedback(client, 200_000, 10)]
        assert set(answers) == {2}
        audit = client.get("/v1/audit", params={"action": "rollout.promoted"}).json()
        assert audit["events"][0]["after"]["candidate"] == 2


def test_inconclusive_evidence_holds_and_an_admin_decides(
    settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> None:
    register(settings, tiny_model_bytes, tiny_model_bytes)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        body = {"candidate": 2, "steps": [0.5, 1.0], "step_every": "1s"}
        assert client.put(ROLLOUT, json=body).status_code == 200
        users = iter(range(100_000))

        def traffic() -> None:
            for _ in users_with_feedback(client, next(users), 1):
                pass

        report = wait_for(client, lambda r: r["state"] == "held", traffic)
        assert report["traffic"] == 0.5  # inconclusive never moves traffic up
        assert report["decision"]["result"] == "inconclusive"
        assert "more" in report["decision"]["reason"]  # how many samples are missing
        assert [h["event"] for h in report["history"]] == ["started", "held"]
        promoted = client.post(f"{ROLLOUT}/promote")
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["state"] == "promoted"
        assert client.get("/v1/models/sentiment").json()["aliases"]["production"] == 2
        again = client.post(f"{ROLLOUT}/abort")
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"


def test_shadow_answers_are_logged_never_returned(
    settings: Settings,
    auth_headers: dict[str, str],
    tiny_model_bytes: bytes,
    swapped_bytes: bytes,
) -> None:
    register(settings, tiny_model_bytes, swapped_bytes)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        body = {
            "candidate": 2,
            "mode": "shadow",
            "gates": {"min_samples": 20, "min_agreement": 0.9, "min_accuracy_delta": None},
        }
        started = client.put(ROLLOUT, json=body).json()
        assert (started["mode"], started["traffic"]) == ("shadow", 1.0)
        answers: list[int] = []

        def traffic() -> None:
            for text in (POSITIVE_TEXT, NEGATIVE_TEXT):
                answers.append(client.post(PREDICT, json={"inputs": [text]}).json()["version"])

        # the swapped candidate disagrees on every input: the agreement gate rolls it back
        report = wait_for(client, lambda r: r["state"] == "rolled_back", traffic)
        assert set(answers) == {1}  # a shadow is never returned
        assert report["decision"]["gate"] == "min_agreement"
        assert report["agreement"]["compared"] > 0
        assert report["agreement"]["agreed"] == 0
        assert report["variants"]["candidate"]["requests"] > 0
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            logged = conn.execute(
                SqlPrediction.__table__.select().where(SqlPrediction.version == 2)
            ).all()
    finally:
        engine.dispose()
    assert logged  # the candidate's answers are in the prediction log
    assert {row.label for row in logged} <= {"positive", "negative"}


def test_refusals_are_problems(
    settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> None:
    register(settings, tiny_model_bytes, tiny_model_bytes)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        cases: list[tuple[str, dict[str, Any], int, str]] = [
            ("/v1/models/ghost/rollout", {"candidate": 2}, 404, "ghost"),
            (ROLLOUT, {"candidate": 9}, 404, "9"),
            (ROLLOUT, {"candidate": 1}, 409, "already the production version"),
            (ROLLOUT, {"candidate": 2, "steps": [0.5, 0.0]}, 422, "steps"),
            (ROLLOUT, {"candidate": 2, "steps": [1.5]}, 422, "steps"),
            (ROLLOUT, {"candidate": 2, "steps": []}, 422, "steps"),
            (ROLLOUT, {"candidate": 2, "step_every": "0m"}, 422, "step_every"),
            (ROLLOUT, {"candidate": 2, "gates": {"max_error_rate": 2}}, 422, "max_error_rate"),
        ]
        for url, body, status, text in cases:
            response = client.put(url, json=body)
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert text in response.text, (body, response.text)
        assert client.get(ROLLOUT).status_code == 404
        assert client.post(f"{ROLLOUT}/promote").status_code == 404
        assert client.put(ROLLOUT, json={"candidate": 2}).status_code == 200
        second = client.put(ROLLOUT, json={"candidate": 2})
        assert second.status_code == 409
        assert "running" in second.json()["detail"]
        for bad in (7, "", "x" * 257, None, ["a"]):
            response = client.post(PREDICT, json={"inputs": ["fine"], "user_id": bad})
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["errors"][0]["loc"] == ["body", "user_id"]
        # lone surrogates and NUL are refused in every string of a body, this one too;
        # any other text is a user id
        cases = [('"\\ud800"', 422), ('"\\udfff\\ud800x"', 422), ('"a\\u0000"', 422)]
        for user, status in [*cases, ('"\\u00e9 \\ud83d\\ude00"', 200)]:
            odd = client.post(
                PREDICT,
                content=f'{{"inputs": ["fine"], "user_id": {user}}}',
                headers={"content-type": "application/json"},
            )
            assert odd.status_code == status, (user, odd.text)
            if status == 422:
                assert odd.json()["errors"][0]["loc"] == ["body", "user_id"]
        aborted = client.post(f"{ROLLOUT}/abort")
        assert aborted.json()["state"] == "aborted"
        assert [h["event"] for h in aborted.json()["history"]] == ["started", "aborted"]


def test_the_cli_starts_shows_and_ends_rollouts(
    settings: Settings, tiny_model_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    register(settings, tiny_model_bytes, tiny_model_bytes, tiny_model_bytes)

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["rollout", *args])
        return result.exit_code, result.stdout, result.stderr

    code, _, error = run("start", "sentiment", "--candidate", "2", "--steps", "0.5,0")
    assert code == 2
    assert "steps" in error
    code, stdout, _ = run(
        "start", "sentiment", "--candidate", "2", "--mode", "ab", "--min-samples", "30", "--json"
    )
    assert code == 0, stdout
    started = json.loads(stdout)
    assert (started["state"], started["mode"], started["traffic"]) == ("running", "ab", 0.5)
    assert started["config"]["gates"]["min_samples"] == 30
    code, stdout, _ = run("show", "sentiment")
    assert code == 0
    assert "running" in stdout
    assert "min_accuracy_delta" in stdout
    assert "baseline" in stdout
    code, _, error = run("start", "sentiment", "--candidate", "3")
    assert code == 1
    assert "is running" in error
    code, stdout, _ = run("promote", "sentiment", "--json")
    assert code == 0
    assert json.loads(stdout)["state"] == "promoted"
    code, _, error = run("abort", "sentiment")
    assert code == 1
    assert "promoted, not running" in error
    code, _, error = run("show", "ghost")
    assert code == 1
    assert "ghost" in error
    registry, engine = open_registry(settings)
    try:
        assert registry.get_model("sentiment").aliases["production"] == 2
        assert registry.audit is not None
        events, total = registry.audit.list(action="rollout.promoted")
    finally:
        engine.dispose()
    assert total == 1
    assert events[0].actor == "cli"


def test_every_process_loads_the_candidate_before_its_first_request(
    settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> None:
    register(settings, tiny_model_bytes, tiny_model_bytes)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        assert client.get("/readyz").json()["loaded"] == ["sentiment:1"]
        assert client.put(ROLLOUT, json={"candidate": 2, "traffic": 0.1}).status_code == 200
        deadline = time.monotonic() + 2 * settings.rollout.refresh_s + 5
        while "sentiment:2" not in client.get("/readyz").json()["loaded"]:
            assert time.monotonic() < deadline, "the candidate was not preloaded"
            time.sleep(0.05)
        assert client.get(ROLLOUT).json()["variants"]["candidate"]["requests"] == 0


def test_versions_in_a_running_rollout_cannot_be_deleted(
    settings: Settings, auth_headers: dict[str, str], tiny_model_bytes: bytes
) -> None:
    register(settings, tiny_model_bytes, tiny_model_bytes, tiny_model_bytes)
    with TestClient(create_app(settings), headers=auth_headers) as client:
        assert client.put(ROLLOUT, json={"candidate": 2}).status_code == 200
        for url in ("/v1/models/sentiment/versions/2", "/v1/models/sentiment"):
            refused = client.delete(url)
            assert refused.status_code == 409, refused.text
            assert "rollout" in refused.json()["detail"]
        assert client.delete("/v1/models/sentiment/versions/3").status_code == 204
        assert client.post(f"{ROLLOUT}/abort").status_code == 200
        assert client.delete("/v1/models/sentiment/versions/2").status_code == 204
        assert client.delete("/v1/models/sentiment").status_code == 204
        register(settings, tiny_model_bytes)  # the name again: a new model, no rollout
        assert client.get(ROLLOUT).status_code == 404
