"""Production mode end to end: ``aiweb serve`` + ``aiweb worker`` on PostgreSQL, with
RabbitMQ or Redis as the Celery broker and Redis for rate limits, all real processes.

- train a model from an uploaded CSV and score a 200,000-row file through jobs, with
  the worker SIGKILLed in the middle of the batch job: a new worker finishes it with
  exactly one output row per input id;
- the broker unreachable when a job is submitted: 503, no job left, predictions served;
- 100 jobs submitted concurrently by several clients all finish, none twice;
- a resume screening (``POST /v1/screenings``) runs on the worker: the matching CV
  ranks first and the e-mail address and phone number never reach the result.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from stack import (
    AMQP_URL,
    PG_URL,
    REDIS_URL,
    Proc,
    Stack,
    base_env,
    create_admin_key,
    free_port,
    labeled_csv,
    reachable,
    running,
    scoring_csv,
    start_server,
    wait_job,
)

from aiweb.db.session import make_engine

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not PG_URL, reason="AIWEB_TEST_DATABASE_URL is not set"),
    pytest.mark.skipif(not reachable("127.0.0.1", 6379), reason="no Redis on 127.0.0.1:6379"),
]

BATCH_ROWS = 200_000


def _broker_params() -> list[Any]:
    params = [pytest.param(REDIS_URL, id="redis")]
    if reachable("127.0.0.1", 5672):
        params.insert(0, pytest.param(AMQP_URL, id="rabbitmq"))
    return params


@pytest.fixture(scope="module", params=_broker_params())
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A PostgreSQL schema, a queue of its own on the broker, and ``aiweb serve``."""
    assert PG_URL
    schema = f"e2e_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    home = tmp_path_factory.mktemp("celery")
    sep = "&" if "?" in PG_URL else "?"
    env = base_env(
        home,
        AIWEB_DATABASE_URL=f"{PG_URL}{sep}options=-csearch_path%3D{schema}",
        AIWEB_BROKER_URL=request.param,
        AIWEB_REDIS_URL=REDIS_URL,
        AIWEB_SECRET_KEY=uuid.uuid4().hex * 2,
        AIWEB_RATE_LIMIT__ENABLED="false",
        AIWEB_JOBS__QUEUE=f"aiweb-test-{schema}",
        AIWEB_JOBS__LEASE_S="6",
        AIWEB_JOBS__RETRY_BACKOFF_S="0.5",
        AIWEB_JOBS__BATCH_CHUNK_ROWS="4096",
        # Redis redelivers an unacknowledged task after this long (RabbitMQ at once)
        AIWEB_JOBS__BROKER_VISIBILITY_TIMEOUT_S="8",
    )
    key = create_admin_key(env)
    port = free_port()
    try:
        with running(start_server(env, home / "serve.log", port)):
            yield Stack(env=env, home=home, port=port, key=key)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def upload(client: httpx.Client, name: str, content: bytes) -> dict[str, Any]:
    r = client.post("/v1/datasets", files={"file": (name, content, "text/csv")})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def submit(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


def test_train_from_upload_and_score_200k_rows_surviving_a_sigkilled_worker(
    stack: Stack, tmp_path: Path
) -> None:
    with stack.client() as client:
        training = upload(client, "train.csv", labeled_csv(20))
        worker_a = stack.worker("worker-a")
        try:
            trained = wait_job(
                client,
                submit(client, {"type": "train", "model": "spam", "dataset_id": training["id"]})[
                    "id"
                ],
            )
            assert trained["status"] == "succeeded", trained
            big = scoring_csv(tmp_path / "big.csv", BATCH_ROWS)
            dataset = upload(client, "big.csv", big.read_bytes())
            assert dataset["rows"] == BATCH_ROWS
            job = submit(
                client, {"type": "batch-predict", "model": "spam", "dataset_id": dataset["id"]}
            )
            mid = wait_job(client, job["id"], until=lambda j: j["progress"] >= 0.15)
            assert mid["status"] == "running", mid
            assert mid["progress"] < 1.0
        finally:
            worker_a.kill()  # SIGKILL, whole process group, mid-job
        # RabbitMQ requeues the dead worker's unacknowledged task at once. Redis gives it
        # back only after its visibility timeout and a restore cycle (minutes); there the
        # scheduler's sweep re-dispatches the job as soon as its lease has expired.
        sweeper = (
            Proc(
                ["scheduler"],
                dict(stack.env, AIWEB_JOBS__SCHEDULER_INTERVAL_S="2"),
                stack.home / "beat-sweep.log",
            )
            if stack.env["AIWEB_BROKER_URL"].startswith("redis")
            else None
        )
        try:
            with running(stack.worker("worker-b")):
                done = wait_job(client, job["id"], timeout=600)
        finally:
            if sweeper is not None:
                sweeper.stop()
        assert done["status"] == "succeeded", (done["error"], done["attempts"], done["message"])
        assert done["attempts"] == 2
        assert done["result"]["rows"] == BATCH_ROWS
        res = client.get(f"/v1/jobs/{job['id']}/result")
        assert res.status_code == 200
        rows = list(csv.reader(io.StringIO(res.text)))
        assert rows[0] == ["id", "label", "score_negative", "score_positive"]
        ids = [r[0] for r in rows[1:]]
        assert len(ids) == BATCH_ROWS
        assert set(ids) == {f"r{i}" for i in range(BATCH_ROWS)}
        assert {r[1] for r in rows[1:]} <= {"negative", "positive"}

        # the model trained through a job serves too
        pred = client.post("/v1/models/spam/predict", json={"inputs": ["i loved every minute"]})
        assert pred.json()["predictions"][0]["label"] == "positive"


def test_100_concurrent_jobs_from_several_clients_all_finish_once(stack: Stack) -> None:
    with stack.client() as client:
        training = upload(client, "train.csv", labeled_csv(5))
        small = upload(client, "small.csv", b"id,text\n1,i loved it\n2,dull and boring\n")
    with (
        running(stack.worker("worker-c", concurrency=2)),
        running(stack.worker("worker-d", concurrency=2)),
    ):
        with stack.client() as client:
            first = wait_job(
                client,
                submit(client, {"type": "train", "model": "many", "dataset_id": training["id"]})[
                    "id"
                ],
            )
            assert first["status"] == "succeeded", first
        ids: list[str] = []
        lock = threading.Lock()
        errors: list[str] = []

        def client_thread(n: int) -> None:
            with stack.client() as c:
                for _ in range(n):
                    r = c.post(
                        "/v1/jobs",
                        json={"type": "batch-predict", "model": "many", "dataset_id": small["id"]},
                    )
                    if r.status_code != 202:
                        errors.append(r.text)
                        continue
                    with lock:
                        ids.append(r.json()["id"])

        threads = [threading.Thread(target=client_thread, args=(n,)) for n in (25, 25, 25, 25)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(set(ids)) == 100
        with stack.client() as client:
            finished = [wait_job(client, job_id, timeout=300) for job_id in ids]
    assert [j["status"] for j in finished] == ["succeeded"] * 100
    # none ran twice: one attempt each, one output file each
    assert {j["attempts"] for j in finished} == {1}
    assert len({j["result"]["artifact_uri"] for j in finished}) == 100
    assert {j["result"]["rows"] for j in finished} == {2}


def test_broker_unreachable_is_503_leaves_no_job_and_predictions_go_on(
    stack: Stack, tmp_path: Path, tiny_model_bytes: bytes
) -> None:
    """A second API process on the same database whose broker is down."""
    from aiweb.config import Settings
    from aiweb.registry.factory import build_registry

    registry, engine = build_registry(
        Settings(home=stack.home, database_url=stack.env["AIWEB_DATABASE_URL"])
    )
    try:
        registry.register_version(
            "steady",
            "text-classification",
            artifact=tiny_model_bytes,
            artifact_format="skops",
            labels=["negative", "positive"],
            signature={},
            lineage={},
            evaluation={},
        )
    finally:
        engine.dispose()
    env = dict(stack.env, AIWEB_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    port = free_port()
    with (
        running(start_server(env, tmp_path / "serve-no-broker.log", port)),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {stack.key}"},
            timeout=60,
        ) as client,
    ):
        before = client.get("/v1/jobs").json()["total"]
        training = upload(client, "train.csv", labeled_csv(5))
        r = client.post(
            "/v1/jobs", json={"type": "train", "model": "nobroker", "dataset_id": training["id"]}
        )
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/broker-unavailable")
        assert r.headers["retry-after"] == "5"
        assert client.get("/v1/jobs").json()["total"] == before  # nothing half-created
        # the API keeps serving predictions
        pred = client.post("/v1/models/steady/predict", json={"inputs": ["i loved every minute"]})
        assert pred.status_code == 200, pred.text
        assert pred.json()["predictions"][0]["label"] == "positive"
        assert client.get("/readyz").status_code == 200


def test_scheduler_beat_starts_due_retraining_on_a_worker(stack: Stack) -> None:
    """``aiweb scheduler`` (Celery beat) ticks; a worker runs the tick and the job."""
    import time
    from datetime import timedelta

    from sqlalchemy import update

    from aiweb.db.orm import SqlSchedule, utcnow

    with stack.client() as client:
        training = upload(client, "train.csv", labeled_csv(5))
        r = client.put(
            "/v1/models/nightly/schedule",
            json={"cron": "0 3 * * *", "dataset_id": training["id"]},
        )
        assert r.status_code == 200, r.text
        engine = make_engine(stack.env["AIWEB_DATABASE_URL"])
        try:
            with engine.begin() as conn:
                conn.execute(
                    update(SqlSchedule)
                    .where(SqlSchedule.model == "nightly")
                    .values(next_run_at=utcnow() - timedelta(seconds=1))
                )
        finally:
            engine.dispose()
        env = dict(stack.env, AIWEB_JOBS__SCHEDULER_INTERVAL_S="1")
        beat = Proc(["scheduler"], env, stack.home / "beat.log")
        with running(beat), running(stack.worker("worker-e")):
            deadline = time.monotonic() + 60
            while (schedule := client.get("/v1/models/nightly/schedule").json())[
                "last_job_id"
            ] is None:
                assert time.monotonic() < deadline, beat.output()
                time.sleep(0.2)
            job = wait_job(client, schedule["last_job_id"])
        assert job["status"] == "succeeded", job
        assert job["submitted_by"] == "scheduler"
        assert job["result"]["promotion"]["promoted"] is True
        assert schedule["next_run_at"].endswith("03:00:00Z")


def test_a_screening_job_runs_on_the_celery_worker(stack: Stack) -> None:
    from aiweb.config import Settings
    from document_helpers import DOCX_TYPE, make_docx, make_pdf
    from screening_helpers import (
        EMAIL,
        JOB,
        MATCHING,
        OTHER,
        PHONE,
        register,
        tiny_skills_model,
    )

    register(
        Settings(home=stack.home, database_url=stack.env["AIWEB_DATABASE_URL"]),
        "celery-skills",
        tiny_skills_model(),
    )
    with stack.client() as client:
        ids = []
        for name, content, ctype in (
            ("john.docx", make_docx([OTHER]), DOCX_TYPE),
            ("jane.pdf", make_pdf(MATCHING), "application/pdf"),
        ):
            r = client.post("/v1/documents", files={"file": (name, content, ctype)})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        other, good = ids
        r = client.post(
            "/v1/screenings",
            json={"job_description": JOB, "document_ids": ids, "skills_model": "celery-skills"},
        )
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending"  # nothing runs it in the API process
        with running(stack.worker("worker-screen")):
            job = wait_job(client, r.json()["id"], timeout=300)
        assert job["status"] == "succeeded", (job["error"], job["message"])
        assert job["attempts"] == 1
        answer = client.get(f"/v1/jobs/{job['id']}/result")
        assert answer.status_code == 200, answer.text
        result = answer.json()
    first, second = result["candidates"]
    assert (first["document_id"], second["document_id"]) == (good, other)
    assert first["score"] > second["score"]
    assert {"Python", "SQL", "Docker"} <= set(first["matched_skills"])
    assert result["models"]["skills"] == "celery-skills:1"
    dumped = json.dumps(result)
    for secret in (EMAIL, PHONE, "7946"):
        assert secret not in dumped
