"""Recommenders as jobs: training over ``POST /v1/jobs`` and ``aiweb jobs submit``,
scheduled retraining with promotion rules on the offline metrics, and ``aiweb evaluate
recommendation`` storing its re-run in the version's report. Jobs run on the embedded runner
(SQLite and PostgreSQL) and on a real Celery worker (PostgreSQL, Redis broker), as the
classifier's job tests do."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import live_server
from sqlalchemy import update
from test_jobs_api import celery_worker, job_mode_settings, wait_job
from test_recommend_api import catalogue, history
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.cli import app as cli_app
from aiweb.config import Settings
from aiweb.db.orm import SqlSchedule, utcnow


@pytest.fixture(params=["embedded", "celery"])
def job_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test settings in one of the two job modes."""
    return job_mode_settings(request.param, settings)


@pytest.fixture
def client(job_settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """The app (and a Celery worker in production mode) with the synthetic catalogue and
    interactions of the recommendation API tests stored; no model yet."""
    with (
        celery_worker(job_settings),
        TestClient(create_app(job_settings), headers=auth_headers) as c,
    ):
        assert c.post("/v1/items", json={"items": catalogue()}).status_code == 200
        resp = c.post("/v1/interactions", json={"interactions": history()})
        assert resp.status_code == 200, resp.text
        yield c


def train(client: TestClient, model: str = "shows", **fields: Any) -> dict[str, Any]:
    body = {"type": "train", "task": "recommendation", "model": model, **fields}
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/v1/jobs/{r.json()['id']}"
    return wait_job(client, r.json()["id"], timeout=120)


def test_train_job_registers_a_recommender_that_serves(client: TestClient) -> None:
    job = train(client, algorithm="ease", params={"ease": {"l2": 50.0}})
    assert job["status"] == "succeeded", job
    assert job["params"]["task"] == "recommendation"
    result = job["result"]
    assert (result["model"], result["version"], result["task"]) == ("shows", 1, "recommendation")
    assert result["selected"] == "ease"
    assert set(result["metrics"]) == {"precision", "recall", "ndcg", "map", "hit_rate", "coverage"}
    assert result["metrics"]["ndcg"] > 0
    version = client.get("/v1/models/shows/versions/1").json()
    assert version["task"] == "recommendation"
    assert version["lineage"]["job_id"] == job["id"]
    assert version["lineage"]["params"] == {"ease": {"l2": 50.0}}
    assert version["aliases"] == ["production"]
    assert "popularity" in version["evaluation"]["algorithms"]  # the baseline side by side
    recs = client.get("/v1/users/u0/recommendations", params={"model": "shows", "n": 3})
    assert recs.status_code == 200, recs.text
    assert [r["reason"] for r in recs.json()] == ["collaborative"] * 3


@pytest.mark.parametrize(
    "body",
    [
        {"algorithm": "nope"},
        {"params": {"nope": {}}},
        {"params": {"ease": {"bogus": 1}}},
        {"params": {"ease": 5}},
        {"dataset_id": "x"},  # recommenders train on the stored interactions
        {"promotion": {"metric": "macro_f1"}},  # a classifier's metric
        {"model": "Bad Name"},
        {"task": "translation"},
    ],
)
def test_bad_recommendation_jobs_are_422_and_create_nothing(
    client: TestClient, body: dict[str, Any]
) -> None:
    before = client.get("/v1/jobs").json()["total"]
    r = client.post(
        "/v1/jobs", json={"type": "train", "task": "recommendation", "model": "shows", **body}
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/jobs").json()["total"] == before


def test_a_name_taken_by_another_task_is_refused(
    client: TestClient, settings: Settings, tiny_model_bytes: bytes
) -> None:
    from helpers import open_registry, register_tiny

    registry, engine = open_registry(settings)
    try:
        register_tiny(registry, "reviews", tiny_model_bytes)
    finally:
        engine.dispose()
    r = client.post(
        "/v1/jobs", json={"type": "train", "task": "recommendation", "model": "reviews"}
    )
    assert r.status_code == 409  # the name is taken: a conflict with what exists
    assert "text-classification" in r.json()["detail"]


def test_an_algorithm_needing_the_embedding_model_is_404_at_submit_when_none_is_installed(
    client: TestClient,
) -> None:
    """``content-minilm`` without ``aiweb embeddings install``: refused at submit with the
    install hint, as a job and as a schedule, not accepted to fail later."""
    before = client.get("/v1/jobs").json()["total"]
    body = {"type": "train", "task": "recommendation", "model": "shows"}
    r = client.post("/v1/jobs", json={**body, "algorithm": "content-minilm"})
    assert r.status_code == 404, r.text  # the model is not there (yet), as for collections
    assert r.headers["content-type"].startswith("application/problem+json")
    detail = r.json()["detail"]
    assert "content-minilm" in detail
    assert "aiweb embeddings install" in detail
    assert client.get("/v1/jobs").json()["total"] == before
    r = client.put(
        "/v1/models/shows/schedule",
        json={"task": "recommendation", "cron": "0 3 * * *", "algorithm": "content-minilm"},
    )
    assert r.status_code == 404, r.text
    assert "aiweb embeddings install" in r.json()["detail"]
    assert client.get("/v1/models/shows/schedule").status_code == 404
    # auto compares content-minilm only when an embedding model is installed: accepted
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    assert jobs.check(jobs.types.parse({**body, "algorithm": "auto"}))["algorithm"] == "auto"


@pytest.mark.parametrize(
    ("algorithm", "rule", "promoted", "why"),
    [
        ("ease", {"min_delta": -0.5, "beat_popularity": False}, True, "vs production"),
        ("ease", {"min_delta": 0.5}, False, "vs production"),
        ("popularity", {"min_delta": -1.0}, False, "does not beat popularity"),
    ],
)
def test_scheduled_retraining_moves_production_only_when_the_rule_holds(
    client: TestClient, algorithm: str, rule: dict[str, Any], promoted: bool, why: str
) -> None:
    assert train(client, algorithm="ease")["status"] == "succeeded"  # version 1, production
    r = client.put(
        "/v1/models/shows/schedule",
        json={
            "task": "recommendation",
            "cron": "0 3 * * *",
            "algorithm": algorithm,
            "promotion": {"metric": "ndcg", **rule},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["training"] == {"task": "recommendation", "algorithm": algorithm, "params": {}}
    assert r.json()["promotion"]["beat_popularity"] is rule.get("beat_popularity", True)
    r = client.post("/v1/models/shows/schedule/run")
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"], timeout=120)
    assert job["status"] == "succeeded", job
    decision = job["result"]["promotion"]
    assert decision["promoted"] is promoted, decision
    assert why in decision["reason"]
    assert (decision["candidate_version"], decision["production_version"]) == (2, 1)
    assert decision["popularity"] is not None
    # production (ease, as the candidate when it is ease) refitted on the same split scores
    # what the candidate's report says: both were measured on the same data
    assert decision["production"] is not None
    if algorithm == "ease":
        assert decision["production"] == pytest.approx(decision["candidate"], abs=1e-9)
    model = client.get("/v1/models/shows").json()
    assert model["aliases"]["production"] == (2 if promoted else 1)
    events = client.get("/v1/audit?limit=100").json()["events"]
    action = "retrain.promoted" if promoted else "retrain.not_promoted"
    assert any(e["action"] == action and e["target"] == "model:shows" for e in events)
    assert client.get("/v1/models/shows/schedule").json()["last_job_id"] == job["id"]


def test_recommendation_schedule_validation(client: TestClient) -> None:
    base = {"task": "recommendation", "cron": "0 3 * * *"}
    for bad in (
        {"cron": "every night"},
        {"algorithm": "nope"},
        {"params": {"als": {"factors": "many"}}},
        {"promotion": {"metric": "accuracy"}},
        {"dataset_id": "x"},
    ):
        r = client.put("/v1/models/shows/schedule", json={**base, **bad})
        assert r.status_code == 422, (bad, r.text)
    assert client.get("/v1/models/shows/schedule").status_code == 404


def test_due_recommendation_schedule_fires_from_the_scheduler_tick(
    client: TestClient, job_settings: Settings
) -> None:
    r = client.put(
        "/v1/models/shows/schedule",
        json={"task": "recommendation", "cron": "0 3 * * *", "algorithm": "ease"},
    )
    assert r.status_code == 200, r.text
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(SqlSchedule).values(next_run_at=utcnow() - timedelta(seconds=1)))
    if job_settings.broker_url:  # what beat sends every jobs.scheduler_interval_s
        from aiweb.jobs.celery_app import TICK_TASK, make_celery

        make_celery(job_settings).send_task(TICK_TASK)
    deadline = time.monotonic() + 30
    while (last := client.get("/v1/models/shows/schedule").json()["last_job_id"]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job = wait_job(client, last, timeout=120)
    assert job["status"] == "succeeded", job
    assert job["submitted_by"] == "scheduler"
    assert job["result"]["promotion"]["promoted"] is True  # the first version
    assert client.get("/v1/models/shows").json()["aliases"]["production"] == 1


# ---- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI reads its settings from the environment: point it at the test's."""
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_trains_through_a_job_and_evaluate_stores_its_rerun(
    cli_env: Settings, auth_headers: dict[str, str]
) -> None:
    with TestClient(create_app(cli_env), headers=auth_headers) as c:
        assert c.post("/v1/items", json={"items": catalogue()}).status_code == 200
        assert c.post("/v1/interactions", json={"interactions": history()}).status_code == 200
    with live_server(cli_env):  # its embedded runner runs what the CLI submits
        code, out, err = cli(
            "jobs",
            "submit",
            "train",
            "--set",
            "task=recommendation",
            "--set",
            "model=shows",
            "--set",
            "algorithm=ease",
            "--wait",
        )
    assert code == 0, err
    result = json.loads("\n".join(out.splitlines()[1:]))
    assert (result["model"], result["version"], result["selected"]) == ("shows", 1, "ease")
    code, _out, err = cli("jobs", "submit", "train", "--set", "task=recommendation")
    assert code != 0
    assert "model" in err

    for run in (1, 2):
        code, out, err = cli("evaluate", "recommendation", "shows")
        assert code == 0, err
        assert "ease" in out
        assert "popularity" in out
        assert "stored in the report of shows:1" in err
        with TestClient(create_app(cli_env), headers=auth_headers) as c:
            version = c.get("/v1/models/shows/versions/1").json()
            audit = c.get("/v1/audit", params={"action": "version.evaluation_updated"}).json()
        reruns = version["evaluation"]["reevaluations"]
        assert len(reruns) == run
        latest = reruns[-1]
        assert latest["actor"] == "cli"
        assert latest["report"]["selected"] == "ease"
        assert latest["report"]["ndcg"] == pytest.approx(version["evaluation"]["ndcg"])
        assert "popularity" in latest["report"]["algorithms"]
        assert version["evaluation"]["selected"] == "ease"  # the training report is kept
        assert len(audit["events"]) == run
        assert audit["events"][0]["target"] == "model:shows:1"
