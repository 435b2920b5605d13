"""Helpers of the tabular tests: CSV bodies, dataset upload and jobs over HTTP.

Imported by test modules (``from tabular_helpers import …``), as ``tiny_embedder`` is:
pytest (import mode ``prepend``) puts ``tests/``, the directory of the root conftest, on
``sys.path``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from typing import Any

from fastapi.testclient import TestClient


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    """``rows`` as a CSV file (header from the first row)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def to_jsonl(rows: list[dict[str, Any]]) -> bytes:
    """``rows`` as JSON Lines."""
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def upload(client: TestClient, content: bytes, name: str = "data.csv") -> str:
    """Upload a dataset file; its id."""
    ctype = "application/jsonl" if name.endswith(".jsonl") else "text/csv"
    r = client.post("/v1/datasets", files={"file": (name, content, ctype)})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_job(client: TestClient, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job once it has finished (succeeded, failed or cancelled)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.05)


def run_job(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    """Submit a job and wait for it to finish."""
    r = client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    return wait_job(client, r.json()["id"])


def train_job(client: TestClient, **body: Any) -> dict[str, Any]:
    """Run a train job that must succeed; the finished job."""
    job = run_job(client, {"type": "train", **body})
    assert job["status"] == "succeeded", job
    return job


def price_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Flats: price = 50 + 3 * size_m2 (+120 in Paris) + Gaussian noise (sd 10)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        size = rng.randint(20, 150)
        city = rng.choice(["paris", "lyon", "lille"])
        price = 50 + 3.0 * size + (120 if city == "paris" else 0) + rng.gauss(0, 10)
        rows.append({"size_m2": size, "city": city, "price": round(price, 1)})
    return rows
