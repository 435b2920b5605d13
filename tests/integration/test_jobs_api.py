"""Jobs, uploads and schedules over the API, in both modes:

- ``embedded``: the runner inside the app runs jobs (SQLite and PostgreSQL);
- ``celery``: PostgreSQL, Redis as broker and for rate limits, and a real Celery worker
  (in a thread of this process; the multi-process kill tests are in tests/e2e).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import redis_reachable
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from aiweb.app import create_app
from aiweb.config import Settings

POS = [
    "a wonderful, moving film",
    "great acting and a clever story",
    "i loved every minute of it",
    "brilliant, funny and warm",
    "a delight from start to finish",
    "superb and touching",
]
NEG = [
    "terrible and boring",
    "a dull, lifeless mess",
    "i hated every minute of it",
    "awful acting and a stupid plot",
    "a waste of time",
    "tedious and ugly",
]


def labeled_csv(repeat: int = 5, *, with_ids: bool = True) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "text", "label"] if with_ids else ["text", "label"])
    n = 0
    for r in range(repeat):
        for text, label in [(t, "positive") for t in POS] + [(t, "negative") for t in NEG]:
            n += 1
            row = [f"{text} ({r})", label]
            writer.writerow([f"row-{n}", *row] if with_ids else row)
    return buf.getvalue().encode()


REDIS_URL = "redis://127.0.0.1:6379/0"


def job_mode_settings(mode: str, settings: Settings) -> Settings:
    """``settings`` in job mode ``mode``: ``embedded`` as they are; ``celery`` with Redis as
    broker and a queue of its own (skips unless on PostgreSQL with Redis up)."""
    if mode == "embedded":
        return settings
    if not settings.resolved_database_url.startswith("postgresql"):
        pytest.skip("production mode runs on PostgreSQL")
    if not redis_reachable(REDIS_URL):
        pytest.skip("no Redis on 127.0.0.1:6379")
    import uuid

    return settings.model_copy(
        update={
            "broker_url": REDIS_URL,
            "redis_url": REDIS_URL,
            "jobs": settings.jobs.model_copy(update={"queue": f"test-{uuid.uuid4().hex}"}),
        }
    )


@pytest.fixture(params=["embedded", "celery"])
def job_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test settings in one of the two job modes."""
    return job_mode_settings(request.param, settings)


@contextmanager
def celery_worker(settings: Settings) -> Iterator[None]:
    """A real Celery worker on the settings' broker and database, in a thread."""
    if not settings.broker_url:
        yield
        return
    from celery.contrib.testing.worker import start_worker

    from aiweb.jobs.celery_app import close_envs, make_celery
    from aiweb.jobs.types import JobTypes
    from aiweb.tasks import job_types

    app = make_celery(settings, JobTypes(job_types()))
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield
    finally:
        close_envs()


