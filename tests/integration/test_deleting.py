"""Deleting models, versions and uploaded datasets, over the API and from the CLI, on
every database: what goes, what stays, what is refused, and that a deleted model stops
being served."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import POSITIVE_TEXT, open_registry, register_versions
from sqlalchemy import func, select
from typer.testing import CliRunner

from aiweb.app import create_app
from aiweb.cli import app as cli_app
from aiweb.config import Settings
from aiweb.db.orm import SqlPrediction
from aiweb.db.session import make_engine
from conftest import create_key

CSV = b"text,label\n" + b"".join(
    f"a wonderful film {i},positive\na dull mess {i},negative\n".encode() for i in range(6)
)


@pytest.fixture
def client(
    settings: Settings, tiny_model_bytes: bytes, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    """``sentiment`` versions 1 (production), 2 and 3; an admin key; no job runner (jobs
    stay pending)."""
    register_versions(settings, "sentiment", tiny_model_bytes, 3)
    idle = settings.model_copy(update={"jobs": settings.jobs.model_copy(update={"concurrency": 0})})
    with TestClient(create_app(idle), headers=auth_headers) as c:
        yield c


def predict(client: TestClient, ref: str) -> httpx.Response:
    return client.post(f"/v1/models/{ref}/predict", json={"inputs": [POSITIVE_TEXT]})


def problem(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    detail: str = resp.json()["detail"]
    return detail


def audit(client: TestClient, action: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get(f"/v1/audit?action={action}").json()["events"]
    return events


def upload(client: TestClient) -> str:
    r = client.post("/v1/datasets", files={"file": ("data.csv", CSV, "text/csv")})
    assert r.status_code == 201, r.text
    dataset_id: str = r.json()["id"]
    return dataset_id


def logged_predictions(settings: Settings) -> int:
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(SqlPrediction)
                .where(SqlPrediction.model == "sentiment")
            ).scalar()
    finally:
        engine.dispose()
    return int(count or 0)


def artifacts_dir(settings: Settings) -> Path:
    return settings.resolved_artifacts_dir / "models"


# -- versions ------------------------------------------------------------------------------
def test_delete_version_refused_while_an_alias_points_at_it(client: TestClient) -> None:
    assert client.put("/v1/models/sentiment/aliases/staging", json={"version": 2}).is_success
    detail = problem(client.delete("/v1/models/sentiment/versions/2"), 409)
    assert "sentiment@staging" in detail
    detail = problem(client.delete("/v1/models/sentiment/versions/1"), 409)
    assert "sentiment@production" in detail
    assert client.get("/v1/models/sentiment/versions/2").status_code == 200
    assert predict(client, "sentiment@staging").json()["version"] == 2


def test_delete_version_removes_it_its_files_and_stops_serving_it(
    client: TestClient, settings: Settings
) -> None:
    assert predict(client, "sentiment:3").json()["version"] == 3  # loaded and kept
    assert (artifacts_dir(settings) / "sentiment" / "3" / "model.skops").is_file()

    r = client.delete("/v1/models/sentiment/versions/3")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert not (artifacts_dir(settings) / "sentiment" / "3").exists()
    assert (artifacts_dir(settings) / "sentiment" / "2" / "model.skops").is_file()
    problem(client.get("/v1/models/sentiment/versions/3"), 404)
    problem(predict(client, "sentiment:3"), 404)
    problem(client.delete("/v1/models/sentiment/versions/3"), 404)
    problem(client.delete("/v1/models/ghost/versions/1"), 404)
    versions = client.get("/v1/models/sentiment").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert predict(client, "sentiment").json()["version"] == 1  # production is untouched

    [event] = audit(client, "version.delete")
    assert (event["actor"], event["target"]) == ("tests", "model:sentiment:3")
    assert event["after"] == {"artifact_files_removed": 1}


def test_a_deleted_version_number_is_not_given_again(
    client: TestClient, settings: Settings, tiny_model_bytes: bytes
) -> None:
    assert client.delete("/v1/models/sentiment/versions/3").status_code == 204
    register_versions(settings, "sentiment", tiny_model_bytes, 1)
    assert client.get("/v1/models/sentiment").json()["latest_version"] == 4


# -- models --------------------------------------------------------------------------------
def test_delete_model_stops_serving_it_and_keeps_the_prediction_log(
    client: TestClient, settings: Settings
) -> None:
    for ref in ("sentiment", "sentiment@production", "sentiment:2"):
        assert predict(client, ref).status_code == 200
    deadline = time.monotonic() + 10
    while logged_predictions(settings) < 3:  # the log is written in batches
        assert time.monotonic() < deadline, "the predictions were not logged"
        time.sleep(0.05)
    dataset_id = upload(client)
    r = client.put(
        "/v1/models/sentiment/schedule", json={"cron": "0 3 * * *", "dataset_id": dataset_id}
    )
    assert r.status_code == 200, r.text

    r = client.delete("/v1/models/sentiment")
    assert r.status_code == 204, r.text
    for ref in ("sentiment", "sentiment@production", "sentiment:1", "sentiment:2"):
        problem(predict(client, ref), 404)
    problem(client.get("/v1/models/sentiment"), 404)
    problem(client.delete("/v1/models/sentiment"), 404)
    assert client.get("/v1/models").json()["models"] == []
    assert not (artifacts_dir(settings) / "sentiment").exists()
    # the schedule went with it (it would fire for a missing model) …
    problem(client.get("/v1/models/sentiment/schedule"), 404)
    # … the prediction log stays: it is history
    assert logged_predictions(settings) == 3

    [event] = audit(client, "model.delete")
    assert (event["actor"], event["target"]) == ("tests", "model:sentiment")
    assert event["before"] == {
        "task": "text-classification",
        "aliases": {"production": 1},
        "versions": [1, 2, 3],
    }
    assert event["after"] == {"schedule_removed": True, "artifact_files_removed": 3}


def test_a_deleted_name_can_be_registered_again(
    client: TestClient, settings: Settings, tiny_model_bytes: bytes
) -> None:
    assert predict(client, "sentiment:2").json()["version"] == 2
    assert client.delete("/v1/models/sentiment").status_code == 204
    register_versions(settings, "sentiment", tiny_model_bytes, 1)
    r = predict(client, "sentiment")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1
    problem(predict(client, "sentiment:2"), 404)


def test_a_deleted_recommender_stops_answering(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    from test_recommend_api import catalogue, history

    from aiweb.recommendations.store import RecommendationStore
    from aiweb.recommendations.training import RecommendationData, train_recommendation

    with TestClient(create_app(settings), headers=auth_headers) as c:
        assert c.post("/v1/items", json={"items": catalogue()}).status_code == 200
        assert c.post("/v1/interactions", json={"interactions": history()}).status_code == 200
        registry, engine = open_registry(settings)
        try:
            data = RecommendationData.from_store(RecommendationStore(engine))
            for _ in range(2):
                train_recommendation(registry, "shows", data, algorithm="ease", actor="tests")
        finally:
            engine.dispose()

        def recs(model: str) -> httpx.Response:
            return c.get("/v1/users/u0/recommendations", params={"model": model, "n": 2})

        for _ in range(2):  # the second answer may come from the cache
            assert recs("shows").status_code == 200
            assert recs("shows:2").status_code == 200
        assert c.delete("/v1/models/shows/versions/2").status_code == 204
        problem(recs("shows:2"), 404)
        assert recs("shows").status_code == 200
        assert c.delete("/v1/models/shows").status_code == 204
        problem(recs("shows"), 404)
        problem(recs("shows:1"), 404)
        problem(c.get("/v1/items/m1/similar", params={"model": "shows"}), 404)


def test_deleting_is_refused_while_a_job_uses_the_version_or_model(client: TestClient) -> None:
    dataset_id = upload(client)
    r = client.post(
        "/v1/jobs", json={"type": "batch-predict", "model": "sentiment:3", "dataset_id": dataset_id}
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "pending"  # no runner here: it stays pending
    assert job["id"] in problem(client.delete("/v1/models/sentiment/versions/3"), 409)
    assert job["id"] in problem(client.delete("/v1/models/sentiment"), 409)
    assert client.delete("/v1/models/sentiment/versions/2").status_code == 204
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert client.delete("/v1/models/sentiment/versions/3").status_code == 204
    assert client.delete("/v1/models/sentiment").status_code == 204


def test_deleting_needs_the_admin_scope(client: TestClient, settings: Settings) -> None:
    for scopes in (("predict",), ("train",)):
        key = create_key(settings, scopes, name=f"k-{scopes[0]}")
        headers = {"Authorization": f"Bearer {key}"}
        assert client.delete("/v1/models/sentiment", headers=headers).status_code == 403
        r = client.delete("/v1/models/sentiment/versions/3", headers=headers)
        assert r.status_code == 403
    assert client.get("/v1/models/sentiment/versions/3").status_code == 200


def test_bad_names_are_422(client: TestClient) -> None:
    problem(client.delete("/v1/models/Bad%20Name"), 422)
    assert client.delete("/v1/models/sentiment/versions/0").status_code == 422


# -- datasets ------------------------------------------------------------------------------
def test_delete_dataset_refused_while_a_job_or_schedule_uses_it(
    client: TestClient, settings: Settings
) -> None:
    dataset_id = upload(client)
    other = upload(client)
    job = client.post(
        "/v1/jobs",
        json={"type": "train", "model": "m", "dataset_id": other, "eval_dataset_id": dataset_id},
    ).json()
    assert job["status"] == "pending"  # no runner here: it stays pending
    detail = problem(client.delete(f"/v1/datasets/{dataset_id}"), 409)
    assert job["id"] in detail
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 200

    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    r = client.put("/v1/models/m/schedule", json={"cron": "0 3 * * *", "dataset_id": dataset_id})
    assert r.status_code == 200, r.text
    detail = problem(client.delete(f"/v1/datasets/{dataset_id}"), 409)
    assert "schedule of 'm'" in detail
    assert client.delete("/v1/models/m/schedule").status_code == 204

    r = client.delete(f"/v1/datasets/{dataset_id}")
    assert r.status_code == 204, r.text
    problem(client.get(f"/v1/datasets/{dataset_id}"), 404)
    problem(client.delete(f"/v1/datasets/{dataset_id}"), 404)
    assert not (settings.resolved_artifacts_dir / "datasets" / dataset_id).exists()
    assert (settings.resolved_artifacts_dir / "datasets" / other).is_dir()
    listed = [d["id"] for d in client.get("/v1/datasets").json()["datasets"]]
    assert listed == [other]

    [event] = audit(client, "dataset.delete")
    assert (event["actor"], event["target"]) == ("tests", f"dataset:{dataset_id}")
    assert event["before"]["rows"] == 12


def test_delete_dataset_needs_the_train_scope(client: TestClient, settings: Settings) -> None:
    dataset_id = upload(client)
    predict_only = create_key(settings, ("predict",), name="predict-only")
    r = client.delete(
        f"/v1/datasets/{dataset_id}", headers={"Authorization": f"Bearer {predict_only}"}
    )
    assert r.status_code == 403
    train = create_key(settings, ("train",), name="trainer")
    r = client.delete(f"/v1/datasets/{dataset_id}", headers={"Authorization": f"Bearer {train}"})
    assert r.status_code == 204


# -- the CLI -------------------------------------------------------------------------------
@pytest.fixture
def cli_env(
    settings: Settings, tiny_model_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """``sentiment`` versions 1 (production), 2 and 3, and the CLI pointed at them."""
    register_versions(settings, "sentiment", tiny_model_bytes, 3)
    monkeypatch.setenv("AIWEB_HOME", str(settings.home))
    monkeypatch.setenv("AIWEB_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.delenv("AIWEB_BROKER_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return settings


def run(*args: str, answer: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args), input=answer)
    return result.exit_code, result.stdout, result.stderr


def test_cli_deletes_a_version_after_asking(cli_env: Settings) -> None:
    code, _, err = run("models", "delete", "sentiment", "--version", "3", answer="n\n")
    assert code == 1
    assert "Delete sentiment:3" in err
    code, _, err = run("models", "delete", "sentiment", "--version", "3", answer="y\n")
    assert code == 0, err
    assert "deleted sentiment:3" in err
    code, _, err = run("models", "delete", "sentiment", "--version", "1", "--yes")
    assert code == 1
    assert "sentiment@production" in err
    assert "Traceback" not in err
    code, _, err = run("models", "delete", "sentiment", "--version", "3", "--yes")
    assert code == 1
    assert "no version 3" in err
    registry, engine = open_registry(cli_env)
    try:
        assert [v.version for v in registry.list_versions("sentiment")] == [1, 2]
        assert registry.audit is not None
        [event] = registry.audit.list(action="version.delete")[0]
        assert event.actor == "cli"
    finally:
        engine.dispose()


def test_cli_deletes_a_model(cli_env: Settings) -> None:
    code, _, err = run("models", "delete", "sentiment", answer="\n")  # the default is no
    assert code == 1
    assert "3 version(s)" in err
    assert "production→1" in err
    code, _, err = run("models", "delete", "sentiment", "--yes")
    assert code == 0, err
    assert "deleted model sentiment (versions: 1, 2, 3)" in err
    assert not (cli_env.resolved_artifacts_dir / "models" / "sentiment").exists()
    code, _, err = run("models", "delete", "sentiment", "--yes")
    assert code == 1
    assert "no model named 'sentiment'" in err
    assert "Traceback" not in err


def test_cli_deletes_a_dataset_by_id_prefix(cli_env: Settings, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_bytes(CSV)
    code, out, err = run("datasets", "upload", str(source))
    assert code == 0, err
    dataset_id = out.strip()
    code, _, err = run("datasets", "delete", dataset_id[:8], answer="n\n")
    assert code == 1
    assert dataset_id in err
    code, _, err = run("datasets", "delete", dataset_id[:8], "--yes")
    assert code == 0, err
    assert f"deleted dataset {dataset_id}" in err
    code, out, _ = run("datasets", "uploads", "--json")
    assert dataset_id not in out
    code, _, err = run("datasets", "delete", dataset_id, "--yes")
    assert code == 1
    assert "does not exist" in err
