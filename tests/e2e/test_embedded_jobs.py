"""Embedded default end to end: ``aiweb serve`` (SQLite, no broker) runs jobs itself.

SIGKILL the server in the middle of a batch-prediction job; start it again: the job is
recovered at start and completes, with one output row per input id.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import httpx
import pytest
from stack import (
    base_env,
    create_admin_key,
    free_port,
    labeled_csv,
    running,
    scoring_csv,
    start_server,
    wait_job,
)

pytestmark = pytest.mark.e2e

ROWS = 100_000


def test_killed_server_resumes_its_job_at_the_next_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = base_env(
        home,
        AIWEB_SECRET_KEY=uuid.uuid4().hex * 2,
        AIWEB_RATE_LIMIT__ENABLED="false",
        AIWEB_JOBS__POLL_INTERVAL_S="0.1",
    )
    key = create_admin_key(env)
    port = free_port()
    headers = {"Authorization": f"Bearer {key}"}
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(env, tmp_path / "serve-1.log", port)
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            training = client.post(
                "/v1/datasets", files={"file": ("train.csv", labeled_csv(20), "text/csv")}
            ).json()
            trained = wait_job(
                client,
                client.post(
                    "/v1/jobs",
                    json={"type": "train", "model": "reviews", "dataset_id": training["id"]},
                ).json()["id"],
            )
            assert trained["status"] == "succeeded", trained
            big = scoring_csv(tmp_path / "big.csv", ROWS)
            dataset = client.post(
                "/v1/datasets", files={"file": ("big.csv", big.read_bytes(), "text/csv")}
            ).json()
            job = client.post(
                "/v1/jobs",
                json={"type": "batch-predict", "model": "reviews", "dataset_id": dataset["id"]},
            ).json()
            mid = wait_job(client, job["id"], until=lambda j: j["progress"] >= 0.15)
            assert mid["status"] == "running", mid
            assert mid["progress"] < 1.0
    finally:
        server.kill()  # SIGKILL mid-job: no shutdown hook runs
    with (
        running(start_server(env, tmp_path / "serve-2.log", port)),
        httpx.Client(base_url=base_url, headers=headers, timeout=60) as client,
    ):
        done = wait_job(client, job["id"], timeout=300)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert done["result"]["rows"] == ROWS
        rows = list(csv.reader(io.StringIO(client.get(f"/v1/jobs/{job['id']}/result").text)))
    ids = [r[0] for r in rows[1:]]
    assert len(ids) == ROWS
    assert set(ids) == {f"r{i}" for i in range(ROWS)}