@pytest.fixture
def client(job_settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    with (
        celery_worker(job_settings),
        TestClient(create_app(job_settings), headers=auth_headers) as c,
    ):
        yield c


def upload(
    client: TestClient, content: bytes, name: str = "data.csv", ctype: str = "text/csv"
) -> Any:
    return client.post("/v1/datasets", files={"file": (name, content, ctype)})


def wait_job(client: TestClient, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.05)


def train(
    client: TestClient, dataset_id: str, model: str = "reviews", **extra: Any
) -> dict[str, Any]:
    r = client.post(
        "/v1/jobs", json={"type": "train", "model": model, "dataset_id": dataset_id, **extra}
    )
    assert r.status_code == 202, r.text
    return wait_job(client, r.json()["id"])


# ---- uploads ----------------------------------------------------------------------------


def test_upload_describes_the_file_and_lists_it(client: TestClient) -> None:
    content = labeled_csv(2)
    r = upload(client, content)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rows"] == 24
    assert body["columns"] == ["id", "text", "label"]
    import hashlib

    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert r.headers["location"] == f"/v1/datasets/{body['id']}"
    assert client.get(f"/v1/datasets/{body['id']}").json()["rows"] == 24
    listed = client.get("/v1/datasets").json()
    assert [d["id"] for d in listed["datasets"]] == [body["id"]]
    assert client.get("/v1/datasets/nope").status_code == 404


def test_jsonl_upload(client: TestClient) -> None:
    lines = "\n".join(json.dumps({"text": t, "label": "p", "n": i}) for i, t in enumerate(POS))
    r = upload(client, lines.encode(), "rows.jsonl", "application/jsonl")
    assert r.status_code == 201, r.text
    assert r.json()["columns"] == ["text", "label", "n"]
    assert r.json()["rows"] == len(POS)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("bad.csv", b'text,label\n"a",b,c\n', "line 2"),
        ("bad.csv", b"text,label\n\xff\xfe,x\n", "UTF-8"),
        ("bad.jsonl", b'{"text": "a"}\nnot json\n', "line 2"),
        ("data.xlsx", b"PK\x03\x04", ".csv"),
        ("empty.csv", b"", "empty"),
    ],
)
def test_malformed_upload_is_422_naming_the_problem_and_keeps_nothing(
    client: TestClient, name: str, content: bytes, needle: str
) -> None:
    r = upload(client, content, name, "application/octet-stream")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"]
    assert client.get("/v1/datasets").json()["total"] == 0


def test_upload_over_the_row_limit_is_refused(
    settings: Settings, auth_headers: dict[str, str]
) -> None:
    limited = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_upload_rows": 10})}
    )
    with TestClient(create_app(limited), headers=auth_headers) as c:
        ok = upload(c, b"text,label\n" + b"a,b\n" * 10)
        assert ok.status_code == 201, ok.text
        r = upload(c, b"text,label\n" + b"a,b\n" * 11)
        assert r.status_code == 422
        assert "line 12" in r.json()["detail"]
        assert "AIWEB_LIMITS__MAX_UPLOAD_ROWS" in r.json()["detail"]


def test_upload_without_a_file_field_is_422(client: TestClient) -> None:
    r = client.post("/v1/datasets", files={"other": ("a.csv", b"text\nx\n", "text/csv")})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


# ---- training and batch prediction ---------------------------------------------------------


def test_train_job_registers_a_version_with_its_lineage(client: TestClient) -> None:
    dataset = upload(client, labeled_csv(5)).json()
    r = client.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "text-classification",
            "model": "reviews",
            "dataset_id": dataset["id"],
            "params": {"C": 4},
        },
    )
    assert r.status_code == 202
    assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    assert r.json()["status"] == "pending"
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0
    assert job["attempts"] == 1
    assert job["result"]["model"] == "reviews"
    assert job["result"]["version"] == 1
    assert 0.5 <= job["result"]["metrics"]["macro_f1"] <= 1.0
    assert job["started_at"] <= job["finished_at"]
    version = client.get("/v1/models/reviews/versions/1").json()
    assert version["lineage"]["job_id"] == job["id"]
    assert version["lineage"]["params"]["C"] == 4
    assert version["lineage"]["dataset_sha256"]
    # the first version serves at once
    pred = client.post("/v1/models/reviews/predict", json={"inputs": ["i loved it, wonderful"]})
    assert pred.json()["predictions"][0]["label"] == "positive"


