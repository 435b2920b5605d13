"""Production mode in containers: an api, a worker and a scheduler container of the image on
the machine's PostgreSQL (a fresh schema) and Redis (broker and rate limits, a database
number of its own), all with ``--network host``.

A model is trained through a job, then a 200,000-row batch-prediction job is started, its
worker container is killed (``docker kill``: SIGKILL) in the middle, and a new worker
container finishes it exactly once: two attempts, one output row per input id. A worker
container stopped with ``docker stop`` mid-job finishes that job before it exits.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from dockerkit import UID, run
from sqlalchemy import text

from aiweb.db.session import make_engine

PG_URL = os.environ.get("AIWEB_TEST_DATABASE_URL")
# a database number of its own: flushed after the test
REDIS_URL = os.environ.get("AIWEB_TEST_DEPLOY_REDIS_URL", "redis://127.0.0.1:6379/13")
BATCH_ROWS = 200_000
POSITIVE = ["a wonderful, moving film", "great acting, clever story", "i loved every minute"]
NEGATIVE = ["terrible and boring", "a dull, lifeless mess", "i hated every minute"]

pytestmark = [
    pytest.mark.deploy,
    pytest.mark.timeout(1500),  # the image may be built by this module's first test
    pytest.mark.skipif(not PG_URL, reason="AIWEB_TEST_DATABASE_URL is not set"),
]


@dataclass
class Cluster:
    image: str
    env: dict[str, str]
    home: Path
    port: int
    key: str = ""
    containers: list[str] = field(default_factory=list)

    def docker_run(self, role: str, *command: str, detach: bool = True) -> str:
        """Start ``command`` in a container of the image; return its name."""
        name = f"aiweb-{role}-{uuid.uuid4().hex[:8]}"
        env_args = [arg for k, v in self.env.items() for arg in ("-e", f"{k}={v}")]
        args = ["docker", "run", "--name", name, "--network", "host"]
        if role != "api":
            args.append("--no-healthcheck")  # the image's check probes the api's /readyz
        args += ["-v", f"{self.home}:/var/lib/aiweb", *env_args]
        self.containers.append(name)
        if detach:
            run([*args, "-d", self.image, *command])
        else:
            return run([*args, "--rm", self.image, *command], timeout=300)
        return name

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"authorization": f"Bearer {self.key}"},
            timeout=60,
        )


def logs(name: str) -> str:
    proc = subprocess.run(
        ["docker", "logs", name], capture_output=True, text=True, check=False, timeout=60
    )
    return proc.stdout + proc.stderr


def wait_for_log(name: str, needle: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while needle not in (out := logs(name)):
        state = run(["docker", "inspect", "-f", "{{.State.Status}}", name]).strip()
        assert state == "running", f"{name} {state}:\n{out[-4000:]}"
        assert time.monotonic() < deadline, f"{name}: no {needle!r}:\n{out[-4000:]}"
        time.sleep(0.5)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def cluster(image: str, tmp_path: Path) -> Iterator[Cluster]:
    assert PG_URL
    schema = f"deploy_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["chown", f"{UID}:{UID}", str(home)], check=True)
    sep = "&" if "?" in PG_URL else "?"
    port = free_port()
    env = {
        "AIWEB_DATABASE_URL": f"{PG_URL}{sep}options=-csearch_path%3D{schema}",
        "AIWEB_BROKER_URL": REDIS_URL,
        "AIWEB_REDIS_URL": REDIS_URL,
        "AIWEB_SECRET_KEY": uuid.uuid4().hex * 2,
        "AIWEB_RATE_LIMIT__ENABLED": "false",
        "AIWEB_JOBS__QUEUE": f"aiweb-{schema}",
        "AIWEB_JOBS__LEASE_S": "6",
        "AIWEB_JOBS__RETRY_BACKOFF_S": "0.5",
        "AIWEB_JOBS__SCHEDULER_INTERVAL_S": "2",
        # Redis redelivers an unacknowledged task after this long
        "AIWEB_JOBS__BROKER_VISIBILITY_TIMEOUT_S": "8",
        "AIWEB_PORT": str(port),  # what the image's healthcheck probes
    }
    stack = Cluster(image=image, env=env, home=home, port=port)
    try:
        yield stack
    finally:
        for name in stack.containers:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        redis.Redis.from_url(REDIS_URL).flushdb()


def labeled_csv(repeat: int) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["text", "label"])
    for i in range(repeat):
        writer.writerows([f"{t} {i}", "positive"] for t in POSITIVE)
        writer.writerows([f"{t} {i}", "negative"] for t in NEGATIVE)
    return buf.getvalue().encode()


def scoring_csv(rows: int) -> bytes:
    texts = POSITIVE + NEGATIVE
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "text"])
    writer.writerows([f"r{i}", f"{texts[i % len(texts)]} number {i % 997}"] for i in range(rows))
    return buf.getvalue().encode()


def upload(client: httpx.Client, name: str, content: bytes) -> dict[str, Any]:
    r = client.post("/v1/datasets", files={"file": (name, content, "text/csv")})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    return job_id


def wait_job(
    client: httpx.Client, job_id: str, *, timeout: float = 300, until: Any = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if until is not None and until(job):
            return job
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.1)


def wait_ready(stack: Cluster, api: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{stack.port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = run(["docker", "inspect", "-f", "{{.State.Status}}", api]).strip()
        assert state == "running", logs(api)[-4000:]
        assert time.monotonic() < deadline, logs(api)[-4000:]
        time.sleep(0.5)


def test_jobs_run_in_worker_containers_and_survive_a_killed_worker(cluster: Cluster) -> None:
    stack = cluster
    stack.docker_run("migrate", "aiweb", "db", "upgrade", detach=False)  # as compose does
    stack.key = (
        stack.docker_run(
            "keys", "aiweb", "keys", "create", "deploy", "--scopes", "admin", detach=False
        )
        .strip()
        .splitlines()[-1]
    )
    api = stack.docker_run(
        "api", "aiweb", "serve", "--host", "127.0.0.1", "--port", str(stack.port),
        "--workers", "1",
    )  # fmt: skip
    wait_ready(stack, api)
    worker_a = stack.docker_run("worker", "aiweb", "worker", "--concurrency", "1")
    scheduler = stack.docker_run("scheduler", "aiweb", "scheduler")
    wait_for_log(worker_a, "ready.")
    with stack.client() as client:
        training = upload(client, "train.csv", labeled_csv(20))
        trained = wait_job(
            client, submit(client, {"type": "train", "model": "spam", "dataset_id": training["id"]})
        )
        assert trained["status"] == "succeeded", trained
        dataset = upload(client, "big.csv", scoring_csv(BATCH_ROWS))
        assert dataset["rows"] == BATCH_ROWS
        job_id = submit(
            client, {"type": "batch-predict", "model": "spam", "dataset_id": dataset["id"]}
        )
        mid = wait_job(client, job_id, until=lambda j: j["progress"] >= 0.15)
        assert mid["status"] == "running", mid
        assert mid["progress"] < 1.0
        run(["docker", "kill", worker_a])  # SIGKILL mid-job: a machine dying
        # the scheduler's sweep re-dispatches the job once its lease (6 s) has expired
        worker_b = stack.docker_run("worker", "aiweb", "worker", "--concurrency", "1")
        done = wait_job(client, job_id, timeout=600)
        assert done["status"] == "succeeded", (done, logs(worker_b)[-3000:])
        assert done["attempts"] == 2
        assert done["result"]["rows"] == BATCH_ROWS
        res = client.get(f"/v1/jobs/{job_id}/result")
        assert res.status_code == 200
        rows = list(csv.reader(io.StringIO(res.text)))
        assert rows[0] == ["id", "label", "score_negative", "score_positive"]
        ids = [r[0] for r in rows[1:]]
        assert len(ids) == BATCH_ROWS  # exactly once: no row twice, none lost
        assert set(ids) == {f"r{i}" for i in range(BATCH_ROWS)}
        # `docker stop` (SIGTERM, Celery's warm shutdown) mid-job: the job finishes first
        job_id = submit(
            client, {"type": "batch-predict", "model": "spam", "dataset_id": dataset["id"]}
        )
        mid = wait_job(client, job_id, until=lambda j: j["progress"] >= 0.1)
        assert mid["status"] == "running", mid
        run(["docker", "stop", "-t", "300", worker_b], timeout=360)
        state = run(["docker", "inspect", "-f", "{{.State.ExitCode}}", worker_b]).strip()
        assert state == "0", logs(worker_b)[-3000:]
        stopped = client.get(f"/v1/jobs/{job_id}").json()
        assert stopped["status"] == "succeeded", stopped
        assert stopped["attempts"] == 1
        # the model trained in a worker container serves from the api container
        pred = client.post("/v1/models/spam/predict", json={"inputs": ["i loved every minute"]})
        assert pred.status_code == 200, pred.text
        assert pred.json()["predictions"][0]["label"] == "positive"
    assert "exited" not in run(["docker", "inspect", "-f", "{{.State.Status}}", scheduler])