@pytest.mark.parametrize("with_ids", [True, False])
def test_batch_predict_writes_one_row_per_input(client: TestClient, with_ids: bool) -> None:
    train_set = upload(client, labeled_csv(5)).json()
    assert train(client, train_set["id"])["status"] == "succeeded"
    score_set = upload(client, labeled_csv(3, with_ids=with_ids)).json()
    r = client.post(
        "/v1/jobs",
        json={
            "type": "batch-predict",
            "model": "reviews",
            "dataset_id": score_set["id"],
            "text_column": "text",
        },
    )
    assert r.status_code == 202, r.text
    assert r.json()["params"]["model_version"] == 1  # pinned at submit
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == 36
    assert job["links"]["result"] == f"/v1/jobs/{job['id']}/result"
    res = client.get(f"/v1/jobs/{job['id']}/result")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert list(rows[0]) == ["id", "label", "score_negative", "score_positive"]
    assert len(rows) == 36
    expected_ids = (
        [f"row-{i}" for i in range(1, 37)] if with_ids else [str(i) for i in range(1, 37)]
    )
    assert [row["id"] for row in rows] == expected_ids
    for row in rows:
        total = float(row["score_negative"]) + float(row["score_positive"])
        assert total == pytest.approx(1.0, abs=1e-5)
        best = "positive" if float(row["score_positive"]) > 0.5 else "negative"
        assert row["label"] == best
    # the predictions are the model's: most training-like rows come out right
    truth = list(csv.DictReader(io.StringIO(labeled_csv(3, with_ids=with_ids).decode())))
    right = sum(r["label"] == t["label"] for r, t in zip(rows, truth, strict=True))
    assert right >= 30


def test_result_before_success_is_409(idle_client: TestClient) -> None:
    dataset = upload(idle_client, labeled_csv(1)).json()
    job = idle_client.post(
        "/v1/jobs", json={"type": "train", "model": "m", "dataset_id": dataset["id"]}
    ).json()
    r = idle_client.get(f"/v1/jobs/{job['id']}/result")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"type": "train", "model": "m", "dataset_id": "nope"}, 404, "dataset_id 'nope'"),
        ({"type": "train", "model": "m", "dataset": "no-such-set"}, 422, "unknown dataset"),
        (
            {"type": "train", "model": "m", "dataset": "wnut17"},
            422,
            "'wnut17' is a token-classification dataset",
        ),
        (
            {"type": "train", "model": "m", "dataset": "movielens_latest_small"},
            422,
            "a recommendation dataset; a text classifier trains on one of: ",
        ),
        ({"type": "train", "model": "m"}, 422, "exactly one of dataset_id or dataset"),
        ({"type": "train", "model": "Bad Name!", "dataset": "sst2"}, 422, "model"),
        ({"type": "train", "model": "m", "dataset": "sst2", "params": {"C": -1}}, 422, "params"),
        ({"type": "explode"}, 422, "type"),
        ({"type": "batch-predict", "model": "ghost", "dataset_id": "x"}, 404, "ghost"),
    ],
)
def test_bad_job_is_refused_and_nothing_is_created(
    client: TestClient, body: dict[str, Any], status: int, needle: str
) -> None:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert needle in json.dumps(r.json())
    assert client.get("/v1/jobs").json()["total"] == 0


def test_batch_predict_needs_the_text_column(client: TestClient) -> None:
    dataset = upload(client, labeled_csv(5)).json()
    assert train(client, dataset["id"])["status"] == "succeeded"
    r = client.post(
        "/v1/jobs",
        json={
            "type": "batch-predict",
            "model": "reviews",
            "dataset_id": dataset["id"],
            "text_column": "review",
        },
    )
    assert r.status_code == 422
    assert "columns are: id, text, label" in r.json()["detail"]


def test_train_job_with_bad_labels_fails_with_the_reason(client: TestClient) -> None:
    dataset = upload(
        client, b"text,label\n" + b"".join(f"t{i},same\n".encode() for i in range(20))
    ).json()
    job = train(client, dataset["id"])
    assert job["status"] == "failed"
    assert "2 distinct labels" in job["error"]
    assert job["attempts"] == 1  # bad data is not retried


# ---- listing and cancelling ------------------------------------------------------------------


@pytest.fixture
def idle_client(job_settings: Settings, auth_headers: dict[str, str]) -> Iterator[TestClient]:
    """An app that accepts jobs but runs none (no embedded runner, no Celery worker)."""
    idle = job_settings.model_copy(
        update={"jobs": job_settings.jobs.model_copy(update={"concurrency": 0})}
    )
    with TestClient(create_app(idle), headers=auth_headers) as c:
        yield c


def test_list_filters_and_paginates(idle_client: TestClient) -> None:
    dataset = upload(idle_client, labeled_csv(1)).json()
    ids = [
        idle_client.post(
            "/v1/jobs", json={"type": "train", "model": f"m{i}", "dataset_id": dataset["id"]}
        ).json()["id"]
        for i in range(5)
    ]
    idle_client.post(f"/v1/jobs/{ids[0]}/cancel")
    page = idle_client.get("/v1/jobs?limit=2").json()
    assert page["total"] == 5
    assert len(page["jobs"]) == 2
    assert page["next_offset"] == 2
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]  # newest first
    last = idle_client.get("/v1/jobs?limit=2&offset=4").json()
    assert last["next_offset"] is None
    assert idle_client.get("/v1/jobs?status=cancelled").json()["total"] == 1
    assert idle_client.get("/v1/jobs?status=pending&type=train").json()["total"] == 4
    assert idle_client.get("/v1/jobs?type=batch-predict").json()["total"] == 0
    assert idle_client.get("/v1/jobs?status=bogus").status_code == 422


def test_cancel_pending_then_finished_is_409(idle_client: TestClient) -> None:
    dataset = upload(idle_client, labeled_csv(1)).json()
    job = idle_client.post(
        "/v1/jobs", json={"type": "train", "model": "m", "dataset_id": dataset["id"]}
    ).json()
    r = idle_client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert idle_client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert idle_client.post("/v1/jobs/nope/cancel").status_code == 404
    assert idle_client.get("/v1/jobs/nope").status_code == 404


def test_job_actions_are_audited(client: TestClient) -> None:
    dataset = upload(client, labeled_csv(5)).json()
    job = train(client, dataset["id"])
    actions = {e["action"]: e for e in client.get("/v1/audit?limit=100").json()["events"]}
    assert actions["dataset.upload"]["target"] == f"dataset:{dataset['id']}"
    assert actions["job.submitted"]["target"] == f"job:{job['id']}"
    assert actions["training.started"]["actor"] == "tests"


# ---- scheduled retraining --------------------------------------------------------------------


def test_schedule_validation(client: TestClient) -> None:
    dataset = upload(client, labeled_csv(5)).json()
    bad_cron = client.put(
        "/v1/models/reviews/schedule", json={"cron": "every day", "dataset_id": dataset["id"]}
    )
    assert bad_cron.status_code == 422
    assert "cron" in bad_cron.json()["detail"]
    bad_zone = client.put(
        "/v1/models/reviews/schedule",
        json={"cron": "0 3 * * *", "timezone": "Mars/Olympus", "dataset_id": dataset["id"]},
    )
    assert bad_zone.status_code == 422
    no_data = client.put(
        "/v1/models/reviews/schedule", json={"cron": "0 3 * * *", "dataset_id": "x"}
    )
    assert no_data.status_code == 404  # no such dataset
    assert client.get("/v1/models/reviews/schedule").status_code == 404
    assert client.delete("/v1/models/reviews/schedule").status_code == 404


def test_schedule_put_get_delete(client: TestClient) -> None:
    dataset = upload(client, labeled_csv(5)).json()
    r = client.put(
        "/v1/models/reviews/schedule",
        json={
            "cron": "30 4 * * 1",
            "dataset_id": dataset["id"],
            "promotion": {"metric": "macro_f1", "min_delta": 0.01},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_run_at"].endswith("04:30:00Z")
    assert body["promotion"] == {"metric": "macro_f1", "min_delta": 0.01}
    assert body["training"]["dataset_id"] == dataset["id"]
    assert client.get("/v1/models/reviews/schedule").json()["cron"] == "30 4 * * 1"
    assert client.delete("/v1/models/reviews/schedule").status_code == 204
    assert client.get("/v1/models/reviews/schedule").status_code == 404


@pytest.mark.parametrize(("min_delta", "promoted"), [(-1.0, True), (1.0, False)])
def test_scheduled_retraining_moves_production_only_when_the_rule_holds(
    client: TestClient, min_delta: float, promoted: bool
) -> None:
    dataset = upload(client, labeled_csv(5)).json()
    assert train(client, dataset["id"])["status"] == "succeeded"  # version 1 = production
    client.put(
        "/v1/models/reviews/schedule",
        json={
            "cron": "0 3 * * *",
            "dataset_id": dataset["id"],
            "params": {"C": 0.5},
            "promotion": {"metric": "macro_f1", "min_delta": min_delta},
        },
    )
    r = client.post("/v1/models/reviews/schedule/run")
    assert r.status_code == 202
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    decision = job["result"]["promotion"]
    assert decision["promoted"] is promoted
    assert decision["production_version"] == 1
    assert decision["candidate"] is not None
    assert decision["production"] is not None
    model = client.get("/v1/models/reviews").json()
    assert model["aliases"]["production"] == (2 if promoted else 1)
    events = client.get("/v1/audit?limit=100").json()["events"]
    action = "retrain.promoted" if promoted else "retrain.not_promoted"
    assert any(e["action"] == action and e["target"] == "model:reviews" for e in events)
    assert client.get("/v1/models/reviews/schedule").json()["last_job_id"] == job["id"]


def test_due_schedule_fires_from_the_scheduler_tick(
    client: TestClient, job_settings: Settings
) -> None:
    """A schedule whose time has come is started by the scheduler: the embedded runner's
    own tick, or in production the beat task ``aiweb.scheduler_tick`` on a worker."""
    from datetime import timedelta

    from sqlalchemy import update

    from aiweb.db.orm import SqlSchedule, utcnow

    dataset = upload(client, labeled_csv(5)).json()
    client.put(
        "/v1/models/reviews/schedule", json={"cron": "0 3 * * *", "dataset_id": dataset["id"]}
    )
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(SqlSchedule).values(next_run_at=utcnow() - timedelta(seconds=1)))
    if job_settings.broker_url:  # what beat sends every jobs.scheduler_interval_s
        from aiweb.jobs.celery_app import TICK_TASK, make_celery

        make_celery(job_settings).send_task(TICK_TASK)
    deadline = time.monotonic() + 30
    while (last := client.get("/v1/models/reviews/schedule").json()["last_job_id"]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job = wait_job(client, last)
    assert job["status"] == "succeeded"
    assert job["submitted_by"] == "scheduler"
    assert job["result"]["promotion"]["promoted"] is True  # no production before
    nxt = client.get("/v1/models/reviews/schedule").json()["next_run_at"]
    assert nxt.endswith("03:00:00Z")


# ---- generated inputs -----------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings_(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.lists(st.lists(_TEXT, min_size=1, max_size=4), max_size=6).map(
            lambda rows: "\n".join(",".join(r) for r in rows).encode()
        ),
    ),
    name=st.sampled_from(["x.csv", "x.jsonl", "x.ndjson", "x.txt", "", "../../x.csv"]),
)
def test_any_upload_is_201_or_a_clear_4xx(
    idle_client: TestClient, content: bytes, name: str
) -> None:
    r = upload(idle_client, content, name, "application/octet-stream")
    assert r.status_code in (201, 413, 415, 422), r.text
    if r.status_code == 201:
        body = r.json()
        assert body["rows"] >= 1
        assert "/" not in body["name"]
        assert idle_client.get(f"/v1/datasets/{body['id']}").json() == body
    else:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]


@settings_(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.dictionaries(
        st.sampled_from(
            ["type", "model", "dataset_id", "dataset", "params", "text_column", "task", "alias"]
        ),
        st.one_of(st.none(), st.integers(), _TEXT, st.sampled_from(["train", "batch-predict"])),
    )
)
def test_any_job_body_is_202_or_a_clear_4xx(idle_client: TestClient, body: dict[str, Any]) -> None:
    r = idle_client.post("/v1/jobs", json=body)
    assert r.status_code in (202, 404, 422), r.text
    if r.status_code != 202:
        assert r.headers["content-type"] == "application/problem+json"
